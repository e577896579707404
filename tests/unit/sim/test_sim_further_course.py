"""A renewing graduate may start the renewed course (``study.renewal_start``), so the
simulated stream covers the at_risk rule's "a graduate who starts again is watched again"
(config/rules/learning.yaml at_risk v4), which before only unit tests of the rules did."""

from __future__ import annotations

from typing import Any

from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset

from .fixtures import Run, make_run

LESSONS = ("lesson_attended", "lesson_missed")


def _started_again(run: Run) -> list[str]:
    """Users whose history has a completed course, then a course start, then lessons."""
    out = []
    for uid, evs in run.by_user.items():
        types = [e["type"] for e in evs]
        if "course_completed" not in types:
            continue
        done = types.index("course_completed")
        if "course_started" not in types[done:]:
            continue
        start = types.index("course_started", done)
        if any(t in LESSONS for t in types[start:]):
            out.append(uid)
    return out


def test_renewing_graduates_start_a_further_course(run: Run) -> None:
    again = _started_again(run)
    assert len(again) >= 2, again
    for uid in again:
        evs = run.by_user[uid]
        t = run.truth[uid]
        assert t["renewed"] and t["completed"] and t["courses"] >= 2
        starts = [e for e in evs if e["type"] == "course_started"]
        renewal = next(e for e in evs if e["type"] == "renewal")
        # the renewed course is the one that starts, after its order, with its own lessons
        assert starts[1]["props"]["course_id"] == renewal["props"]["course_id"] != \
            starts[0]["props"]["course_id"]
        assert renewal["ts"] < starts[1]["ts"]
        second = [e for e in evs if e["ts"] > starts[1]["ts"] and e["type"] in LESSONS]
        assert second and {e["props"]["course_id"] for e in second} == {
            starts[1]["props"]["course_id"]}
        assert len({e["event_id"] for e in evs}) == len(evs)


def test_the_tag_engine_watches_them_again() -> None:
    """Replayed through the real rules, at_risk is null from the graduation until the
    further course starts, and has a value (true or false) again from then on."""
    run = make_run(days=75, seed=5)
    engine = TagEngine(load_ruleset(DEFAULT_RULES))
    again = _started_again(run)
    assert len(again) >= 5, again
    for uid in again:
        state = None
        seen: list[tuple[str, Any]] = []
        for d in run.by_user[uid]:
            ev = Event(d["event_id"], d["user_id"], d["ts"], d["type"], d["stream"],
                       d.get("tenant") or "default", d.get("props") or {})
            state = engine.on_event(state, ev).state
            seen.append((d["type"], state["tags"].get("at_risk")))
        done = next(i for i, (typ, _) in enumerate(seen) if typ == "course_completed")
        start = next(i for i, (typ, _) in enumerate(seen)
                     if i > done and typ == "course_started")
        assert [v for _, v in seen[done:start]] == [None] * (start - done), uid
        lessons = [v for typ, v in seen[start:] if typ in LESSONS]
        assert lessons and all(isinstance(v, bool) for v in lessons), (uid, lessons)


def test_renewal_start_is_the_configured_probability() -> None:
    never = make_run(users=1500, days=75, seed=5, **{"study.renewal_start": 0})
    assert sum(t["renewed"] for t in never.truth.values()) >= 3
    assert max(t["courses"] for t in never.truth.values()) == 1
    assert _started_again(never) == []
    always = make_run(users=1500, days=75, seed=5, **{"study.renewal_start": 1})
    assert len(_started_again(always)) > 0
    # seeded: the further courses (their own random streams) are the same run after run
    same = make_run(users=1500, days=75, seed=5, **{"study.renewal_start": 1})
    assert [(e["event_id"], e["ts"]) for e in same.events] == [
        (e["event_id"], e["ts"]) for e in always.events]
