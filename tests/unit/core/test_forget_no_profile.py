"""``stream-app forget`` of a user Redis has no profile of says so and exits 3, after
sending the request all the same (QA38 F8: a mistyped id of a PIPL deletion request printed
success with exit status 0). A user with a profile: exit 0, no warning. Redis unreadable: the
request is sent, a note says the lookup failed, exit 0 (the deletion does not need Redis)."""

from __future__ import annotations

import fakeredis
import pytest
from click.testing import CliRunner

from stream_app.cli import forget_cmd
from stream_app.serving import keys


@pytest.fixture()
def sent(monkeypatch):
    """Stubs the producer: the requests that would be sent, as (topic, key)."""
    out: list[tuple[str, str]] = []

    class Producer:
        def flush(self, timeout: float) -> int:
            return 0

    monkeypatch.setattr("stream_app.kafka_io.connected_producer", lambda *a, **k: Producer())
    monkeypatch.setattr("stream_app.kafka_io.produce",
                        lambda producer, topic, key, value: out.append((topic, key)))
    return out


@pytest.fixture()
def fake_redis(monkeypatch):
    server = fakeredis.FakeServer()
    monkeypatch.setattr("redis.Redis.from_url",
                        lambda url, **kw: fakeredis.FakeRedis(server=server))
    return fakeredis.FakeRedis(server=server)


def _forget(*args: str):
    return CliRunner().invoke(forget_cmd.command, list(args))


def test_no_profile_is_a_warning_and_exit_3_after_sending(sent, fake_redis) -> None:
    fake_redis.hset(keys.user_key("default", "u1"), "tag:activity", '"low"')
    res = _forget("nosuchuser-xyz")
    assert res.exit_code == forget_cmd.NO_PROFILE_EXIT == 3, (res.stdout, res.stderr)
    assert sent == [("events.profile", "nosuchuser-xyz")]
    assert "deletion requested for 'nosuchuser-xyz'" in res.stdout
    assert ("warning: no profile of 'nosuchuser-xyz' in tenant 'default' in Redis"
            in res.stderr)
    assert "check the id (exit status 3)" in res.stderr


def test_the_tenant_is_part_of_the_lookup(sent, fake_redis) -> None:
    fake_redis.hset(keys.user_key("default", "u1"), "tag:activity", '"low"')
    res = _forget("u1", "--tenant", "acme")
    assert res.exit_code == 3 and "in tenant 'acme'" in res.stderr
    assert len(sent) == 1


def test_a_user_with_a_profile_is_exit_0_without_warning(sent, fake_redis) -> None:
    fake_redis.hset(keys.user_key("default", "u1"), "tag:activity", '"low"')
    res = _forget("u1")
    assert res.exit_code == 0, (res.stdout, res.stderr)
    assert sent == [("events.profile", "u1")]
    assert "warning" not in res.stderr and "deletion requested for 'u1'" in res.stdout


def test_an_unreadable_redis_is_a_note_not_a_failure(sent, monkeypatch) -> None:
    monkeypatch.setenv("STREAM_APP_REDIS_URL", "redis://127.0.0.1:1/0")
    from stream_app.config import get_settings

    get_settings.cache_clear()
    try:
        res = _forget("u1")
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, (res.stdout, res.stderr)
    assert len(sent) == 1
    assert "note: could not look the user up in Redis at redis://127.0.0.1:1/0" in res.stderr


def test_the_help_documents_the_exit_status() -> None:
    out = CliRunner().invoke(forget_cmd.command, ["--help"]).output
    assert "Exit status:" in out
    assert "3  request delivered, but Redis had no profile of the user" in out
