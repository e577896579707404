"""Lead score and intent, learning situation, referral (with derived events)."""

from __future__ import annotations

from conftest import DAY, T0, run

from stream_app.events import Event


def test_lead_points_and_intent_layers(engine, make_event):
    st, _ = run(engine, [make_event("course_view")])
    assert (st["tags"]["lead_points"], st["tags"]["intent"]) == (1, "low")
    st, _ = run(engine, [make_event("trial_booked", hour=1)], st)   # detail + booking: +3
    assert st["tags"]["lead_points"] == 4
    st, _ = run(engine, [make_event("course_view", hour=2)], st)
    assert (st["tags"]["lead_points"], st["tags"]["intent"]) == (5, "medium")
    st, ch = run(engine, [make_event("trial_purchased", hour=3, amount=9.9)], st)  # +10
    assert (st["tags"]["lead_points"], st["tags"]["intent"]) == (15, "high")
    hot = [c for c in ch if c["tag_id"] == "intent"]
    assert hot[0]["old"] == "medium" and hot[0]["new"] == "high"
    assert hot[0]["evidence"]["values"]["tag(lead_points)"] == 15


def test_no_lead_points_before_the_first_click(engine, make_event):
    st, _ = run(engine, [make_event("registered", region="bj"), make_event("lesson_attended")])
    assert "lead_points" not in st["tags"] and "intent" not in st["tags"]


def test_lead_points_decay_and_negative_points(engine, make_event):
    st, _ = run(engine, [make_event("course_view"), make_event("trial_booked", hour=1),
                         make_event("cart_add", hour=2)])
    assert st["tags"]["lead_points"] == 14
    r = engine.on_tick(st, T0 + 14 * DAY)            # one half-life
    assert r.state["tags"]["lead_points"] == 7
    st, _ = run(engine, [make_event("refund", day=14, amount=100)], r.state)
    assert st["tags"]["lead_points"] == 0             # 7 - 10, floored at 0
    r = engine.on_tick(st, T0 + 100 * DAY)
    assert r.state["tags"]["lead_points"] == 0


def test_intent_from_model_score(engine, make_event):
    # a course detail view: the lead point the model's score needs to make a lead high
    st, _ = run(engine, [make_event("course_view")])
    assert st["tags"]["intent"] == "low"
    r = engine.on_scores(st, {"convert": 0.62}, T0 + 1000)
    assert [(c["tag_id"], c["old"], c["new"], c["reason"]) for c in r.changes] == [
        ("intent", "low", "high", "score"),
        ("demand_stage", "new_lead", "converting", "score")]   # high intent = follow up
    assert r.why["intent"]["values"]["score.convert"] == 0.62
    r = engine.on_scores(r.state, {"convert": None}, T0 + 2000)
    assert r.state["tags"]["intent"] == "low"


def test_learning_rates_streak_and_at_risk(engine, make_event):
    evs = [make_event("lesson_attended", day=0), make_event("homework_submitted", day=0),
           make_event("video_watched", day=0, percent=80),
           make_event("lesson_attended", day=2), make_event("video_watched", day=2, percent=40),
           make_event("lesson_missed", day=4), make_event("lesson_missed", day=6)]
    st, _ = run(engine, evs)
    t = st["tags"]
    assert t["attendance_rate"] == 0.5
    assert t["homework_rate"] == 0.5
    assert t["completion_rate"] == 0.6
    assert t["consecutive_absences"] == 2
    assert t["at_risk"] is False
    assert t["progress_stage"] == "beginner"
    st, ch = run(engine, [make_event("lesson_missed", day=8)], st)
    assert st["tags"]["at_risk"] is True
    assert ("at_risk", False, True) in [(c["tag_id"], c["old"], c["new"]) for c in ch]
    st, _ = run(engine, [make_event("lesson_attended", day=10)], st)
    assert st["tags"]["at_risk"] is False and "consecutive_absences" not in st["tags"]


def test_streak_out_of_order_attendance_resets(engine, make_event):
    st, _ = run(engine, [make_event("lesson_missed", day=d) for d in (1, 3, 5)])
    assert st["tags"]["consecutive_absences"] == 3
    st, _ = run(engine, [make_event("lesson_attended", day=4)], st)   # arrives late
    assert st["tags"]["consecutive_absences"] == 1


