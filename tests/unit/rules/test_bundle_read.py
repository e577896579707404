"""``rules show/apply/diff`` read ``rules.versions`` to its end offset (QA F1): a first fetch
slower than a poll is waited for, and a topic not read to its end within the timeout is an
error, never "nothing published" (which made ``rules apply`` check removals against the local
rules and publish a set dropping a tag of the live one without ``--allow-removal``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import TopicPartition

from stream_app import kafka_io
from stream_app.errors import UnreachableError
from stream_app.rules.engine import DEFAULT_RULES
from stream_app.rules_bundle import encode, latest_bundle, read_bundle


class Msg:
    def __init__(self, offset: int, value: bytes | None) -> None:
        self._offset, self._value = offset, value

    def error(self) -> None:
        return None

    def value(self) -> bytes | None:
        return self._value

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"default"


class LateConsumer:
    """Partition 0 of rules.versions: its records come only after ``empty_polls`` polls
    that return nothing (a broker busy for longer than one poll)."""

    def __init__(self, values: list[bytes], empty_polls: int) -> None:
        self.values, self.empty_polls = values, empty_polls
        self.polls, self.pos, self.closed = 0, -1001, False

    def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
        return 0, len(self.values)

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        self.polls += 1
        if self.polls <= self.empty_polls or self.pos >= len(self.values):
            time.sleep(min(timeout, 0.02))
            return []
        start = max(self.pos, 0)
        self.pos = len(self.values)
        return [Msg(i, v) for i, v in enumerate(self.values) if i >= start]

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tps[0].topic, 0, self.pos)]

    def close(self) -> None:
        self.closed = True


class Metadata:
    def __init__(self, partitions: int | None) -> None:
        part = type("Topic", (), {"partitions": dict.fromkeys(range(partitions or 0))})
        self.topics = {"rules.versions": part} if partitions else {}
        self.brokers = {1: object()}


def bundle(version: str, drop: str | None = None) -> dict[str, Any]:
    b = read_bundle(DEFAULT_RULES)
    if drop:
        del b["files"][drop]
    b["version"] = version
    return b


@pytest.fixture()
def broker(monkeypatch: pytest.MonkeyPatch):
    """Fake broker: ``broker(values, empty_polls, partitions)`` -> the consumer it hands out."""

    def install(values: list[bytes], empty_polls: int = 0,
                partitions: int | None = 1) -> LateConsumer:
        consumer = LateConsumer(values, empty_polls)
        monkeypatch.setattr(kafka_io, "require_broker", lambda *a, **k: Metadata(partitions))
        monkeypatch.setattr(kafka_io, "read_assigned", lambda *a, **k: consumer)
        monkeypatch.setattr(kafka_io, "true_end_offsets", lambda bootstrap, reported, **k:
                            dict(reported))
        return consumer

    return install


def test_a_late_first_fetch_is_waited_for_and_the_newest_bundle_returned(broker) -> None:
    c = broker([encode(bundle("v1")), encode(bundle("v2"))], empty_polls=3)
    got = latest_bundle("fake:9092", timeout=10)
    assert got is not None and got["version"] == "v2"
    assert c.polls >= 4 and c.closed


def test_a_topic_not_read_to_its_end_in_time_is_an_error(broker) -> None:
    broker([encode(bundle("v1")), encode(bundle("v2"))], empty_polls=10**9)
    t0 = time.monotonic()
    with pytest.raises(UnreachableError) as err:
        latest_bundle("fake:9092", timeout=0.4, timeout_option="--timeout")
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert "rules.versions" in msg and "end offset 2" in msg and "reached offset 0" in msg
    assert "--timeout" in msg


def test_an_empty_or_missing_topic_is_nothing_published(broker) -> None:
    c = broker([])
    assert latest_bundle("fake:9092", timeout=1) is None
    assert c.polls == 0           # empty at its end offset: nothing to wait for
    broker([], partitions=None)   # no topic at all
    assert latest_bundle("fake:9092", timeout=1) is None


def test_apply_publishes_nothing_when_the_live_set_cannot_be_read(broker, monkeypatch) -> None:
    """The harm of F1: the live set has a tag the local one lacks; a read that came back
    empty let `rules apply` of the local set remove it. Now it refuses."""
    from stream_app.cli.rules_cmd import command

    broker([encode(bundle("live"))], empty_polls=10**9)
    produced: list[Any] = []
    monkeypatch.setattr(kafka_io, "make_producer", lambda *a, **k: produced.append(a))
    res = CliRunner().invoke(command, ["apply", str(DEFAULT_RULES), "--bootstrap", "fake:9092",
                                       "--timeout", "0.3"])
    assert res.exit_code == 1, res.output
    assert "rules.versions" in res.output and "--timeout" in res.output
    assert "Nothing was published" in res.output
    assert produced == []


def test_apply_guards_removals_against_a_late_published_set(broker, monkeypatch,
                                                           tmp_path: Path) -> None:
    """The published set has `activity.yaml`'s tags; applying a set without them is refused
    although the topic's record came after a few empty polls."""
    from stream_app.cli.rules_cmd import command

    broker([encode(bundle("live"))], empty_polls=3)
    produced: list[Any] = []
    monkeypatch.setattr(kafka_io, "make_producer", lambda *a, **k: produced.append(a))
    for name, text in bundle("draft", drop="activity.yaml")["files"].items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    res = CliRunner().invoke(command, ["apply", str(tmp_path), "--bootstrap", "fake:9092"])
    assert res.exit_code == 1, res.output
    assert "lacks 2 of the 35 tags" in res.output and "activity" in res.output
    assert "published from" in res.output and produced == []


