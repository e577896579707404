"""TagEngine mechanics: change records, dedup, out-of-order, clock, expiry, forget, reload."""

from __future__ import annotations

import fastjsonschema
import orjson
import pytest
from conftest import DAY, T0, run

from stream_app.config import REPO_ROOT
from stream_app.rules.engine import TagEngine
from stream_app.rules.loader import ruleset_from_text

CHANGE_SCHEMA = fastjsonschema.compile(
    orjson.loads((REPO_ROOT / "topics/schemas/tag_change.schema.json").read_bytes()))

MINI = """
version: "m.1"
tags:
  - id: viewer
    family: activity
    zh: 看课
    en: Viewer
    kind: enum
    cases:
      - {value: many, zh: 多, en: Many, when: "count(course_view, 7d) >= 2"}
      - {value: one, zh: 一, en: One, when: "count(course_view, 7d) == 1"}
    default: {value: null}
"""


@pytest.fixture
def mini():
    return TagEngine(ruleset_from_text(MINI), state_ttl_days=60)


def test_changes_follow_the_schema_and_number_per_user(engine, make_event):
    st, changes = run(engine, [make_event("registered", region="bj"),
                               make_event("course_view", hour=1, channel="bilibili")])
    assert changes
    for c in changes:
        CHANGE_SCHEMA(c)
        assert c["event_id"] == f"u1:{c['seq']}"
        assert c["rule_version"] == engine.ruleset.version
    base = T0 * 1000                       # numbering starts at the state's creation time
    assert [c["seq"] for c in changes] == list(range(base + 1, base + len(changes) + 1))
    assert st["seq"] == base + len(changes)


def test_a_recreated_user_never_reuses_change_ids(engine, make_event):
    r = engine.on_event(None, make_event("course_view"))
    first_ids = {c["event_id"] for c in r.changes}
    gone = engine.forget(r.state, T0 + 1000)
    first_ids |= {c["event_id"] for c in gone.changes}
    again = engine.on_event(None, make_event("course_view", hour=1))
    assert again.changes and not first_ids & {c["event_id"] for c in again.changes}


def test_state_round_trips_through_orjson(engine, make_event):
    evs = [make_event(t, day=i % 9, amount=100, channel="douyin", category="java",
                      percent=50, region="sh", inviter_id="u9")
           for i, t in enumerate(["registered", "course_view", "trial_booked", "order_paid",
                                  "lesson_missed", "lesson_attended", "video_watched",
                                  "share", "refund", "mystery_type"])]
    st, _ = run(engine, evs)
    back = orjson.loads(orjson.dumps(st))
    assert back == st
    # continuing from the decoded copy gives the same result as from the original
    nxt = make_event("course_view", day=10)
    a = engine.on_event(st, nxt)
    b = engine.on_event(back, nxt)
    assert a.changes == b.changes and a.state == b.state


def test_duplicate_event_changes_nothing(mini, make_event):
    ev = make_event("course_view")
    r = mini.on_event(None, ev)
    snapshot = orjson.dumps(r.state)
    r2 = mini.on_event(r.state, ev)
    assert r2.duplicate and r2.changes == [] and orjson.dumps(r2.state) == snapshot


def test_dedup_window_is_bounded(make_event):
    eng = TagEngine(ruleset_from_text(MINI), dedup_window=3)
    st, _ = run(eng, [make_event("page_view", event_id=f"p{i}") for i in range(5)])
    assert st["ids"] == ["p2", "p3", "p4"]
    assert not eng.on_event(st, make_event("page_view", event_id="p0")).duplicate


def test_out_of_order_event_counts_into_its_day(mini, make_event):
    st, _ = run(mini, [make_event("course_view", day=5)])
    st, ch = run(mini, [make_event("course_view", day=1)], st)   # older, still in window
    assert st["d"]["course_view"] == [[st["d"]["course_view"][0][0], 1],
                                      [st["d"]["course_view"][0][0] + 4, 1]]
    assert st["tags"]["viewer"] == "many"
    assert ch[0]["ts"] == T0 + 5 * DAY          # evaluated at the clock, not the old event time
    st, ch = run(mini, [make_event("course_view", day=-30)], st)   # outside the window
    assert st["tags"]["viewer"] == "many" and ch == []


def test_tick_clock_and_due(mini, make_event):
    r = mini.on_event(None, make_event("course_view"))
    st = r.state
    assert not mini.due(st, T0 + 3_600_000)     # same business day
    next_day = T0 + 14 * 3_600_000              # 2024-05-02 00:00 +08:00
    assert mini.due(st, next_day) and not mini.due(st, next_day - 1)
    r = mini.on_tick(st, T0 + 7 * DAY)
    assert [(c["old"], c["new"], c["reason"]) for c in r.changes] == [("one", None, "removed")]
    assert not mini.due(r.state, T0 + 7 * DAY)
    # an older clock never moves the state back
    r2 = mini.on_tick(r.state, T0)
    assert r2.changes == [] and r2.state["now"] == T0 + 7 * DAY


def test_ttl_expiry_removes_everything(mini, make_event):
    st, _ = run(mini, [make_event("course_view"), make_event("course_view", hour=1)])
    r = mini.on_tick(st, T0 + 6 * DAY)     # tag gone from the window, state kept
    assert r.state is not None
    st, _ = run(mini, [make_event("course_view", day=10)], r.state)
    assert st["tags"] == {"viewer": "one"}
    assert mini.due(st, T0 + (10 + 60) * DAY + 3_600_000 + 1)
    r = mini.on_tick(st, T0 + 71 * DAY)
    assert r.state is None
    assert [(c["tag_id"], c["old"], c["new"], c["reason"]) for c in r.changes] == [
        ("viewer", "one", None, "expired")]


