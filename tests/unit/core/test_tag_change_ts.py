"""What a tag change's ``ts`` and ``trigger`` are, as the schema and the docs say (QA L3: the
schema called ``ts`` "event time of the change", read as the triggering event's time): ``ts``
is the user's event-time clock at the change, ``trigger`` the event to join on."""

from __future__ import annotations

import orjson

from stream_app.config import REPO_ROOT
from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset

T0, DAY = 1714528800000, 86_400_000


def test_a_late_event_changes_tags_at_the_users_clock_and_is_the_trigger() -> None:
    eng = TagEngine(load_ruleset(DEFAULT_RULES))
    st = eng.on_event(None, Event("e1", "u1", T0 + 7 * DAY, "course_view", "click")).state
    late = eng.on_event(st, Event("late", "u1", T0, "order_paid", "order",
                                  {"amount": 3000}))
    assert late.changes
    assert {c["ts"] for c in late.changes} == {T0 + 7 * DAY}   # not the event's T0
    assert {c["trigger"] for c in late.changes} == {"late"}
    tick = eng.on_tick(late.state, T0 + 60 * DAY)
    assert tick.changes and {c["trigger"] for c in tick.changes} == {None}
    assert {c["ts"] for c in tick.changes} == {T0 + 60 * DAY}


def test_the_schema_says_so() -> None:
    schema = orjson.loads((REPO_ROOT / "topics/schemas/tag_change.schema.json").read_bytes())
    ts = schema["properties"]["ts"]["description"]
    trigger = schema["properties"]["trigger"]["description"]
    assert "clock" in ts and "trigger" in ts
    assert "join" in trigger and "null for a clock tick" in trigger
