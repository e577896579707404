"""QA F8: a worker restart (kill -9, a clean stop, a rebalance) must not page as a collapse.

A partition's open business windows live in its worker's memory; the next counter starts at
the last committed offset, so the windows open then are released short. The aggregator tells
the event time it counts from, the merger marks the windows it missed incomplete, and the
monitor neither scores nor learns them; a real drop after the restart still alarms."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from stream_app.anomaly.monitor import AnomalyMonitor
from stream_app.app import business
from stream_app.business import BusinessAggregator, SeriesPoint, load_business_spec
from stream_app.business.merge import Merger
from stream_app.events import Event

H, MIN = 3_600_000, 60_000
T0 = 8 * 24 * H          # after the monitor's 7-day warm-up of hourly series
SPEC = load_business_spec()
LEADS_1H = ("leads", "default", "all", "1h")


class Lead:
    """A ``registered`` event (a lead) on douyin."""

    def __init__(self, ts: int) -> None:
        self.type, self.ts, self.tenant, self.props = "registered", ts, "default", {
            "channel": "douyin"}


def warm_monitor() -> AnomalyMonitor:
    """A monitor that has learned 8 days of ~60 leads an hour (tenant-wide)."""
    mon = AnomalyMonitor(spec=SPEC)
    rng = random.Random(3)
    for i in range(T0 // H):
        n = float(rng.randint(52, 68))
        mon.observe(SeriesPoint(*LEADS_1H[:3], "1h", i * H, (i + 1) * H, n, n, "count"))
    return mon


class Cluster:
    """Two input partitions, each a partial aggregator as on a worker, sending every closed
    window with its watermark, ``counted_from`` and previous watermark to one merger, whose
    released windows the monitor scores."""

    def __init__(self, mon: AnomalyMonitor, merger: Merger | None = None) -> None:
        self.mon = mon
        self.merger = merger or Merger(SPEC, wall=lambda: 0.0)
        self.aggs = {p: BusinessAggregator(SPEC, zeros=False) for p in ("click:0", "click:1")}
        self.prev: dict[str, int | None] = {}
        self.hours: dict[int, SeriesPoint] = {}        # hour -> merged leads/all/1h point
        self.records: list[dict[str, Any]] = []

    def restart(self, *parts: str) -> None:
        """Those partitions get a new counter (their open windows are lost)."""
        for p in parts:
            self.aggs[p] = BusinessAggregator(SPEC, zeros=False)
            self.prev.pop(p, None)

    def run(self, start: int, stop: int, every_ms: int = 2 * MIN) -> None:
        """One lead per partition every ``every_ms`` of event time in [start, stop)."""
        for ts in range(start, stop, every_ms):
            for p, agg in self.aggs.items():
                self.send(p, agg, agg.add(Lead(ts)))

    def send(self, p: str, agg: BusinessAggregator, points: list[SeriesPoint]) -> None:
        self.merger.add(p, agg.watermark, points, agg.counted_from, self.prev.get(p))
        self.prev[p] = agg.watermark
        for pt in self.merger.ready():
            if pt.key == LEADS_1H:
                self.hours[(pt.start_ms - T0) // H] = pt
            o = self.mon.observe(pt)
            if o is not None and o.record is not None:
                self.records.append(o.record)


def test_a_crash_mid_hour_releases_an_incomplete_window_and_pages_nobody() -> None:
    """The reproduction: both partitions' worker is killed at 2 h 50 min and restarts from
    its last commit (2 h 48 min): the 2-3 h window holds 12 minutes of leads, not 60."""
    c = Cluster(warm_monitor())
    c.run(T0, T0 + 2 * H + 50 * MIN)
    c.restart("click:0", "click:1")
    c.run(T0 + 2 * H + 48 * MIN, T0 + 6 * H)
    short = c.hours[2]
    assert short.value == 12 and not short.complete           # the cause: a short window
    assert c.hours[3].value == 60 and c.hours[3].complete     # the next hour is whole again
    assert [h for h, p in sorted(c.hours.items()) if not p.complete] == [0, 2]   # 0: cold start
    assert c.records == []                                    # no alarm (was: critical down)
    # the same point scored as complete would page: what the old code did
    mon = warm_monitor()
    for h in (0, 1):
        mon.observe(c.hours[h])
    o = mon.observe(SeriesPoint(*short.key[:3], "1h", short.start_ms, short.end_ms, 12, 12,
                                "count"))
    assert o is not None and o.record is not None
    assert (o.record["severity"], o.record["labels"]["direction"]) == ("critical", "down")


def test_a_real_drop_after_a_restart_still_alarms() -> None:
    c = Cluster(warm_monitor())
    c.run(T0, T0 + 2 * H + 50 * MIN)
    c.restart("click:1")                                      # one partition's worker
    c.run(T0 + 2 * H + 40 * MIN, T0 + 5 * H)
    assert c.records == [] and not c.hours[2].complete
    c.run(T0 + 5 * H, T0 + 8 * H, every_ms=20 * MIN)         # leads drop to a tenth
    opened = [r for r in c.records if r["labels"]["state"] == "open"]
    assert opened and opened[0]["metric"] == "leads"
    assert opened[0]["labels"]["direction"] == "down" and opened[0]["since"] == T0 + 5 * H


def test_a_rebalance_is_a_restart_of_the_moved_partition() -> None:
    """click:1 moves to another worker at 2 h 50 min (its new counter starts at the commit,
    2 h 49 min); the old owner's last message, sent afterwards without a counter (the worker
    forgot it: :func:`business.forget_partitions`), does not undo it; it moves
    back at 4 h 30 min (a new counter again, not the old one's stale windows)."""
    c = Cluster(warm_monitor())
    c.run(T0, T0 + 2 * H + 50 * MIN)
    c.restart("click:1")
    c.run(T0 + 2 * H + 49 * MIN, T0 + 2 * H + 53 * MIN)
    c.merger.add("click:1", None, [], None)     # the old owner's last message (forgotten)
    assert c.merger.counted_from["click:1"] == T0 + 2 * H + 49 * MIN
    c.run(T0 + 2 * H + 53 * MIN, T0 + 4 * H + 30 * MIN)
    c.restart("click:1")
    c.run(T0 + 4 * H + 29 * MIN, T0 + 7 * H)
    assert [h for h, p in sorted(c.hours.items()) if not p.complete] == [0, 2, 4]
    assert all(c.hours[h].value == 60 for h in (1, 3, 5))
    assert c.records == []


def test_a_restarted_merger_marks_what_an_earlier_merger_read() -> None:
    """The anomaly agent restarts: the partials it had read but not released are gone. Its
    first message of each partition tells the watermark sent before (``prev``)."""
    lateness = SPEC.windows["1m"].lateness_ms
    m = Merger(SPEC, wall=lambda: 0.0)
    pt = SeriesPoint("leads", "default", "all", "1m", 10 * MIN, 11 * MIN, 3, 3, "count")
    # p0 had sent up to 11 min + lateness (its 10-11 min partial went to the dead merger)
    m.add("p0", 12 * MIN + lateness, [], 0, prev_watermark=11 * MIN + lateness)
    m.add("p1", 12 * MIN + lateness, [pt], 0, prev_watermark=10 * MIN)
    got = {p.start_ms: p.complete for p in m.ready() if p.window == "1m"}
    assert got == {10 * MIN: False}
    m.add("p0", 13 * MIN + lateness, [pt.__class__(*pt.key[:3], "1m", 11 * MIN, 12 * MIN,
                                                   1, 1, "count")], 0, 12 * MIN + lateness)
    m.add("p1", 13 * MIN + lateness, [], 0, 12 * MIN + lateness)
    assert [(p.start_ms, p.value, p.complete) for p in m.ready() if p.window == "1m"] == [
        (11 * MIN, 1, True), (12 * MIN, 0, True)]
    # a counter's first message (no prev) marks nothing
    fresh = Merger(SPEC, wall=lambda: 0.0)
    fresh.add("p0", 12 * MIN + lateness, [pt], 0)
    assert [p.complete for p in fresh.ready()] == [True]


def test_windows_released_without_a_silent_partition_are_incomplete() -> None:
    """A partition silent for ``idle_after_s`` (its worker is down) is not waited for: the
    windows released without it are incomplete until it is taken as gone
    (``gone_after_s``); its rows for a window released meanwhile are dropped."""
    lateness = SPEC.windows["1m"].lateness_ms
    wall = [0.0]
    m = Merger(SPEC, wall=lambda: wall[0], idle_after_s=60, gone_after_s=600)

    def leads(start: int, n: int) -> list[SeriesPoint]:
        return [SeriesPoint("leads", "default", "all", "1m", start, start + MIN, n, n,
                            "count")]

    m.add("p0", 0, [], 0)
    m.add("p1", MIN + lateness, leads(0, 2), 0)
    m.add("p0", MIN + lateness, leads(0, 3), 0)
    assert [(p.value, p.complete) for p in m.ready()] == [(5, False)]   # 0 < 0 + lateness
    wall[0] = 120.0                                                     # p1's worker died
    m.add("p0", 4 * MIN + lateness, leads(MIN, 3) + leads(2 * MIN, 3) + leads(3 * MIN, 3))
    assert [(p.value, p.complete) for p in m.ready()] == [(3, False)] * 3
    m.add("p1", 2 * MIN + lateness, leads(MIN, 2))                     # back, too late
    assert m.stale_rows == 1 and m.ready() == []
    wall[0] = 800.0                                                     # p1 gone for good
    m.add("p0", 5 * MIN + lateness, leads(4 * MIN, 3))
    assert [(p.value, p.complete) for p in m.ready()] == [(3, True)]


@pytest.fixture()
def worker(monkeypatch):
    sent: list[dict[str, Any]] = []

    async def emit(value: dict[str, Any]) -> None:
        sent.append(value)

    for name in ("aggregators", "_pending", "_last_sent", "_late_seen", "_sent_wm"):
        monkeypatch.setattr(business, name, {})
    monkeypatch.setattr(business, "_first_counter", set())
    monkeypatch.setattr(business, "_wall", lambda: 0.0)
    monkeypatch.setattr(business, "_emit", emit)
    return sent


def test_partials_messages_carry_from_and_prev_and_a_moved_partition_is_forgotten(
        worker) -> None:
    part = ("events.click", 0)

    def event(i: int, ts: int) -> Event:
        return Event(event_id=f"e{i}", user_id="u1", ts=ts, type="registered", stream="click",
                     props={"channel": "douyin"})

    async def run() -> None:
        for i, ts in enumerate((50 * MIN, 51 * MIN, 70 * MIN)):
            await business.send_partials(business.count_event(event(i, ts), part), part)

    asyncio.run(run())
    assert [(m["from"], m["prev"], m["wm"]) for m in worker] == [
        (50 * MIN, None, 50 * MIN), (50 * MIN, 50 * MIN, 51 * MIN), (50 * MIN, 51 * MIN, 70 * MIN)]
    assert business.forget_partitions({("events.click", 1)}) == [part]
    assert part not in business.aggregators and part not in business._sent_wm
    asyncio.run(business.send_partials([], part))                   # what it kept back
    assert worker[-1]["wm"] is None and worker[-1]["from"] is None


def test_the_last_counter_reported_decides_even_if_it_counts_from_earlier() -> None:
    """A new counter that counts from an earlier event time (a replay of older data after a
    restart) replaces the later one: nothing stays incomplete until event time passes it."""
    m = Merger(SPEC, wall=lambda: 0.0)
    m.add("p0", 50 * H, [], counted_from=50 * H)
    assert m.complete_from("1h") == 50 * H + SPEC.windows["1h"].lateness_ms
    m.add("p0", 10 * H, [], counted_from=10 * H)
    assert m.complete_from("1h") == 10 * H + SPEC.windows["1h"].lateness_ms


def test_a_partitions_first_counter_reports_no_from(worker, monkeypatch) -> None:
    """A counter that starts at the partition's first record (offset 0) counted everything:
    its messages carry no ``from``, so a partition whose first event comes late in event
    time (a quiet stream) marks nothing incomplete."""
    class Msg:
        offset = 0

    class Current:
        message = Msg()

    monkeypatch.setattr(business.faust, "current_event", lambda: Current())
    part = ("events.study", 1)
    ev = Event(event_id="e0", user_id="u1", ts=5 * H, type="lesson_attended", stream="study",
               props={"channel": "douyin"})
    asyncio.run(business.send_partials(business.count_event(ev, part), part))
    assert worker[-1]["from"] is None and worker[-1]["wm"] == 5 * H
    business.forget_partitions(set())
    Msg.offset = 42                                                   # a restart
    asyncio.run(business.send_partials(business.count_event(ev, part), part))
    assert worker[-1]["from"] == 5 * H
