"""The worker's business path (stream_app/app/business.py) without a broker: partials are
sent at most every PARTIALS_EVERY_S per partition and lose nothing; the merger's windows equal
a single aggregator's over all events; the anomaly work yields to the loop between slices."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from stream_app.anomaly.monitor import AnomalyMonitor
from stream_app.app import business
from stream_app.business import BusinessAggregator, SeriesPoint
from stream_app.events import Event

MIN = 60_000
TYPES = ["registered", "ad_landing", "trial_booked", "order_paid", "lesson_attended",
         "lesson_missed", "page_view"]
CHANNELS = ["douyin", "bilibili", "baidu_sem", "spam"]


def events(n: int, seed: int = 1, step_ms: int = 7_000) -> list[Event]:
    rng = random.Random(seed)
    out, ts = [], 0
    for i in range(n):
        ts += rng.randint(0, step_ms)
        if rng.random() < 0.003:
            ts += rng.randint(1, 6) * 3_600_000   # jumps of hours: runs of empty windows
        out.append(Event(event_id=f"e{i}", user_id=f"u{rng.randint(0, 50)}", ts=ts,
                         type=rng.choice(TYPES), stream="click",
                         props={"channel": rng.choice(CHANNELS), "amount": rng.randint(1, 99)}))
    return out


@pytest.fixture()
def worker(monkeypatch):
    """The module's per-partition state, reset, with a fake wall clock and captured sends."""
    wall = [0.0]
    sent: list[tuple[float, dict[str, Any]]] = []

    async def emit(value: dict[str, Any]) -> None:
        sent.append((wall[0], value))

    monkeypatch.setattr(business, "aggregators", {})
    monkeypatch.setattr(business, "_pending", {})
    monkeypatch.setattr(business, "_last_sent", {})
    monkeypatch.setattr(business, "_sent_wm", {})
    monkeypatch.setattr(business, "_first_counter", set())
    monkeypatch.setattr(business, "_wall", lambda: wall[0])
    monkeypatch.setattr(business, "_emit", emit)
    return wall, sent


def replay(evs: list[Event], wall: list[float], per_event_s: float) -> None:
    """What the process agent does per event (two input partitions by user)."""
    async def run() -> None:
        for i, ev in enumerate(evs):
            wall[0] = i * per_event_s
            part = ("events.click", hash(ev.user_id) % 2)
            closed = business.count_event(ev, part)
            if closed:
                await business.send_partials(closed, part)
        # the idle timer's flush: everything kept back goes out with the watermark
        wall[0] += 10.0
        for part, agg in business.aggregators.items():
            await business.send_partials(business._pending.pop(part, []) +
                                         agg.advance(evs[-1].ts + 3 * 3_600_000), part)
    asyncio.run(run())


def test_partials_are_sent_at_most_every_interval_and_lose_nothing(worker) -> None:
    wall, sent = worker
    evs = events(6000)
    replay(evs, wall, per_event_s=0.001)      # a fast replay: a window closes every few events
    final = max(t for t, _ in sent)
    by_source: dict[str, set[float]] = {}
    for t, doc in sent:                       # (a send of > POINTS_PER_MESSAGE is split)
        if t != final:                        # the idle timer's flush excepted
            by_source.setdefault(doc["p"], set()).add(t)
    assert len(by_source) == 2
    for times in map(sorted, by_source.values()):
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= business.PARTIALS_EVERY_S - 1e-9
    # without the interval it was one message per closing event (hundreds here)
    assert sum(map(len, by_source.values())) <= 6000 * 0.001 / business.PARTIALS_EVERY_S * 2
    got = sorted(tuple(r) for _, doc in sent for r in doc["points"])
    want = []
    for part in (0, 1):
        agg = BusinessAggregator(business.spec, zeros=False)   # the worker's partials
        mine = [e for e in evs if hash(e.user_id) % 2 == part]
        pts = [p for e in mine for p in agg.add(e)] + agg.advance(evs[-1].ts + 3 * 3_600_000)
        want += [(p.metric, p.tenant, p.channel, p.window, p.start_ms, p.end_ms, p.num, p.den,
                  p.kind) for p in pts if business.wanted(p)]
    assert got == sorted(want) and len(got) > 1000
    assert all(doc["wm"] is not None for _, doc in sent)


