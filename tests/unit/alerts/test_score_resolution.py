"""QA41 F5: one reading of a model score, the published one (0.01), for the rules, the gate,
the evaluation and the alerts.

The rules read ``score.convert`` rounded to 2 places (``score_with_tags``: deliberate, it
limits re-evaluation), so "high from 0.6" holds from 0.595; the gate counted precision and
recall on the unrounded score (0.5984: not flagged), and the hot-lead alert carried 0.5984
with the reason "model score 0.60 (high from 0.6)".
"""

from __future__ import annotations

from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset
from stream_app.scoring.config import GateConfig
from stream_app.scoring.gate import Gate, flagged
from stream_app.scoring.metrics import summarize
from stream_app.scoring.points import round_scores
from stream_app.scoring.scorer import ScoreStep
from tests.unit.alerts.test_alert_reasons import (
    HIGH_SCORE,
    MODEL_SAYS_LOW,
    _decide,
    _Explains,
    _lead_state,
    _policy,
)

#: scores on both sides of the published 0.6
AROUND = [0.5949, 0.595, 0.5951, 0.5984, 0.5999, 0.6, 0.6049]


def _intent_high(score: float) -> bool:
    """Whether lead.yaml's intent tag is high for a lead with a few lead points whose gated
    model scores ``score``, as the worker's glue hands it to the rules (rounded)."""
    engine = TagEngine(load_ruleset(DEFAULT_RULES))
    st = None
    for i, t in enumerate(["course_view", "trial_booked"]):
        st = engine.on_event(st, Event(f"e{i}", "u1", 1_714_528_800_000 + i, t, "click")).state
    assert st["tags"]["intent"] != "high"      # not from its points
    seen = round_scores({"convert": score})    # (with_tags.retag)
    engine.on_scores(st, {"convert": seen["convert"], "at_risk": None}, 1_714_528_800_010,
                     None)
    return st["tags"]["intent"] == "high"


def test_the_gate_flags_what_the_rules_make_high() -> None:
    assert HIGH_SCORE == 0.6
    rules = [_intent_high(p) for p in AROUND]
    assert rules == [False, False, True, True, True, True, True]
    assert [flagged(p, HIGH_SCORE) for p in AROUND] == rules
    g = Gate(GateConfig(window=10, min_labels=2, min_precision=0.5, min_recall=0.5), 0.6)
    g.update(0.5984, 1)     # high to the rules: a hit, not a miss
    g.update(0.5949, 0)     # 0.59: not flagged
    assert (g.precision, g.recall) == (1.0, 1.0) and g.is_open


def test_the_evaluation_counts_precision_and_recall_the_same_way() -> None:
    m = summarize([0.5984, 0.5949, 0.2], [1, 0, 0], 0.6)
    assert (m["precision"], m["recall"]) == (1.0, 1.0)


def test_the_alert_carries_the_score_the_rules_read() -> None:
    a = _decide(_policy(), 0.5984, "logreg@500", {"lead_points": 4, "intent": "high"}, [])
    assert a["score"] == 0.6 >= HIGH_SCORE
    [r] = [r for r in a["reasons"] if r["kind"] == "model_score"]
    assert r["value"] == a["score"] and r["en"] == "model score 0.60 (high from 0.6)"


def test_a_jump_is_a_rise_of_the_published_score() -> None:
    """0.0549 -> 0.2951 is 0.05 -> 0.30 to the rules, the API and the alert: a rise of 0.25
    (alerts.yaml ``jump``), alerted as such (the unrounded rise, 0.2402, was not)."""
    st, x, now = _lead_state()
    st["al"] = {"hot_lead": {"s": 0.0549, "j": 0.0549, "l": "medium"}}
    step = ScoreStep(st, {"convert": 0.2951}, {"convert": "medium"}, {"convert": "logreg@9"})
    [a] = _policy().decide(st, Event("e9", "u1", now, "cart_add", "click"), x, step,
                           _Explains(MODEL_SAYS_LOW), {"lead_points": 8, "intent": "medium"})
    assert a["triggers"] == ["jump"] and a["score"] == 0.3
    assert a["reasons"][0]["en"] == "score up from 0.05 to 0.30"
    assert (a["reasons"][0]["from"], a["reasons"][0]["value"]) == (0.05, 0.3)
    assert st["al"]["hot_lead"]["j"] == 0.3     # the next jump is measured from 0.30
    # and a rise that reads 0.24 (0.05 -> 0.29) is none
    st["al"] = {"hot_lead": {"s": 0.0549, "j": 0.0549, "l": "medium"}}
    step = ScoreStep(st, {"convert": 0.2949}, {"convert": "medium"}, {"convert": "logreg@9"})
    assert _policy().decide(st, Event("e10", "u1", now + 1, "cart_add", "click"), x, step,
                            _Explains(MODEL_SAYS_LOW), {"lead_points": 8, "intent": "medium"}
                            ) == []
