"""What a stopping worker's Redis projection could not write is recorded, and only that."""

from __future__ import annotations

import asyncio
from collections import deque

from stream_app.app import unwritten


class FakeProjection:
    def __init__(self, pending: int, held: int, redis_up: bool) -> None:
        self.pending, self.held, self.redis_up = deque(range(pending)), held, redis_up
        self.drained_for: float | None = None

    async def drain(self, timeout: float) -> None:
        self.drained_for = timeout
        if self.redis_up:
            self.pending.clear()
            self.held = 0


class Gauge:
    value: float | None = None

    def set(self, v: float) -> None:
        self.value = v


def test_a_stop_with_redis_up_writes_the_queue_and_records_nothing(tmp_path) -> None:
    proj = FakeProjection(500, 20, redis_up=True)
    assert asyncio.run(unwritten.drain_at_stop(proj, tmp_path, timeout=3)) == 0
    assert proj.drained_for == 3 and unwritten.read(tmp_path) is None


def test_a_stop_with_redis_down_records_what_is_left_and_the_next_start_reports_it(
        tmp_path, caplog) -> None:
    proj = FakeProjection(500, 20, redis_up=False)
    assert asyncio.run(unwritten.drain_at_stop(proj, tmp_path, timeout=1)) == 520
    assert "not written at stop" in caplog.text
    assert unwritten.read(tmp_path)["ops"] == 520
    gauge = Gauge()
    assert asyncio.run(unwritten.report_at_start(tmp_path, gauge))["stops"] == 1
    assert gauge.value == 520
    assert unwritten.clear(tmp_path)
    assert asyncio.run(unwritten.report_at_start(tmp_path, gauge)) is None
    assert gauge.value == 0


def test_an_unreadable_marker_still_counts(tmp_path) -> None:
    (tmp_path / unwritten.FILE).write_text("{not json")
    gauge = Gauge()
    assert asyncio.run(unwritten.report_at_start(tmp_path, gauge))["ops"] == 1
    assert gauge.value == 1
    (tmp_path / unwritten.FILE).write_text('{"ops": -5, "stops": 1}')   # QA32 F2
    assert asyncio.run(unwritten.report_at_start(tmp_path, gauge))["ops"] == 1
    assert gauge.value == 1


class FakeRedis:
    def __init__(self, value: bytes | None, up: bool = True) -> None:
        self.value, self.up = value, up

    async def get(self, key: str) -> bytes | None:
        assert key == "sa:rebuilt_from"
        if not self.up:
            raise ConnectionError("Redis down")
        return self.value


def test_a_rebuild_completed_since_the_stop_clears_the_record_at_the_next_start(
        tmp_path) -> None:
    """QA32 F1: a live rebuild run while the stopped worker was down did not clear its
    record, so the alert fired on a complete projection."""
    unwritten.record(tmp_path, ops=152, held=0, at_ms=1_000)
    gauge = Gauge()
    for client in (None, FakeRedis(None), FakeRedis(b"999"), FakeRedis(b"5000", up=False)):
        assert asyncio.run(unwritten.report_at_start(tmp_path, gauge, client))["ops"] == 152
        assert gauge.value == 152          # no rebuild since the stop (or cannot tell)
    assert asyncio.run(unwritten.report_at_start(tmp_path, gauge, FakeRedis(b"5000"))) is None
    assert gauge.value == 0 and unwritten.read(tmp_path) is None


def test_a_directory_in_the_markers_place_is_logged_not_raised(tmp_path, caplog) -> None:
    (tmp_path / unwritten.FILE).mkdir()
    assert unwritten.clear(tmp_path) is False
    unwritten.record(tmp_path, ops=3, held=0)
    assert "cannot" in caplog.text