def test_merged_windows_equal_one_aggregator_over_all_events(worker) -> None:
    wall, sent = worker
    evs = events(4000, seed=3)
    replay(evs, wall, per_event_s=0.002)
    merger = business.Merger(wall=lambda: wall[0])
    for _, doc in sent:
        merger.add(doc["p"], doc["wm"], [SeriesPoint(*r) for r in doc["points"]])
    merged = {(p.key, p.start_ms): p for p in merger.ready()}
    whole = BusinessAggregator(business.spec)
    ref = [p for e in evs for p in whole.add(e)] + whole.advance(evs[-1].ts + 3 * 3_600_000)
    ref_wanted = {(p.key, p.start_ms): p for p in ref if business.wanted(p)}
    # every non-zero watched or rate point of the whole arrives, with the same sums
    assert ref_wanted and all(merged[k].num == pytest.approx(p.num) and
                              merged[k].den == pytest.approx(p.den)
                              for k, p in ref_wanted.items())
    # the merger's other points are the explicit zeros of watched series in windows that
    # had events (a silent channel shows as a drop)
    ref_all = {(p.key, p.start_ms): p for p in ref}
    extra = [merged[k] for k in merged.keys() - ref_wanted.keys()]
    assert extra and all(p.num == 0 and p.kind != "rate" for p in extra)
    assert all(ref_all[(p.key, p.start_ms)].num == 0 for p in extra
               if (p.key, p.start_ms) in ref_all)


def test_anomaly_work_yields_to_the_loop_between_slices() -> None:
    merger = business.Merger(wall=lambda: 0.0)
    windows = 40
    merger.add("click:0", 10**12, [
        SeriesPoint("leads", "default", ch, "1m", i * MIN, (i + 1) * MIN, 3, 3, "count")
        for i in range(windows) for ch in ("douyin", "bilibili", "all")])
    tick = [0.0]
    pauses: list[float] = []
    ran_between: list[int] = []
    other = [0]

    def clock() -> float:          # every call takes 1 ms of (fake) time
        tick[0] += 0.001
        return tick[0]

    async def pause(seconds: float) -> None:
        pauses.append(seconds)
        before = other[0]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        ran_between.append(other[0] - before)

    async def other_task() -> None:   # stands for the process agent
        while True:
            other[0] += 1
            await asyncio.sleep(0)

    async def send(metric: str, record: dict[str, Any]) -> None:
        pass

    async def main() -> int:
        t = asyncio.create_task(other_task())
        n = await business.observe_ready(merger, AnomalyMonitor(spec=business.spec), send,
                                         clock=clock, pause=pause)
        t.cancel()
        return n

    assert asyncio.run(main()) == windows * 3
    # a slice ends after SLICE_S of work: with 1 ms per window here, every few windows
    assert len(pauses) >= windows // (business.SLICE_S / 0.001 + 1)
    assert all(p >= business.SLICE_S for p in pauses)
    assert all(r > 0 for r in ran_between)


def test_events_without_channel_props_count_for_the_first_touch_channel(worker) -> None:
    """An order carries no channel: the worker passes the user's first-touch tag, so the
    order's revenue and count land in that channel's series (as simeval attributes them),
    while an event that names its channel keeps it."""
    wall, sent = worker
    tags = {"first_channel": "douyin"}
    order = Event(event_id="o1", user_id="u1", ts=10_000, type="order_paid", stream="order",
                  props={"amount": 4980})
    visit = Event(event_id="v1", user_id="u1", ts=20_000, type="ad_landing", stream="click",
                  props={"channel": "bilibili"})
    part = ("events.order", 0)
    for ev in (order, visit):
        business.count_event(ev, part, business.channel_from_tags(ev, tags))
    assert business.channel_from_tags(visit, tags) is None
    points = business.aggregators[part].advance(10 * MIN)
    by = {(p.metric, p.channel, p.window): p.num for p in points if p.window == "1m"}
    assert by.get(("revenue", "douyin", "1m")) == 4980
    assert by.get(("visits", "bilibili", "1m")) == 1
    assert not any(ch == "unknown" for (_, ch, _) in by)
