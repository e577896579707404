"""Shadow comparison of rule sets."""

from __future__ import annotations

import copy

from conftest import DAY, T0, run

from stream_app.rules.diff import diff_rulesets
from stream_app.rules.engine import DEFAULT_RULES
from stream_app.rules.loader import load_ruleset


def test_diff_reports_gains_losses_and_samples(tmp_path, engine, make_event):
    for f in DEFAULT_RULES.glob("*.yaml"):
        text = f.read_text(encoding="utf-8")
        if f.name == "activity.yaml":
            text = text.replace("activity_high_days: 3", "activity_high_days: 1")
        if f.name == "referral.yaml":
            continue                                   # drop a whole family
        (tmp_path / f.name).write_text(text, encoding="utf-8")
    new = load_ruleset(tmp_path)
    states = []
    for uid, days in (("a", [0]), ("b", [0, 1]), ("c", [0, 1, 2, 3, 4])):
        st, _ = run(engine, [make_event("course_view", day=d, user=uid) for d in days]
                    + [make_event("share", user=uid)])
        states.append(st)
    before = copy.deepcopy(states)
    d = diff_rulesets(engine.ruleset, new, states, T0 + 5 * DAY)
    assert states == before                                   # pure
    assert d.users == 3 and d.changed_users == 3              # everyone loses referral tags
    assert d.removed_tags == ["has_shared", "invited_count", "invitees_bought",
                              "invitees_trialled", "referral_stage"]
    assert d.tags["activity"].transitions == {("medium", "high"): 1}
    assert d.tags["activity"].samples == {("medium", "high"): ["b"]}
    assert d.tags["has_shared"].lost() == {True: 3}
    summary = d.to_dict()
    assert summary["tags"]["activity"]["gained"] == {"high": 1}
    assert summary["tags"]["activity"]["transitions"] == {"medium -> high": 1}
    assert "lead_points" not in summary["tags"]
    assert d.missing_history == [] and summary["missing_history"] == []


def test_diff_names_history_the_new_rules_lack(default_ruleset):
    from stream_app.rules.loader import ruleset_from_text
    extra = ruleset_from_text("""
tags:
  - {id: big_spender, family: consumption, zh: 大客户, en: Big spender, kind: bool,
     value: "sum(order_paid.price, 30d) > 10000 and profile.city == 'bj'"}
""")
    d = diff_rulesets(default_ruleset, extra, [], 0)
    assert d.missing_history == ["profile city", "sum order_paid.price"]
    assert d.users == 0 and "activity" in d.removed_tags
