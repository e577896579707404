"""``on_scores(..., before=prior)``: the score re-evaluation after an event reads in prev()
the values from before the event (``StepResult.prior``), so the event's two passes decide as
one evaluation with the new scores would. Without it, a lead kept high by its points, whose
refund dropped it to medium in the first pass (old score 0.4), stayed medium although the
event's new score (0.55) is above the keep threshold (0.5)."""

from __future__ import annotations

from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset

T, H = 1_800_000_000_000, 3_600_000


def _lead() -> tuple[TagEngine, dict]:
    eng = TagEngine(load_ruleset(DEFAULT_RULES))
    st = None
    for i, t in enumerate(["course_view", "course_view", "course_view", "trial_booked",
                           "cart_add"]):
        st = eng.on_event(st, Event(f"c{i}", "u1", T + i * H, t, "click")).state
    assert st["tags"]["lead_points"] >= 15 and st["tags"]["intent"] == "high"
    eng.on_scores(st, {"convert": 0.4, "at_risk": None}, T + 4 * H)
    assert st["tags"]["intent"] == "high"          # kept by its points
    return eng, st


def test_the_score_pass_starts_from_the_values_before_the_event() -> None:
    eng, st = _lead()
    r = eng.on_event(st, Event("r", "u1", T + 5 * H, "refund", "order"))
    assert r.prior is not None and r.prior[0]["intent"] == "high"   # the tags before it
    assert st["tags"]["intent"] == "medium"         # the first pass, with the old score
    eng.on_scores(st, {"convert": 0.55, "at_risk": None}, T + 5 * H, r.prior)
    assert st["tags"]["intent"] == "high"           # 0.55 >= 0.5 keeps a lead that was high


def test_without_the_prior_the_first_pass_value_is_prev() -> None:
    eng, st = _lead()
    eng.on_event(st, Event("r", "u1", T + 5 * H, "refund", "order"))
    eng.on_scores(st, {"convert": 0.55, "at_risk": None}, T + 5 * H)
    assert st["tags"]["intent"] == "medium"
