"""No intent layer before a lead's first click, whatever the model says (lead.yaml intent
version 3). The worker reads the profile and click topics side by side, so a registration
can be read before the click that led to it: a live model scored that registration-only
state 0.6-0.96, the tag entered high, a hot-lead alert went to sales, and the click read a
moment later brought it back to medium (QA, session 25: 18% of a dev run's hot-lead alerts).
"""

from __future__ import annotations

from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset

T = 1_800_000_000_000


def test_a_registration_alone_has_no_intent_even_with_a_high_model_score() -> None:
    eng = TagEngine(load_ruleset(DEFAULT_RULES))
    r = eng.on_event(None, Event("r", "u1", T, "registered", "profile"))
    st = r.state
    eng.on_scores(st, {"convert": 0.9, "at_risk": None}, T)
    assert st["tags"].get("intent") is None
    # the click that came first is read now: the model's score counts from here, up to
    # medium while the lead has no lead points (an ad landing alone: intent version 4)
    r = eng.on_event(st, Event("c", "u1", T - 60_000, "ad_landing", "click"))
    eng.on_scores(r.state, {"convert": 0.9, "at_risk": None}, T)
    assert r.state["tags"]["intent"] == "medium"


def test_the_model_makes_a_lead_high_once_it_has_a_lead_point() -> None:
    """A dev run's model-made hot leads were mostly new visitors with one ad landing ("ad
    landing visits today", scored 0.6-0.9): the model's score makes a lead high only with
    ``intent_model_min_points`` (1: a course detail view)."""
    eng = TagEngine(load_ruleset(DEFAULT_RULES))
    st = eng.on_event(None, Event("a", "u1", T, "ad_landing", "click")).state
    eng.on_scores(st, {"convert": 0.95, "at_risk": None}, T)
    assert st["tags"]["lead_points"] == 0 and st["tags"]["intent"] == "medium"
    r = eng.on_event(st, Event("c", "u1", T + 60_000, "course_view", "click"))
    assert r.state["tags"]["lead_points"] == 1 and r.state["tags"]["intent"] == "high"
