"""``stream-app replay`` counts what the broker acknowledged, survives Ctrl-C and lines too
large for Kafka (QA F9: Ctrl-C printed only ``Aborted!`` and lost the queued records; a 3 MB
line ended the run in a ``MSG_SIZE_TOO_LARGE`` traceback, the rest unsent, nothing flushed)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from confluent_kafka import KafkaError, KafkaException

from stream_app import kafka_io
from stream_app.cli.replay_cmd import command as replay

BIG = 1_200_000   # over the producer's message.max.bytes (1,000,000)


def _line(i: int, pad: int = 0) -> bytes:
    ev = {"event_id": f"e{i}", "user_id": f"u{i % 7}", "ts": 1714528800000 + i,
          "type": "page_view", "stream": "click", "props": {"x": "y" * pad}}
    return orjson.dumps(ev) + b"\n"


def _file(tmp_path: Path, n: int, big: tuple[int, ...] = ()) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(_line(i, BIG if i in big else 0) for i in range(1, n + 1)))
    return path


class FakeProducer:
    """Queues records; ``poll`` delivers nothing, ``flush`` delivers up to ``capacity``
    of them (the rest stays queued: not acknowledged). ``interrupt_at``: the produce call that
    raises KeyboardInterrupt (Ctrl-C); ``errors``: line event id -> delivery error code."""

    def __init__(self, capacity: int = 10**9, interrupt_at: int | None = None,
                 errors: dict[str, int] | None = None) -> None:
        self.capacity, self.interrupt_at = capacity, interrupt_at
        self.errors = errors or {}
        self.queue: list[tuple[bytes, object]] = []
        self.calls = 0
        self.acked: list[str] = []

    def produce(self, topic: str, key: object = None, value: bytes = b"",
                on_delivery: object = None, **kw: object) -> None:
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        if len(value) > 1_000_000:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.queue.append((value, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        take, self.queue = self.queue[:self.capacity], self.queue[self.capacity:]
        for value, cb in take:
            eid = orjson.loads(value)["event_id"]
            code = self.errors.get(eid)
            if code is None:
                self.acked.append(eid)
            cb(None if code is None else KafkaError(code), None)
        return len(self.queue)

    def __len__(self) -> int:
        return len(self.queue)


@pytest.fixture
def producer(monkeypatch):
    made: list[FakeProducer] = []

    def use(fake: FakeProducer) -> FakeProducer:
        made.append(fake)
        return fake

    monkeypatch.setattr(kafka_io, "connected_producer", lambda bs, **kw: made[0])
    monkeypatch.setattr(kafka_io, "topic_message_limit", lambda bs, topic, **kw: 1_048_588)
    return use


def test_ctrl_c_flushes_the_queue_and_says_where_to_resume(tmp_path, producer) -> None:
    path = _file(tmp_path, 3000)
    fake = producer(FakeProducer(capacity=1500, interrupt_at=2001))
    res = CliRunner().invoke(replay, [str(path), "--quiet"])
    assert res.exit_code == 130, res.output
    assert "Aborted!" not in res.output
    assert "delivered 1,500 events" in res.output
    assert ("Error: interrupted before line 2,001; 500 events not delivered within 10 s. "
            "Resume from line 1,501: "
            f"`stream-app replay {path} --start-line 1501`") in res.output
    assert len(fake.acked) == 1500


def test_resuming_sends_the_rest(tmp_path, producer) -> None:
    path = _file(tmp_path, 3000)
    fake = producer(FakeProducer())
    res = CliRunner().invoke(replay, [str(path), "--quiet", "--start-line", "1501"])
    assert res.exit_code == 0, res.output
    assert fake.acked == [f"e{i}" for i in range(1501, 3001)]
    assert "delivered 1,500 events" in res.output


def test_an_oversized_line_is_skipped_and_the_run_goes_on(tmp_path, producer) -> None:
    path = _file(tmp_path, 5, big=(3,))
    fake = producer(FakeProducer())
    res = CliRunner().invoke(replay, [str(path), "--quiet"])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert fake.acked == ["e1", "e2", "e4", "e5"]
    size = len(_line(3, BIG)) - 1
    assert "delivered 4 events in " in res.output
    assert (f"; skipped 1 line (line 3: {size:,} bytes, over the message size limit "
            "(producer message.max.bytes 1,000,000; broker max.message.bytes 1,048,588))"
            ) in res.output
    assert "Error: 1 line skipped" in res.output
    assert "Resume from" not in res.output      # nothing left to send


def test_a_record_the_broker_refuses_is_a_skipped_line(tmp_path, producer) -> None:
    path = _file(tmp_path, 4)
    producer(FakeProducer(errors={"e2": KafkaError.MSG_SIZE_TOO_LARGE}))
    res = CliRunner().invoke(replay, [str(path), "--quiet"])
    assert res.exit_code == 1, res.output
    assert "delivered 3 events" in res.output
    assert "skipped 1 line (line 2: " in res.output
    assert "broker max.message.bytes 1,048,588" in res.output


def test_delivery_is_counted_from_reports_not_produce_calls(tmp_path, producer) -> None:
    path = _file(tmp_path, 5)
    producer(FakeProducer(errors={"e4": KafkaError._MSG_TIMED_OUT}, capacity=4))
    res = CliRunner().invoke(replay, [str(path), "--quiet"])
    assert res.exit_code == 1, res.output
    assert "delivered 3 events" in res.output
    assert "2 events not delivered (Local: Message timed out)" in res.output
    assert "Resume from line 4:" in res.output and "--start-line 4`" in res.output


def test_bad_lines_make_the_exit_status_1_but_the_rest_goes(tmp_path, producer) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(_line(1) + b"[1, 2, 3]\n" + b"not json\n" + _line(4))
    fake = producer(FakeProducer())
    res = CliRunner().invoke(replay, [str(path), "--quiet"])
    assert res.exit_code == 1, res.output
    assert fake.acked == ["e1", "e4"]
    assert "skipped 2 lines (line 2: not a JSON object, line 3: not JSON)" in res.output
