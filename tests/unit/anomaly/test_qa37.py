"""QA37 F1, F2, F5: no learning during an open alarm (a persisting shift is adopted after a
day), warm-up in event time, critical severity needs a z deviation too. The scenarios are
the QA's repro scripts (/tmp/qa37/repro/r4, r5, r6)."""

from __future__ import annotations

import random

import numpy as np

from stream_app.anomaly.base import Verdict
from stream_app.anomaly.monitor import AnomalyMonitor
from stream_app.anomaly.seasonal import SeasonalDetector
from stream_app.business import SeriesPoint

MIN, H, DAY = 60_000, 3_600_000, 86_400_000
T0 = 1772409600000            # 2026-03-02 00:00 UTC, a Monday (day offset 0)


def _run_1m(values: np.ndarray, channel: str = "douyin") -> list[tuple[int, str, str, dict]]:
    """(minute index, change, direction, record) of every record of a 1-minute visits series."""
    mon = AnomalyMonitor(day_offset_ms=0)
    out = []
    for i, n in enumerate(values):
        t = T0 + i * MIN
        o = mon.observe(SeriesPoint("visits", "default", channel, "1m", t, t + MIN,
                                    float(n), float(n), "count"))
        if o.record:
            out.append((i, o.change, o.record["labels"]["direction"], o.record))
    return out


def test_f1_drop_to_zero_stays_open_and_no_false_up_alarm_on_return() -> None:
    """r5: Poisson 5/min for 3 days, then 0 for 4 h, then back. The old detector learned the
    zeros: "resolved" after 34 min while still 0, then a critical "up" alarm on return."""
    values = np.random.default_rng(2).poisson(5.0, 4 * 1440)
    d0 = 3 * 1440 + 600
    values[d0:d0 + 240] = 0
    recs = _run_1m(values)
    recs = [r for r in recs if r[1] != "escalate"]
    assert [(c, d) for _, c, d, _ in recs] == [("open", "down"), ("close", "down")]
    (opened, *_), (closed, *_) = recs
    assert d0 <= opened < d0 + 30
    assert d0 + 240 <= closed <= d0 + 240 + 30         # closes once traffic is back
    assert recs[0][3]["expected"] > 1.0                  # not the zeros it was fed


def test_f1_spike_alarm_holds_for_the_spike_and_no_false_drop_after() -> None:
    """r4: Poisson 3/min, then x10 for 60 min: the old alarm resolved at +54 min and a
    critical "down" alarm opened after the spike (traffic was normal)."""
    lam = np.full(4 * 1440, 3.0)
    s0 = 3 * 1440 + 720
    lam[s0:s0 + 60] = 30.0
    recs = [r for r in _run_1m(np.random.default_rng(1).poisson(lam), channel="all")
            if r[1] != "escalate"]
    assert [(c, d) for _, c, d, _ in recs] == [("open", "up"), ("close", "up")]
    assert s0 <= recs[0][0] < s0 + 5
    assert s0 + 60 <= recs[1][0] <= s0 + 60 + 30


def test_f1_persisting_level_shift_becomes_normal_after_about_a_day() -> None:
    """A channel's traffic goes from 5 to 20 a minute for good: the alarm stays open, and
    after adopt_days (1 day) the new level is normal (the alarm closes, z ~ 0)."""
    lam = np.full(6 * 1440, 5.0)
    s0 = 3 * 1440 + 600
    lam[s0:] = 20.0
    recs = [r for r in _run_1m(np.random.default_rng(4).poisson(lam)) if r[1] != "escalate"]
    assert [(c, d) for _, c, d, _ in recs][:2] == [("open", "up"), ("close", "up")]
    assert recs[0][0] < s0 + 10
    assert s0 + 1440 <= recs[1][0] <= s0 + 1440 + 120
    assert len(recs) == 2                             # no alarm once adopted


