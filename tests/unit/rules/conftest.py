"""Factories for rule-engine tests: the default engine and compact event builders."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset

CST = timezone(timedelta(hours=8))
DAY = 86_400_000
T0 = int(datetime(2024, 5, 1, 10, 0, tzinfo=CST).timestamp() * 1000)  # 2024-05-01T10:00+08:00

STREAM_OF = {
    **dict.fromkeys(["ad_landing", "page_view", "course_view", "search", "live_enter",
                     "trial_booked", "coupon_claimed", "share", "consult_request", "cart_add"],
                    "click"),
    **dict.fromkeys(["lesson_attended", "lesson_missed", "video_watched", "homework_submitted",
                     "quiz_scored", "course_started", "course_completed", "check_in"], "study"),
    **dict.fromkeys(["trial_purchased", "order_paid", "refund", "renewal"], "order"),
    **dict.fromkeys(["registered", "profile_updated", "deletion_requested"], "profile"),
    **dict.fromkeys(["outcome", "checkpoint"], "label"),
}


@pytest.fixture(scope="session")
def default_ruleset():
    return load_ruleset(DEFAULT_RULES)


@pytest.fixture
def engine(default_ruleset):
    return TagEngine(default_ruleset)


@pytest.fixture
def make_event():
    """``make_event(type, day=0, hour=0, user="u1", **props)``: day/hour offsets from T0."""
    ids = itertools.count(1)

    def make(etype: str, day: float = 0, hour: float = 0, user: str = "u1",
             event_id: str | None = None, **props) -> Event:
        ts = int(T0 + day * DAY + hour * 3_600_000)
        return Event(event_id or f"e{next(ids)}", user, ts, etype,
                     STREAM_OF.get(etype, "click"), props=props)
    return make


def run(engine, events, state=None):
    """Apply events in order; return (state, all changes)."""
    changes = []
    for ev in events:
        r = engine.on_event(state, ev)
        state = r.state
        changes.extend(r.changes)
    return state, changes


def tags_of(state):
    return dict(state["tags"]) if state else {}
