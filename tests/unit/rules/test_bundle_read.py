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
