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
    assert unwritten.report_at_start(tmp_path, gauge)["stops"] == 1 and gauge.value == 520
    assert unwritten.clear(tmp_path) and unwritten.report_at_start(tmp_path, gauge) is None
    assert gauge.value == 0


def test_an_unreadable_marker_still_counts(tmp_path) -> None:
    (tmp_path / unwritten.FILE).write_text("{not json")
    gauge = Gauge()
    assert unwritten.report_at_start(tmp_path, gauge)["ops"] == 1 and gauge.value == 1