def test_f1_detector_state_is_backward_compatible_and_keeps_the_excursion() -> None:
    rng = random.Random(7)
    series = [(i * MIN, 5.0 + rng.gauss(0, 1)) for i in range(3 * 1440)]
    # a state saved by the release before QA37 (no t0, no excursion), during the warm-up
    a = SeasonalDetector(step_ms=MIN)
    for t, y in series[:1000]:
        a.update(t, y, 1.0)
    old = {k: v for k, v in a.to_dict().items()
           if k in ("level", "season", "seen", "extra_var", "n", "var_n")}
    b = SeasonalDetector(step_ms=MIN).load(old)
    for t, y in series[1000:2000]:
        assert a.update(t, y, 1.0) == b.update(t, y, 1.0)   # warm-up ends at the same point
    # a state saved in the middle of a held excursion round-trips
    for t, y in series[2000:2100]:
        a.update(t, y + 10.0, 1.0, hold=True)
    c = SeasonalDetector(step_ms=MIN).load(a.to_dict())
    assert c.to_dict() == a.to_dict() and a.to_dict()["exc_since"] == series[2000][0]
    for t, y in series[2100:2200]:
        assert a.update(t, y + 10.0, 1.0, hold=True) == c.update(t, y + 10.0, 1.0, hold=True)


def test_f1_held_points_teach_nothing_until_adopted() -> None:
    det = SeasonalDetector(step_ms=H, slot_ms=H, warmup_periods=1, week_classes=1,
                           adopt_days=1)
    for i in range(48):
        det.update(i * H, 5.0, 0.01)
    before = det.to_dict()
    for i in range(48, 48 + 24):
        v = det.update(i * H, 9.0, 0.01, hold=True)
        assert abs(v.expected - 5.0) < 1e-6 and v.z > 10
    assert {k: before[k] for k in ("level", "season", "extra_var")} == \
        {k: det.to_dict()[k] for k in ("level", "season", "extra_var")}
    det.update(72 * H, 9.0, 0.01, hold=True)            # 24 h after the first held point
    assert abs(det.expected(73 * H) - 9.0) < 1e-6


def test_f2_rate_series_warms_up_in_event_time_and_alarms_on_a_collapse() -> None:
    """r6: an hourly lead -> trial rate, 40 leads by day and 10 at night (under min_weight,
    not scored). Counted in points it was still warming after 14 days; a total collapse on
    day 10 raised no alarm."""
    rng = random.Random(3)
    mon = AnomalyMonitor(day_offset_ms=0)
    warm_at, alarms = None, []
    for i in range(24 * 14):
        t, hour, day = i * H, i % 24, i // 24
        leads = 40 if 8 <= hour < 20 else 10
        collapse = day == 10 and 12 <= hour < 18
        booked = 0 if collapse else sum(rng.random() < 0.3 for _ in range(leads))
        o = mon.observe(SeriesPoint("lead_to_trial", "default", "all", "1h", t, t + H,
                                    booked, leads, "rate"))
        if o is not None and not o.warming and warm_at is None:
            warm_at = i / 24
        if o is not None and o.change == "open":
            alarms.append((day, hour, o.record["labels"]["direction"]))
    assert warm_at is not None and 7.0 <= warm_at < 8.0   # 7 days after its first point
    assert alarms == [(10, 12, "down")]


def test_f2_sparse_series_still_needs_enough_points() -> None:
    det = SeasonalDetector(step_ms=H, warmup_periods=7, warmup_min_share=0.25)
    vs = [det.update(i * 24 * H, 1.0, 0.01) for i in range(20)]   # one point a day
    assert all(v.warming for v in vs)                     # 20 < 0.25 * 168 points
    dense = SeasonalDetector(step_ms=H, warmup_periods=7)
    vs = [dense.update(i * H, 1.0, 0.01) for i in range(169)]
    assert vs[166].warming and not vs[168].warming        # as before when every point counts


def test_f5_small_series_inside_its_range_is_a_warning_not_critical() -> None:
    mon = AnomalyMonitor()
    # live run 1: visits bilibili 1m val=0 exp=1.159 [0, 7.124] z=-1.252
    assert mon._severity(0.0, 1.159, Verdict(-1.252, 2.46, 1.0)) == "warning"
    assert mon._severity(7.0, 1.983, Verdict(2.2, 2.95, 1.0)) == "warning"
    # a real collapse: far off in relative and z terms
    assert mon._severity(10.0, 100.0, Verdict(-9.0, 20.0, 1.0)) == "critical"
    assert mon._severity(95.0, 100.0, Verdict(-13.0, 20.0, 0.05)) == "critical"   # critical_z
    assert mon._severity(60.0, 100.0, Verdict(-4.0, 20.0, 1.0)) == "warning"      # 40 % off