# -- QA F10: one partition, as the contract declares -----------------------------------------

class FakeAdmin:
    """confluent_kafka.admin.AdminClient recording the topics it is asked to create."""

    created: list[Any] = []

    def __init__(self, conf: dict[str, Any]) -> None:
        pass

    def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Any]:
        from concurrent.futures import Future

        FakeAdmin.created.extend(topics)
        out = {}
        for t in topics:
            fut: Future = Future()
            fut.set_result(None)
            out[t.topic] = fut
        return out


@pytest.fixture()
def admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    import confluent_kafka.admin

    FakeAdmin.created = []
    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", FakeAdmin)
    return FakeAdmin


def test_a_rules_topic_of_several_partitions_is_refused_with_the_fix(broker, admin,
                                                                    monkeypatch) -> None:
    from stream_app.cli.rules_cmd import command
    from stream_app.errors import RuleError

    broker([encode(bundle("v1"))], partitions=4)
    with pytest.raises(RuleError) as err:
        latest_bundle("fake:9092", timeout=1)
    assert "4 partitions" in str(err.value) and "declares 1" in str(err.value)
    assert "stream-app topics create" in str(err.value)
    produced: list[Any] = []
    monkeypatch.setattr(kafka_io, "make_producer", lambda *a, **k: produced.append(a))
    res = CliRunner().invoke(command, ["apply", str(DEFAULT_RULES), "--bootstrap", "fake:9092"])
    assert res.exit_code == 1 and "4 partitions" in res.output, res.output
    assert produced == [] and admin.created == []


def test_apply_creates_the_rules_topic_as_declared_before_producing(broker, admin,
                                                                   monkeypatch) -> None:
    from stream_app.cli.rules_cmd import command

    broker([], partitions=None)          # a broker where `topics create` was not run
    order: list[str] = []

    class Producer:
        def produce(self, topic: str, **kw: Any) -> None:
            order.append(f"produce {topic}")

        def flush(self, timeout: float) -> int:
            return 0

    monkeypatch.setattr(kafka_io, "make_producer", lambda *a, **k: Producer())
    monkeypatch.setattr(admin, "create_topics", lambda self, topics, operation_timeout: (
        order.append("create"), FakeAdmin.created.extend(topics),
        {t.topic: _done() for t in topics})[-1])
    monkeypatch.setenv("STREAM_APP_PARTITIONS", "4")
    res = CliRunner().invoke(command, ["apply", str(DEFAULT_RULES), "--bootstrap", "fake:9092"])
    assert res.exit_code == 0, res.output
    [topic] = admin.created
    assert (topic.topic, topic.num_partitions) == ("rules.versions", 1)
    assert topic.config.get("cleanup.policy") == "compact"
    assert order == ["create", "produce rules.versions"]


def _done() -> Any:
    from concurrent.futures import Future

    fut: Future = Future()
    fut.set_result(None)
    return fut


def test_topics_create_warns_about_a_partition_count_other_than_declared(
        monkeypatch, admin) -> None:
    from stream_app.contract import load_contract
    from stream_app.services.topics_admin import create_topics, declared_partitions

    names = {t.name: declared_partitions(t, 4) for t in load_contract().topics.values()}
    names["rules.versions"] = 4                    # auto-created by a producer
    names["events.click"] = 2                      # created with another partition count
    md = type("MD", (), {"brokers": {1: 1}, "topics": {
        t: type("T", (), {"partitions": dict.fromkeys(range(n))}) for t, n in names.items()}})
    monkeypatch.setattr(kafka_io, "require_broker", lambda *a, **k: md)
    warnings: list[str] = []
    assert create_topics("fake:9092", 4, warn=warnings.append) == []
    assert admin.created == []
    assert len(warnings) == 2
    [rules] = [w for w in warnings if "rules.versions" in w]
    assert "4 partitions" in rules and "declares 1" in rules
    [click_] = [w for w in warnings if "events.click" in w]
    assert "2 partitions" in click_ and "declares 4" in click_
