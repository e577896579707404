"""Merger: a window no partition sent anything for (a total outage while the clock moves on)
is released as zeros of the series seen before, so the drop shows while it lasts."""

from __future__ import annotations

import pytest

from stream_app.business import SeriesPoint, load_business_spec
from stream_app.business.merge import Merger

MIN = 60_000


def leads(start: int, n: int) -> SeriesPoint:
    return SeriesPoint("leads", "default", "all", "1m", start, start + MIN, n, n, "count")


def rate(start: int) -> SeriesPoint:
    return SeriesPoint("lead_to_trial", "default", "all", "1m", start, start + MIN, 1, 2, "rate")


def one_minute(points: list[SeriesPoint]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for p in points:
        if p.window == "1m":
            out.setdefault(p.start_ms, {})[p.metric] = p.value
    return out


def test_empty_windows_between_released_and_the_watermarks_are_zeros() -> None:
    spec = load_business_spec()
    lateness = spec.windows["1m"].lateness_ms
    m = Merger(spec, wall=lambda: 0.0)
    m.add("p0", MIN + lateness, [leads(0, 4), rate(0)])
    m.add("p1", MIN + lateness, [leads(0, 1)])
    assert one_minute(m.ready()) == {0: {"leads": 5, "lead_to_trial": 0.5}}
    # an outage: both clocks move on 4 minutes, nobody sends a point
    m.add("p0", 5 * MIN + lateness, [])
    m.add("p1", 5 * MIN + lateness, [])
    got = one_minute(m.ready())
    assert sorted(got) == [MIN, 2 * MIN, 3 * MIN, 4 * MIN]
    assert all(v == {"leads": 0.0} for v in got.values())     # rates stay undefined
    # traffic resumes at minute 6; minute 5 was empty too
    m.add("p0", 7 * MIN + lateness, [leads(6 * MIN, 2)])
    m.add("p1", 7 * MIN + lateness, [])
    got = one_minute(m.ready())
    assert got == {5 * MIN: {"leads": 0.0}, 6 * MIN: {"leads": 2}}
    assert m.ready() == []                                    # each window once


def test_nothing_is_filled_before_a_window_was_seen_or_while_a_partition_is_behind() -> None:
    spec = load_business_spec()
    lateness = spec.windows["1m"].lateness_ms
    m = Merger(spec, wall=lambda: 0.0)
    m.add("p0", 10 * MIN, [])
    assert m.ready() == []                                    # no series known yet
    m.add("p0", 11 * MIN + lateness, [leads(10 * MIN, 1)])
    m.add("p1", 11 * MIN + lateness, [])
    assert sorted(one_minute(m.ready())) == [10 * MIN]
    m.add("p0", 20 * MIN + lateness, [])                      # p1 is behind: wait for it
    assert m.ready() == []
    m.add("p1", 13 * MIN + lateness, [])
    assert sorted(one_minute(m.ready())) == [11 * MIN, 12 * MIN]


def test_rows_merge_like_points_and_a_bad_row_takes_nothing() -> None:
    pts = [SeriesPoint("leads", "default", ch, w, s, s + size, n, n, "count")
           for ch in ("douyin", "all") for w, size in (("1m", 60_000), ("1h", 3_600_000))
           for s, n in ((0, 2.0), (size, 3.0))]
    a, b = Merger(load_business_spec(), wall=lambda: 0.0), Merger(load_business_spec(),
                                                                   wall=lambda: 0.0)
    a.add("click:0", 10**8, pts)
    b.add_rows("click:0", 10**8, [[p.metric, p.tenant, p.channel, p.window, p.start_ms,
                                   p.end_ms, p.num, p.den, p.kind] for p in pts])
    assert a.ready() == b.ready() and a.watermarks == b.watermarks
    with pytest.raises(ValueError):
        b.add_rows("click:1", 10**9, [[p.metric, p.tenant, p.channel, p.window, p.start_ms,
                                       p.end_ms, p.num, p.den, p.kind] for p in pts] + [[1, 2]])
    assert "click:1" not in b.watermarks and not b.pending
