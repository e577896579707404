"""Readable why records and timelines."""

from __future__ import annotations

from conftest import run

from stream_app.rules.explain import describe_change, explain, timeline, value_label


def test_explain_and_timeline(engine, make_event):
    st, changes = run(engine, [make_event("course_view"), make_event("trial_booked", hour=1),
                               make_event("order_paid", hour=2, amount=4980,
                                          category="python_data")])
    rs = engine.ruleset
    rows = timeline(changes, rs, "zh", tag_id="lead_points")
    assert [r["text"] for r in rows] == ["线索积分: 4 → 14 (变更)", "线索积分: 1 → 4 (变更)",
                                         "线索积分: 无 → 1 (新增)"]
    assert len(timeline(changes, rs, limit=2)) == 2
    r = engine.on_event(st, make_event("share", hour=3))
    text = explain(r.why["has_shared"], rs, "en")
    assert text.splitlines() == ["Has shared = Shared, because count(share) > 0",
                                 "  count(share) = 1"]
    assert explain(r.why["has_shared"], rs, "zh").startswith("有分享 = 已分享，因为 ")
    cat = next(c for c in changes if c["tag_id"] == "categories_bought")
    assert describe_change(cat, rs, "en") == (
        "Course categories bought: none → python_data (added)")


def test_value_labels(default_ruleset):
    assert value_label(default_ruleset, "activity", "churned", "zh") == "流失"
    assert value_label(default_ruleset, "at_risk", True, "en") == "At risk"
    assert value_label(default_ruleset, "rfm_r", False, "zh") == "否"
    assert value_label(default_ruleset, "lead_points", 12, "en") == "12"
    assert value_label(default_ruleset, "region", None, "en") == "none"


def test_explain_shows_durations_and_decayed_counts_readably(default_ruleset):
    """QA: ``since(stream:click) = 85585413`` (ms) and ``count(...) = 4.758475765053098``
    were hard for a consultant to read; the exact values stay in the record."""
    why = {"rule": "lead_points", "case": "default", "value": 5,
           "values": {"since(stream:click)": 85_585_413,
                      "count(course_view, 90d, half_life: 14d)": 4.758475765053098,
                      "tag(intent)": "high"}}
    assert explain(why, default_ruleset, "en").splitlines()[1:] == [
        "  count(course_view, 90d, half_life: 14d) = 4.76",
        "  since(stream:click) = 85585413 ms (23.8 h)",
        "  tag(intent) = high"]
    assert "85585413 ms (23.8小时)" in explain(why, default_ruleset, "zh")
    assert why["values"]["since(stream:click)"] == 85_585_413     # the record is not changed
