"""RFM, lifecycle and demand-stage families."""

from __future__ import annotations

import pytest
from conftest import DAY, T0, run


def _orders(make_event, amounts_days):
    return [make_event("order_paid", day=d, amount=a) for a, d in amounts_days]


@pytest.mark.parametrize(("orders", "tick_day", "expected"), [
    ([(3000, 0), (500, 10)], 20, "important_value"),        # R F M all high
    ([(3000, 0)], 20, "important_development"),             # R M high, F low
    ([(3000, 0), (500, 10)], 120, "important_retention"),   # F M high, R low
    ([(3000, 0)], 120, "important_recall"),                 # M high only
    ([(100, 0), (100, 10)], 20, "general_value"),           # R F high
    ([(100, 0)], 20, "general_development"),                # R high only
    ([(100, 0), (100, 10)], 120, "general_retention"),      # F high only
    ([(100, 0)], 120, "general_recall"),                    # none high
])
def test_rfm_eight_segments(engine, make_event, orders, tick_day, expected):
    st, _ = run(engine, _orders(make_event, orders))
    r = engine.on_tick(st, T0 + tick_day * DAY)
    assert r.state["tags"]["rfm_segment"] == expected
    assert not {"rfm_r", "rfm_f", "rfm_m"} & set(r.state["tags"])   # hidden helpers


def test_rfm_thresholds_are_configurable(make_event):
    from stream_app.rules.engine import DEFAULT_RULES, TagEngine
    from stream_app.rules.loader import ruleset_from_text
    text = (DEFAULT_RULES / "rfm.yaml").read_text(encoding="utf-8")
    assert "rfm_monetary: 3000" in text
    rs = ruleset_from_text(text.replace("rfm_monetary: 3000", "rfm_monetary: 50"))
    st, _ = run(TagEngine(rs), _orders(make_event, [(100, 0)]))
    assert st["tags"]["rfm_segment"] == "important_development"


def test_no_orders_no_rfm(engine, make_event):
    st, _ = run(engine, [make_event("course_view")])
    assert "rfm_segment" not in st["tags"]


def test_lifecycle_novice_growth_mature_repurchase_dormant(engine, make_event):
    st, _ = run(engine, [make_event("registered"), make_event("course_view", hour=1)])
    assert st["tags"]["lifecycle"] == "novice"
    views = [make_event("course_view", day=8 + i % 5, hour=i % 7) for i in range(6)]
    st, _ = run(engine, views, st)
    assert st["tags"]["lifecycle"] == "growth"         # A-class >= 5 after the novice week
    st, _ = run(engine, [make_event("search", day=12, hour=i % 9) for i in range(14)], st)
    assert st["tags"]["lifecycle"] == "mature"         # A-class >= 20 in 30 days
    st, _ = run(engine, [make_event("order_paid", day=13, amount=4980)], st)
    assert st["tags"]["lifecycle"] == "mature"
    st, _ = run(engine, [make_event("renewal", day=40, amount=2000)], st)
    assert st["tags"]["lifecycle"] == "repurchase"
    r = engine.on_tick(st, T0 + 71 * DAY)
    assert r.state["tags"]["lifecycle"] == "dormant"


def test_lifecycle_b_class_growth(engine, make_event):
    st, _ = run(engine, [make_event("video_watched", day=10 + i) for i in range(5)]
                + [make_event("registered")])
    assert st["tags"]["lifecycle"] == "growth"


def test_demand_stage_path(engine, make_event):
    st, _ = run(engine, [make_event("registered"), make_event("course_view", hour=1)])
    assert st["tags"]["demand_stage"] == "new_lead"
    st, _ = run(engine, [make_event("course_view", day=9)], st)
    assert st["tags"]["demand_stage"] == "nurturing"
    r = engine.on_tick(st, T0 + 40 * DAY)
    assert r.state["tags"]["demand_stage"] == "silent"
    # back after more than 30 silent days before the last 7 days
    st, _ = run(engine, [make_event("page_view", day=46)], r.state)
    assert st["tags"]["demand_stage"] == "reactivated"
    st, _ = run(engine, [make_event("consult_request", day=47)], st)
    assert st["tags"]["demand_stage"] == "converting"
    st, _ = run(engine, [make_event("order_paid", day=48, amount=3980)], st)
    assert st["tags"]["demand_stage"] == "in_service"