def test_stalled_learner_at_risk_and_graduated(engine, make_event):
    st, _ = run(engine, [make_event("lesson_attended")])
    r = engine.on_tick(st, T0 + 15 * DAY)
    assert r.state["tags"]["at_risk"] is True
    st, _ = run(engine, [make_event("course_completed", day=16)], r.state)
    assert st["tags"]["progress_stage"] == "graduated" and "at_risk" not in st["tags"]


def test_referral_derived_events_change_the_inviter(engine, make_event):
    inviter, _ = run(engine, [make_event("share", user="u1")])
    assert inviter["tags"]["has_shared"] is True
    assert inviter["tags"]["referral_stage"] == "shared"
    r = engine.on_event(None, make_event("registered", user="u2", hour=1, inviter_id="u1"))
    assert [(e["user_id"], e["type"]) for e in r.emit] == [("u1", "invitee_registered")]
    invitee = r.state
    derived = [Event(e["event_id"], e["user_id"], e["ts"], e["type"], e["stream"],
                     props=e["props"]) for e in r.emit]
    for step in ("trial_booked", "order_paid"):
        r = engine.on_event(invitee, make_event(step, user="u2", hour=2, amount=1))
        invitee = r.state
        derived += [Event(e["event_id"], e["user_id"], e["ts"], e["type"], e["stream"],
                          props=e["props"]) for e in r.emit]
    # a second order of the same invitee emits nothing new
    assert engine.on_event(invitee, make_event("order_paid", user="u2", hour=3)).emit == []
    inviter, ch = run(engine, derived + derived, inviter)   # re-delivery is de-duplicated
    t = inviter["tags"]
    assert (t["invited_count"], t["invitees_trialled"], t["invitees_bought"]) == (1, 1, 1)
    assert t["referral_stage"] == "invitee_bought"
    assert "activity" in t and t["activity"] == "low"   # derived events are not visits
    assert len([c for c in ch if c["tag_id"] == "invited_count"]) == 1


def test_graduate_who_starts_again_is_watched_again(engine, make_event):
    """at_risk v4: a completed course ends the watch until a course starts again; then the
    missed-lessons and stall terms apply to the new course (before, null for good)."""
    st, _ = run(engine, [make_event("course_started"), make_event("lesson_attended"),
                         make_event("course_completed", day=20)])
    assert "at_risk" not in st["tags"]
    st, _ = run(engine, [make_event("renewal", day=25, amount=100)], st)
    r = engine.on_tick(st, T0 + 45 * DAY)           # 25 days without study, not started again
    assert "at_risk" not in r.state["tags"]
    st, ch = run(engine, [make_event("course_started", day=46)], r.state)
    assert st["tags"]["at_risk"] is False
    assert ("at_risk", None, False) in [(c["tag_id"], c["old"], c["new"]) for c in ch]
    st, _ = run(engine, [make_event("lesson_missed", day=d) for d in (47, 49, 51)], st)
    assert st["tags"]["at_risk"] is True
    r = engine.on_tick(st, T0 + 70 * DAY)           # still at risk: stalled since day 51
    assert r.state["tags"]["at_risk"] is True
    st, _ = run(engine, [make_event("course_completed", day=71)], r.state)
    assert "at_risk" not in st["tags"]              # graduated again: not watched


def test_missed_lessons_in_a_row_are_counted_within_a_course(engine, make_event):
    """at_risk v5 / consecutive_absences v2 (QA30 F1): two misses of a completed course and
    one of the next course are not three in a row; three misses of the new course are."""
    st, _ = run(engine, [make_event("course_started"), make_event("lesson_missed", day=1),
                         make_event("lesson_missed", day=2)])
    assert st["tags"]["consecutive_absences"] == 2
    st, _ = run(engine, [make_event("course_completed", day=3)], st)
    assert "consecutive_absences" not in st["tags"] and "at_risk" not in st["tags"]
    st, ch = run(engine, [make_event("course_started", day=4),
                          make_event("lesson_missed", day=5)], st)
    assert st["tags"]["consecutive_absences"] == 1
    assert st["tags"]["at_risk"] is False
    assert ("at_risk", False, True) not in [(c["tag_id"], c["old"], c["new"]) for c in ch]
    st, ch = run(engine, [make_event("lesson_missed", day=d) for d in (6, 7)], st)
    assert st["tags"]["consecutive_absences"] == 3
    assert ("at_risk", False, True) in [(c["tag_id"], c["old"], c["new"]) for c in ch]
