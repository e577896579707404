"""Demographic and consumption families."""

from __future__ import annotations

from conftest import DAY, T0, run


def test_demographic_latest_profile_values(engine, make_event):
    st, _ = run(engine, [
        make_event("registered", region="beijing", age_band="25-30", occupation="engineer",
                   education="本科", goal="转行"),
        make_event("profile_updated", day=3, region="shanghai", goal="certificate"),
    ])
    t = st["tags"]
    assert (t["region"], t["age_band"], t["occupation"]) == ("shanghai", "25-30", "engineer")
    assert (t["education"], t["goal"]) == ("bachelor", "certificate")


def test_demographic_out_of_order_update_keeps_latest(engine, make_event):
    st, _ = run(engine, [make_event("profile_updated", day=3, region="shanghai"),
                         make_event("registered", day=0, region="beijing", goal="xyz")])
    assert st["tags"]["region"] == "shanghai"
    assert st["tags"]["goal"] == "other"


def test_demographic_fields_from_click_are_ignored_and_unused_fields_not_stored(
        engine, make_event):
    st, _ = run(engine, [make_event("page_view", region="guangzhou"),
                         make_event("registered", phone="13800000000", region="hz")])
    assert st["tags"]["region"] == "hz"
    assert "13800000000" not in str(st)   # only fields some rule uses are kept


def test_oulad_highest_education(engine, make_event):
    st, _ = run(engine, [make_event("registered", highest_education="HE Qualification")])
    assert st["tags"]["education"] == "college"


def test_consumption_trial_only_then_paid(engine, make_event):
    st, _ = run(engine, [make_event("trial_purchased", amount=9.9)])
    t = st["tags"]
    assert (t["purchase_type"], t["spending_power"]) == ("trial_only", "low")
    assert "price_band" not in t and "categories_bought" not in t
    st, _ = run(engine, [
        make_event("order_paid", day=1, amount=4980, category="python_data",
                   class_type="small_class"),
        make_event("order_paid", day=2, amount=7980, category="java_backend",
                   class_type="one_on_one"),
    ], st)
    t = st["tags"]
    assert t["purchase_type"] == "paid"
    assert t["spending_power"] == "high"            # 12960 >= 8000
    assert t["price_band"] == "premium"             # peak 7980 >= 5000
    assert t["categories_bought"] == ["java_backend", "python_data"]
    assert t["class_type"] == "one_on_one"


def test_consumption_refund_lowers_spending(engine, make_event):
    st, _ = run(engine, [make_event("order_paid", amount=2500, course="ui_design"),
                         make_event("refund", day=1, amount=1000)])
    t = st["tags"]
    assert t["spending_power"] == "low" and t["refunded"] is True
    assert t["categories_bought"] == ["ui_design"]
    # the 365-day spend window: a year later the order no longer counts
    r = engine.on_tick(st, T0 + 400 * DAY)
    assert r.state["tags"]["spending_power"] == "low"
    assert r.state["tags"]["price_band"] == "standard"   # lifetime peak
