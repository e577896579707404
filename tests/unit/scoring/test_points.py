"""RulePoints (the per-event rule points and score) equals points_at / points_score /
rules_layer."""

from __future__ import annotations

import random

from stream_app.scoring.config import RulesConfig, TargetConfig
from stream_app.scoring.points import DAY_MS, RulePoints, add_points, points_at, points_score


def test_rule_points_equal_the_reference_functions() -> None:
    rng = random.Random(5)
    configs = [
        RulesConfig(points={"a": 1.0, "b": 3.0, "r": -10.0}, half_life_days=14, scale=12),
        RulesConfig(points={"m": 3.0, "x": -2.0}, half_life_days=10, scale=8,
                    layers={"high": 10.0, "medium": 4.0}, inactive_points_per_day=0.5,
                    inactive_after_days=7),
    ]
    for rc in configs:
        target = TargetConfig(name="t", rules=rc)
        fast = RulePoints("t", rc)
        rp: dict = {}
        ts = 1_700_000_000_000
        for _ in range(2_000):
            ts += rng.choice([0, 1, 60_000, DAY_MS // 3, 5 * DAY_MS])
            if rng.random() < 0.6:
                add_points(rp, "t", rng.choice(list(rc.points) + ["none"]),
                           ts - rng.choice([0, 0, 0, DAY_MS]), rc)
            study = rng.choice([None, ts - 20 * DAY_MS, ts - DAY_MS, ts])
            now = ts + rng.choice([0, 1, DAY_MS, 30 * DAY_MS, -DAY_MS])
            pts = points_at(rp, "t", now, rc, study)
            expected = (pts, round(points_score(pts, rc), 6), target.rules_layer(pts))
            assert fast.score_layer(rp, now, study) == expected
            assert fast.points(rp, now, study) == pts
        assert fast.score_layer({}, ts, None) == (0.0, 0.0, "low")


# ---- round_fixed: round(v, digits) bit for bit (the per-event rounding of points and scores)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from stream_app.scoring.points import round_fixed  # noqa: E402

_NEAR_HALVES = st.integers(-10**9, 10**9).map(lambda n: (n + 0.5) / 1e6)   # ties and near-ties


@settings(max_examples=3_000)
@given(v=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.floats(-2e6, 2e6), st.floats(-1e-3, 1e-3), _NEAR_HALVES,
                   st.integers(-10**6, 10**6)),
       digits=st.sampled_from([2, 3, 6]))
def test_round_fixed_is_round(v: float, digits: int) -> None:
    expected = round(v, digits)
    got = round_fixed(v, 10.0 ** digits, digits)
    # the same value, type and sign of zero (repr tells -0.0 from 0.0 and 1 from 1.0)
    assert repr(got) == repr(expected)


def test_round_fixed_on_points_like_values() -> None:
    rng = random.Random(11)
    for _ in range(200_000):
        v = rng.choice([rng.uniform(-40, 40), rng.uniform(0, 1), rng.randrange(10**8) / 2e6,
                        rng.randrange(10**5) / 2e3])
        for digits in (2, 3, 6):
            assert repr(round_fixed(v, 10.0 ** digits, digits)) == repr(round(v, digits))
