"""A users-table changelog not read within ``--timeout`` (``rules diff`` or
``redis-rebuild`` on a large stack) is one ``Error:`` line that says how far the read got
and names the option to raise, with a value (QA L7: ``Error: TimeoutError: changelog ...
not read to its end in 120s``). A fake consumer stands in for the broker."""

from __future__ import annotations

import time

import pytest

from stream_app import kafka_io
from stream_app.cli import main
from stream_app.cli.rebuild_cmd import ChangelogTimeout, TableReader

PARTITIONS = 4


class Msg:
    def __init__(self, n: int) -> None:
        self.n = n

    def error(self) -> None:
        return None

    def key(self) -> bytes:
        return f'"u{self.n}"'.encode()

    def value(self) -> bytes:
        return b'{"uid": "u%d", "tags": {}}' % self.n

    def partition(self) -> int:
        return 0


class SlowChangelog:
    """1,000 records per partition; gives 300 of partition 0, then nothing more."""

    def __init__(self) -> None:
        self.given = 0

    def get_watermark_offsets(self, tp, timeout: float) -> tuple[int, int]:
        return 0, 1000

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        if self.given < 300:
            self.given += 100
            return [Msg(self.given - 100 + i) for i in range(100)]
        time.sleep(timeout)
        return []

    def position(self, tps: list) -> list:
        for tp in tps:
            tp.offset = self.given if tp.partition == 0 else 0
        return tps

    def close(self) -> None:
        pass


class Metadata:
    topics: dict = {}


@pytest.fixture()
def slow_broker(monkeypatch):
    monkeypatch.setattr(kafka_io, "require_broker", lambda bootstrap, **kw: Metadata())
    monkeypatch.setattr(kafka_io, "read_assigned", lambda *a, **kw: SlowChangelog())
    monkeypatch.setenv("STREAM_APP_PARTITIONS", str(PARTITIONS))
    from stream_app.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_timeout_says_how_far_the_read_got(slow_broker) -> None:
    reader = TableReader("b:9092", "stream-app-users-changelog", PARTITIONS)
    with pytest.raises(ChangelogTimeout) as err:
        reader.read_all(0.5, progress_s=0)
    exc = err.value
    assert (exc.records, exc.total, exc.users) == (300, 4000, 300)
    assert str(exc) == ("stream-app-users-changelog not read to its end in 0.5 s: 300 of "
                        "~4,000 records read (300 users so far)")
    assert exc.suggested() == 60                # 0.5 s x 4,000 / 300 x 1.2, whole minutes
    assert isinstance(exc, TimeoutError)        # what callers caught before


@pytest.mark.parametrize("argv", [
    ["rules", "diff", "config/rules", "--bootstrap", "b:9092", "--timeout", "0.5"],
    ["redis-rebuild", "--bootstrap", "b:9092", "--timeout", "0.5"],
])
def test_the_commands_name_the_option_to_raise(argv, slow_broker, monkeypatch,
                                               capsys) -> None:
    from stream_app import rules_bundle
    from stream_app.rules.loader import load_ruleset

    monkeypatch.setattr(rules_bundle, "live_ruleset",
                        lambda bootstrap, path, *a, **kw: (load_ruleset(path), "local"))
    import redis

    monkeypatch.setattr(redis.Redis, "ping", lambda self: True)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 1
    assert ("Error: changelog stream-app-users-changelog not read to its end in 0.5 s: 300 of "
            "~4,000 records read (300 users so far)") in err
    assert "longer than --timeout 0.5 s: give it more, e.g. --timeout 60" in err
    assert "Traceback" not in err and "TimeoutError" not in err
