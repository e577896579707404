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


def _projection_with_a_switchable_redis():
    """A real RedisProjection whose Lua batch call fails while ``state["up"]`` is False."""
    from stream_app.serving.projection import RedisProjection

    proj = RedisProjection("redis://127.0.0.1:1/0", flush_ms=10)
    state = {"up": False, "batches": 0}

    async def write_batch(batch):
        if not state["up"]:
            raise ConnectionError("Redis down")
        state["batches"] += 1
        return [(0, None)]

    proj._write_batch = write_batch
    return proj, state


def _queue_changes(proj, users: int) -> None:
    for i in range(users):
        proj.apply_changes([{"tenant": "default", "user_id": f"u{i}", "tag_id": "activity",
                             "old": None, "new": "active", "ts": 1_000}], None)


def test_a_kill_during_an_outage_is_recorded_at_the_next_start(tmp_path, caplog) -> None:
    """Session 29: a kill -9 (no stop runs) while Redis writes failed lost the queue with
    nothing recorded; the open marker kept during the outage is adopted at the next start."""
    proj, state = _projection_with_a_switchable_redis()
    proj.on_failing = unwritten.OutageMarker(tmp_path)
    _queue_changes(proj, 30)
    assert asyncio.run(proj.flush()) == 0
    open_file = tmp_path / unwritten.OPEN_FILE
    assert proj.failing_since_ms is not None and open_file.exists()
    queued = len(proj.pending)
    assert queued > 0
    # the process dies here: no drain_at_stop; the next start finds the open marker
    gauge = Gauge()
    doc = asyncio.run(unwritten.report_at_start(tmp_path, gauge))
    assert doc["ops"] == queued and gauge.value == queued
    assert not open_file.exists()
    assert "ended without a stop" in caplog.text
    assert asyncio.run(unwritten.report_at_start(tmp_path, gauge))["stops"] == 1   # adopted once


def test_the_open_marker_goes_when_the_outage_queue_is_written(tmp_path) -> None:
    proj, state = _projection_with_a_switchable_redis()
    proj.on_failing = unwritten.OutageMarker(tmp_path)
    _queue_changes(proj, 5)
    asyncio.run(proj.flush())
    assert (tmp_path / unwritten.OPEN_FILE).exists()
    state["up"] = True
    assert asyncio.run(proj.flush()) > 0
    assert proj.failing_since_ms is None and not proj.pending
    assert not (tmp_path / unwritten.OPEN_FILE).exists()
    gauge = Gauge()
    assert asyncio.run(unwritten.report_at_start(tmp_path, gauge)) is None   # nothing lost
    assert gauge.value == 0


def test_a_stop_during_an_outage_records_once_not_twice(tmp_path) -> None:
    """The stop's own record replaces the open marker: the next start counts one stop."""
    proj, state = _projection_with_a_switchable_redis()
    proj.on_failing = unwritten.OutageMarker(tmp_path)
    _queue_changes(proj, 8)
    asyncio.run(proj.flush())
    left = asyncio.run(unwritten.drain_at_stop(proj, tmp_path, timeout=0.3))
    assert left > 0 and not (tmp_path / unwritten.OPEN_FILE).exists()
    gauge = Gauge()
    doc = asyncio.run(unwritten.report_at_start(tmp_path, gauge))
    assert doc["stops"] == 1 and doc["ops"] == left


def test_the_open_marker_is_refreshed_at_most_every_few_seconds(tmp_path) -> None:
    from types import SimpleNamespace
    marker = unwritten.OutageMarker(tmp_path, refresh_s=3600)
    proj = SimpleNamespace(failing_since_ms=5, pending=[1], held=0)
    marker(proj)
    proj.pending = [1, 2, 3]
    marker(proj)                                   # within the refresh: not rewritten
    assert unwritten.adopt_open(tmp_path)["ops"] == 1
    marker = unwritten.OutageMarker(tmp_path, refresh_s=0)
    marker(proj)
    marker(SimpleNamespace(failing_since_ms=5, pending=[1] * 9, held=1))
    assert unwritten.read(tmp_path)["ops"] == 1    # (the record adopted above)
    assert unwritten.adopt_open(tmp_path)["ops"] == 1 + 10


def test_the_open_marker_goes_when_the_outages_queue_is_written_under_live_traffic(
        tmp_path) -> None:
    """QA36 F2: events queued during every write (live traffic) kept the queue from ever
    being empty right after a write, so the marker stayed after Redis recovered and a later
    kill -9 was reported as an outage's lost writes."""
    proj, state = _projection_with_a_switchable_redis()
    proj.on_failing = unwritten.OutageMarker(tmp_path)
    written = proj._write_batch

    async def busy_write(batch):
        result = await written(batch)
        if state["up"]:   # the agent queues an event while the write is in flight
            proj.apply_changes([{"tenant": "default", "user_id": f"live{state['batches']}",
                                 "tag_id": "activity", "old": None, "new": "active",
                                 "ts": 1_000}], None)
        return result

    proj._write_batch = busy_write
    _queue_changes(proj, 20)
    asyncio.run(proj.flush())
    assert (tmp_path / unwritten.OPEN_FILE).exists()
    state["up"] = True
    for _ in range(3):
        asyncio.run(proj.flush())
    assert proj.failing_since_ms is None
    assert not (tmp_path / unwritten.OPEN_FILE).exists()
    gauge = Gauge()
    assert asyncio.run(unwritten.report_at_start(tmp_path, gauge)) is None
