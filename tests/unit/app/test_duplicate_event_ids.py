"""Event ids are unique per user across all input streams (README "The event contract",
docs/GUARANTEES.md section 1): the user's state remembers its last ``dedup_window`` event
ids whatever stream they came on, so a second event of the user with an id already applied
is a duplicate, dropped (nothing changes), counted in ``stream_app_duplicate_events_total``
by the stream it came on, and never dead-lettered: an at-least-once re-delivery is normal
(QA session 26, F9: one user's click, study and order with the same id, two dropped).

The agent test runs the worker's ``handle_event`` (bench.glue_cost's fakes: no Kafka, no
Redis) in a subprocess: importing the agents builds the Faust app."""

from __future__ import annotations

import json

from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset
from tests.unit.app.snippet import GLUE_FEED, last_line

T = 1_800_000_000_000


def test_one_id_is_one_event_of_a_user_whatever_its_stream() -> None:
    eng = TagEngine(load_ruleset(DEFAULT_RULES))
    r = eng.on_event(None, Event("same", "u1", T, "course_view", "click"))
    assert not r.duplicate
    st = r.state
    for etype, stream in (("lesson_attended", "study"), ("order_paid", "order")):
        r = eng.on_event(st, Event("same", "u1", T + 1, etype, stream, props={"amount": 9}))
        assert r.duplicate and r.changes == [] and r.state is st
    assert st["n"] == {"course_view": 1}            # the first copy only
    # per user: another user's event with the same id is its own event
    other = eng.on_event(None, Event("same", "u2", T, "order_paid", "order",
                                     props={"amount": 9}))
    assert not other.duplicate and other.state["n"] == {"order_paid": 1}


CODE = GLUE_FEED + r"""
click = {"event_id": "qa-dup-1", "user_id": "u1", "ts": now, "type": "course_view", "props": {}}
feed("events.click", "click", click)
feed("events.click", "click", click)                       # a re-delivery
feed("events.study", "study", {**click, "type": "lesson_attended", "ts": now + 1})
feed("events.order", "order", {**click, "type": "order_paid", "ts": now + 2,
                               "props": {"amount": 99}})
feed("events.order", "order", {**click, "user_id": "u2", "type": "order_paid",
                               "props": {"amount": 99}})   # another user: its own event


def value(name, **labels):
    return side.registry.get_sample_value(name, labels) or 0


print(json.dumps({
    "dup": {s: value("stream_app_duplicate_events_total", stream=s)
            for s in ("click", "study", "order")},
    "dlq": [r[0] for r in side.producer.records if r[0] == "events.dlq"],
    "counts": agents.load_state("u1", 0)[0]["n"],
    "u2": agents.load_state("u2", 0)[0]["n"],
}))
"""


def test_the_worker_counts_dropped_duplicates_and_dead_letters_none(tmp_path) -> None:
    out = json.loads(last_line(CODE, tmp_path))
    assert out["counts"] == {"course_view": 1} and out["u2"] == {"order_paid": 1}
    assert out["dup"] == {"click": 1, "study": 1, "order": 1}
    assert out["dlq"] == []
