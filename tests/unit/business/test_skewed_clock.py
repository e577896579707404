"""A producer whose clock is hours ahead (within STREAM_APP_MAX_FUTURE_MS) must not empty the
business series of the on-time events after it (QA, session 26: 8 clicks dated +8 h moved
every window of their partition on, and the next 40 on-time visits were in no
``metrics.partials`` point, counted only in a private late counter)."""

from __future__ import annotations

import pytest

from stream_app import metrics
from stream_app.app import business
from stream_app.business import BusinessAggregator, load_business_spec
from stream_app.clock import AheadCap
from stream_app.events import Event

NOW = 1_796_434_800_000          # the wall clock (ms), a minute boundary
HOUR = 3_600_000


def _click(i: int, etype: str, ts: int) -> Event:
    return Event(f"e{i}", f"u{i}", ts, etype, "click", props={"channel": "douyin"})


def _workload() -> list[Event]:
    """40 on-time visits, 8 page views dated +8 h, 40 more on-time visits (same minute)."""
    return ([_click(i, "ad_landing", NOW + 100 * i) for i in range(40)]
            + [_click(100 + i, "page_view", NOW + 8 * HOUR + i) for i in range(8)]
            + [_click(200 + i, "ad_landing", NOW + 5_000 + 100 * i) for i in range(40)])


WINDOWS = len(load_business_spec().windows)     # an event is late once per window


def _visits_in_first_minute(cap: AheadCap, wall: list[int]) -> tuple[float, int]:
    agg = BusinessAggregator(load_business_spec(), zeros=False)
    points = []
    for ev in _workload():
        wm = cap(ev.ts)
        step = agg.spec.steps.get(ev.type)
        points += (agg.advance(wm) if step is None
                   else agg.add_step(ev, step, agg.attribute(ev.props), wm))
    wall[0] += 9 * HOUR                            # much later: every window closes
    points += agg.advance(cap(NOW + 9 * HOUR))
    first = [p.num for p in points if p.metric == "visits" and p.channel == "douyin"
             and p.window == "1m" and p.start_ms == NOW]
    return sum(first), agg.late


def test_without_a_cap_the_on_time_visits_after_a_skewed_event_are_lost() -> None:
    # (the behaviour before: the aggregator's time followed any accepted event)
    assert _visits_in_first_minute(AheadCap(None), [0]) == (40, 40 * WINDOWS)


def test_with_the_cap_every_on_time_visit_counts_in_its_window() -> None:
    wall = [NOW]
    visits, late = _visits_in_first_minute(AheadCap(60_000, clock=lambda: wall[0]), wall)
    assert (visits, late) == (80, 0)


def test_the_worker_path_caps_its_watermark_and_exports_late_funnel_events(monkeypatch) -> None:
    monkeypatch.setattr(business, "aggregators", {})
    monkeypatch.setattr(business, "_pending", {})
    monkeypatch.setattr(business, "_last_sent", {})
    monkeypatch.setattr(business, "_late_seen", {})
    monkeypatch.setattr(business, "CAP", AheadCap(60_000, clock=lambda: NOW))
    part = ("events.click", 0)
    for ev in _workload():
        business.count_event(ev, part)
    agg = business.aggregators[part]
    assert agg.watermark == NOW + 60_000 and agg.late == 0
    # an event for a window that did close (the watermark passed it) is late, and counted
    late_counter = metrics.child(metrics.BIZ_LATE_EVENTS, "click")
    before = late_counter._value.get()
    business.count_event(_click(300, "ad_landing", NOW - 10 * 60_000), part)
    business.count_late()
    business.count_late()                     # (each late event is counted once)
    assert agg.late >= 1
    assert late_counter._value.get() - before == pytest.approx(agg.late)
