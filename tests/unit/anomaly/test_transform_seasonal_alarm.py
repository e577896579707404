"""Transforms, the seasonal baseline and the CUSUM alarm on controlled series."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest

from stream_app.anomaly.alarm import CusumAlarm
from stream_app.anomaly.seasonal import SeasonalDetector
from stream_app.anomaly.transform import from_stable, to_stable

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000


@pytest.mark.parametrize("kind,value,weight", [("count", 0.0, 0.0), ("count", 37.0, 37.0),
                                               ("rate", 0.0, 50), ("rate", 0.37, 50),
                                               ("rate", 1.0, 5), ("revenue", 1234.5, 1)])
def test_transform_round_trips(kind: str, value: float, weight: float) -> None:
    y, _ = to_stable(kind, value, weight)
    assert from_stable(kind, y) == pytest.approx(value, abs=1e-9)


def test_anscombe_makes_poisson_variance_about_one() -> None:
    rng = np.random.default_rng(0)
    for lam in (3.0, 30.0, 300.0):
        ys = [to_stable("count", float(x), 0)[0] for x in rng.poisson(lam, 4000)]
        assert 0.8 < statistics.pvariance(ys) < 1.2


def test_rate_variance_matches_binomial() -> None:
    rng = np.random.default_rng(1)
    n = 200
    ys = [to_stable("rate", k / n, n)[0] for k in rng.binomial(n, 0.3, 4000)]
    assert statistics.pvariance(ys) == pytest.approx(to_stable("rate", 0.3, n)[1], rel=0.15)


def _seasonal_series(days: int, seed: int, noise: float = 1.0):
    rng = random.Random(seed)
    for t in range(0, days * DAY, MIN):
        local_h = ((t + 8 * HOUR) % DAY) / HOUR
        weekend = ((t + 8 * HOUR) // DAY + 3) % 7 >= 5
        base = 10 + 4 * math.exp(-0.5 * ((local_h - 20) / 2) ** 2) + (1.5 if weekend else 0)
        yield t, base + rng.gauss(0, noise)


def test_seasonal_z_scores_are_standard_on_clean_data() -> None:
    det = SeasonalDetector(step_ms=MIN, week_classes=2, level_halflife=30)
    zs = [det.update(t, y, 1.0) for t, y in _seasonal_series(9, seed=2)]
    after = [v.z for v in zs[8 * 1440:]]  # 2nd week: the weekend class has been seen
    assert all(v.warming for v in zs[:1439]) and not zs[1441].warming
    assert 0.85 < statistics.pstdev(after) < 1.2
    assert abs(statistics.fmean(after)) < 0.2


def test_seasonal_learns_overdispersion() -> None:
    det = SeasonalDetector(step_ms=MIN, week_classes=1)
    vs = [det.update(t, y, 1.0) for t, y in _seasonal_series(4, seed=3, noise=2.0)]
    assert statistics.pstdev(v.z for v in vs[3 * 1440:]) == pytest.approx(1.0, abs=0.2)
    assert vs[-1].sd == pytest.approx(2.0, rel=0.2)


def test_seasonal_state_round_trips() -> None:
    a = SeasonalDetector(step_ms=MIN)
    series = list(_seasonal_series(3, seed=4))
    for t, y in series[:3000]:
        a.update(t, y, 1.0)
    b = SeasonalDetector(step_ms=MIN).load(a.to_dict())
    for t, y in series[3000:3100]:
        assert a.update(t, y, 1.0) == b.update(t, y, 1.0)


def test_alarm_quiet_on_noise_and_fires_on_shift() -> None:
    rng = random.Random(5)
    alarm = CusumAlarm(k=1.0, h=10.0, z_spike=7.0)
    opens = [alarm.step(t, rng.gauss(0, 1)) for t in range(20_000)].count("open")
    assert opens == 0
    events = [alarm.step(20_000 + t, -3.0 + rng.gauss(0, 1)) for t in range(20)]
    assert "open" in events and alarm.direction == "down"
    assert 20_000 <= alarm.since <= 20_000 + events.index("open")
    closes = [alarm.step(30_000 + t, rng.gauss(0, 0.3)) for t in range(40)]
    assert "close" in closes and not alarm.open


def test_alarm_spike_opens_at_once_upwards() -> None:
    alarm = CusumAlarm(k=1.0, h=100.0, z_spike=6.0)
    assert alarm.step(1, 0.0) is None
    assert alarm.step(2, 9.0) == "open"
    assert alarm.direction == "up" and alarm.since == 2
    d = alarm.to_dict()
    assert CusumAlarm(1.0, 100.0, 6.0).load(d).to_dict() == d