def test_forget_and_deletion_request(engine, make_event):
    st, _ = run(engine, [make_event("registered", region="bj"), make_event("course_view")])
    held = dict(st["tags"])
    r = engine.forget(st, T0 + 1000)
    assert r.state is None
    assert {c["tag_id"]: (c["old"], c["new"], c["reason"]) for c in r.changes} == {
        k: (v, None, "deleted") for k, v in held.items()}
    st, _ = run(engine, [make_event("course_view")])
    r = engine.on_event(st, make_event("deletion_requested", hour=2))
    assert r.state is None and all(c["reason"] == "deleted" for c in r.changes)
    assert r.changes[0]["trigger"] is not None


def test_hot_reload_removes_tags_no_longer_defined(mini, make_event):
    st, _ = run(mini, [make_event("course_view")])
    other = ruleset_from_text(MINI.replace("id: viewer", "id: watcher"))
    mini.ruleset = other
    r = mini.on_tick(st, T0 + 1000)
    assert sorted((c["tag_id"], c["old"], c["new"], c["reason"]) for c in r.changes) == [
        ("viewer", "one", None, "rule_removed"), ("watcher", None, "one", "added")]
    assert all(c["rule_version"] == other.version for c in r.changes)


def test_a_removed_tag_keeps_its_family_on_its_change(mini, make_event):
    """QA F4: `rule_removed` changes carried `family: ""` (and a `family=""` metric series);
    the family is the one of the rule set that defined the tag."""
    st, _ = run(mini, [make_event("course_view")])
    mini.ruleset = ruleset_from_text(MINI.replace("id: viewer", "id: watcher"))
    r = mini.on_tick(st, T0 + 1000)
    assert {c["tag_id"]: (c["family"], c["reason"]) for c in r.changes} == {
        "viewer": ("activity", "rule_removed"), "watcher": ("activity", "added")}
    # still known after a further reload, and when the user is deleted under the new set
    mini.ruleset = ruleset_from_text(MINI.replace("id: viewer", "id: looker"))
    assert mini.family_of("viewer") == "activity"


def test_unknown_event_types_are_accepted(mini, make_event):
    st, _ = run(mini, [make_event("brand_new_thing", foo=1)])
    assert st["n"] == {"brand_new_thing": 1} and st["tags"] == {}


def test_only_tags_reading_the_event_are_re_evaluated(default_ruleset):
    aff = default_ruleset.affected("course_view", "click")
    assert {"activity", "lead_points", "first_channel"} <= aff     # read clicks
    assert "lifecycle" in aff                                      # reads the exact clock
    assert not {"region", "attendance_rate", "price_band"} & aff
    assert "region" in default_ruleset.affected("profile_updated", "profile")


def test_same_day_shortcut_matches_full_evaluation(engine, make_event):
    st, _ = run(engine, [make_event("registered", region="bj"), make_event("order_paid",
                                                                           amount=5000)])
    st, _ = run(engine, [make_event("course_view", hour=1)], st)    # same day: shortcut
    full = {k: v.value for k, v in engine.ruleset.evaluate(st, st["now"]).items()}
    assert st["tags"] == {k: v for k, v in full.items() if v is not None}
    assert st["hid"] == {"rfm_r": True, "rfm_f": False, "rfm_m": True}


def test_scores_re_evaluate_only_score_readers(engine, default_ruleset, make_event):
    aff = default_ruleset.affected("__scores__", "__scores__", clock_moved=False)
    assert aff == {"intent", "at_risk"}   # at_risk reads score.at_risk too
    st, _ = run(engine, [make_event("course_view")])
    r = engine.on_scores(st, {"convert": 0.9}, T0)
    assert {c["tag_id"] for c in r.changes} == {"intent", "demand_stage"}
    full = {k: v.value for k, v in engine.ruleset.evaluate(r.state, T0).items()}
    assert r.state["tags"] == {k: v for k, v in full.items() if v is not None}


def test_ruleset_from_files_equals_directory():
    from stream_app.rules.engine import DEFAULT_RULES
    from stream_app.rules.loader import load_ruleset, ruleset_from_files
    files = {f.name: f.read_text(encoding="utf-8") for f in DEFAULT_RULES.glob("*.yaml")}
    assert ruleset_from_files(files).version == load_ruleset(DEFAULT_RULES).version


def test_on_events_batch_equals_one_by_one(engine, make_event):
    evs = [make_event("registered", region="bj", inviter_id="u9"),
           make_event("course_view", hour=1, channel="douyin"),
           make_event("trial_booked", hour=2), make_event("course_view", day=1),
           make_event("order_paid", day=1, amount=4980)]
    one, _ = run(engine, evs)
    r = engine.on_events(None, evs)
    assert r.state["tags"] == one["tags"]
    assert {c["tag_id"]: c["new"] for c in r.changes} == one["tags"]   # net changes only
    seqs = [c["seq"] for c in r.changes]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert [e["type"] for e in r.emit] == ["invitee_registered", "invitee_trialled",
                                           "invitee_bought"]
    assert all(c["trigger"] == evs[-1].event_id for c in r.changes)
    again = engine.on_events(r.state, evs)
    assert again.duplicate and again.changes == []


def test_on_events_with_deletion(engine, make_event):
    evs = [make_event("course_view"), make_event("deletion_requested", hour=1)]
    r = engine.on_events(None, evs)
    assert r.state is None
    assert [(c["tag_id"], c["new"], c["reason"]) for c in r.changes][-1][1:] == (None, "deleted")
    r = engine.on_events(None, evs + [make_event("page_view", hour=2)])
    assert r.state is not None and r.state["tags"]["activity"] == "low"
