"""Activity family: visits in the churn period, customer status by purchase."""

from __future__ import annotations

from conftest import DAY, T0, run


def test_acceptance_single_course_view_then_churn(engine, make_event):
    r = engine.on_event(None, make_event("course_view"))
    act = [c for c in r.changes if c["tag_id"] == "activity"]
    assert [(c["user_id"], c["old"], c["new"], c["reason"]) for c in act] == [
        ("u1", None, "low", "added")]
    assert act[0]["ts"] == T0 and act[0]["trigger"] == "e1"
    assert r.why["activity"]["values"]["active_days(stream:click|stream:study, $churn_period)"] == 1
    r2 = engine.on_tick(r.state, T0 + 31 * DAY)
    assert [(c["old"], c["new"]) for c in r2.changes if c["tag_id"] == "activity"] == [
        ("low", "churned")]
    assert r2.changes[0]["trigger"] is None


def test_levels_by_active_days(engine, make_event):
    st, _ = run(engine, [make_event("course_view", day=0), make_event("page_view", day=0)])
    assert st["tags"]["activity"] == "low"  # two events, one day
    st, _ = run(engine, [make_event("lesson_attended", day=1)], st)
    assert st["tags"]["activity"] == "medium"
    st, _ = run(engine, [make_event("search", day=2)], st)
    assert st["tags"]["activity"] == "medium"
    st, ch = run(engine, [make_event("video_watched", day=3)], st)
    assert st["tags"]["activity"] == "high"
    assert [(c["old"], c["new"]) for c in ch if c["tag_id"] == "activity"] == [("medium", "high")]


def test_orders_alone_are_not_visits(engine, make_event):
    st, _ = run(engine, [make_event("order_paid", amount=100)])
    assert "activity" not in st["tags"]
    assert st["tags"]["customer_status"] == "existing"


def test_window_slides_with_the_clock(engine, make_event):
    evs = [make_event("course_view", day=d) for d in range(5)]
    st, _ = run(engine, evs)
    assert st["tags"]["activity"] == "high"
    # day 31: only days 2..4 remain in the 30-day window -> 3 days = medium
    r = engine.on_tick(st, T0 + 31 * DAY)
    assert r.state["tags"]["activity"] == "medium"
    r = engine.on_tick(r.state, T0 + 34 * DAY)
    assert r.state["tags"]["activity"] == "churned"


def test_customer_status_goes_dormant(engine, make_event):
    st, _ = run(engine, [make_event("order_paid", amount=1999)])
    assert st["tags"]["customer_status"] == "existing"
    r = engine.on_tick(st, T0 + 181 * DAY)
    assert r.state["tags"]["customer_status"] == "dormant"
    st, _ = run(engine, [make_event("renewal", day=200, amount=999)], r.state)
    assert st["tags"]["customer_status"] == "existing"
