"""The convert layer is the rule engine's intent tag; the rules see only gated scores."""

from __future__ import annotations

from stream_app.alerts.policy import AlertPolicy
from stream_app.events import Event
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from stream_app.scoring.with_tags import rule_visible_scores
from tests.unit.scoring.fixtures import DAY, HOUR, T0, config, ev


def test_the_layer_is_the_intent_tag_whatever_the_points_say() -> None:
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    s = sc.on_event(None, ev("u1", T0, "course_view"), rule_tags={"intent": "high"})
    assert s.source["convert"] == "rules" and s.layers["convert"] == "high"
    s = sc.on_event(s.sc_state, ev("u1", T0 + 1, "course_view"), rule_tags={})
    assert s.layers["convert"] == "low"                 # no intent tag yet
    # without the rule engine (offline evaluation) the scorer's own thresholds
    s = sc.on_event(s.sc_state, ev("u1", T0 + 2, "course_view"))
    assert s.layers["convert"] == "low"


def test_retag_runs_before_the_layer_is_read_and_the_alert_decided() -> None:
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=AlertPolicy.from_config(cfg))
    seen = []

    def retag(step):
        seen.append(dict(step.scores))
        return {"intent": "high"}

    s = sc.on_event(None, ev("u1", T0, "course_view"), rule_tags={"intent": "low"},
                    retag=retag)
    assert seen and s.layers["convert"] == "high"
    assert [a["triggers"] for a in s.alerts] == [["enter_layer"]]


def test_rules_never_read_a_rules_sourced_score() -> None:
    assert rule_visible_scores({"convert": 0.9, "at_risk": 0.8},
                               {"convert": "rules", "at_risk": "logreg@3"}) == {
        "convert": None, "at_risk": 0.8}


def test_alert_reasons_are_decayed_points_not_lifetime_totals() -> None:
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg))
    st = None
    # months ago: many cart adds (lifetime 40 points); today: a few fresh actions
    for i in range(10):
        st = sc.on_event(st, ev("u1", T0 + i * HOUR, "cart_add"),
                         rule_tags={"intent": "medium"}).sc_state
    now = T0 + 120 * DAY
    alerts = []
    for i, t in enumerate(["trial_booked", "consult_request", "trial_purchased"]):
        s = sc.on_event(st, Event(f"n{i}", "u1", now + i * HOUR, t, "click"),
                        rule_tags={"intent": "low" if i < 2 else "high"})
        st = s.sc_state
        alerts += s.alerts
    # with the tags, the reasons are the lead-points actions of the last 30 days (alerts.yaml
    # hot_lead.basis), each with lead.yaml's points: the old cart adds are not cited
    reasons = {r["feature"]: r for r in alerts[-1]["reasons"] if r["kind"] == "points"}
    assert reasons["trial_purchased"]["points_each"] == 10 and "cart_add" not in reasons
    # the scorer alone (no tags): its own points, decayed (40 lifetime points, ~0.1 now)
    policy = sc.alert_policy
    step = s.__class__(st, s.scores, {**s.layers, "convert": "high"}, s.source)
    st["al"] = {}
    alone = policy.decide(st, Event("n9", "u1", now + 3 * HOUR, "search", "click"),
                          {}, step, None, None)
    points = {r["feature"]: r["weight"] for r in alone[0]["reasons"] if r["kind"] == "points"}
    assert points["trial_purchased"] > 4.9 and points.get("cart_add", 0.0) < 0.1


# ---- at risk: the at_risk tag (a bool) is the layer and the one trigger -------------------

def _learner(sc: Scorer, tags: dict, n: int = 6, etype: str = "lesson_missed") -> list:
    """``n`` study events of ``etype`` a day apart, all with the rule tags ``tags``."""
    st, alerts, layers = None, [], []
    for i in range(n):
        s = sc.on_event(st, Event(f"m{i}", "u1", T0 + i * DAY, etype, "study"),
                        rule_tags=tags)
        st = s.sc_state
        alerts += [a for a in s.alerts if a["kind"] == "at_risk"]
        layers.append(s.layers["at_risk"])
    return [alerts, layers]


def test_the_at_risk_layer_is_the_at_risk_tag_whatever_the_points_say() -> None:
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    # six missed lessons: 18 rule points, the scorer's own high (10), yet the tag decides
    assert _learner(sc, {"at_risk": False})[1][-1] == "low"
    assert _learner(sc, {})[1][-1] == "low"                       # no tag (not a learner)
    assert _learner(sc, {"at_risk": True}, n=1, etype="video_watched")[1] == ["high"]
    assert _learner(sc, None)[1][-1] == "high"      # no rule engine: the scorer's thresholds


def test_no_at_risk_alert_from_the_scorers_own_layer() -> None:
    """Before, the points (or p >= 0.7) entering the scorer's high layer alerted while the
    learner's at_risk tag said Normal."""
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=AlertPolicy.from_config(cfg))
    assert _learner(sc, {"at_risk": False})[0] == []


def test_an_at_risk_alert_needs_the_at_risk_tag_true_whatever_its_trigger() -> None:
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=AlertPolicy.from_config(cfg))
    # a run of three in the engine's streak, but the tag holds no value (e.g. a graduate)
    assert _learner(sc, {"consecutive_absences": 3, "at_risk": None})[0] == []
    alerts = _learner(sc, {"consecutive_absences": 3, "at_risk": True})[0]
    assert [a["triggers"] for a in alerts] == [["rule:consecutive_missed", "rule:at_risk"]]
    # the tag's condition that holds, against its threshold (not "flagged at risk by the
    # rules", nor the run said twice)
    assert [r["en"] for r in alerts[0]["reasons"]] == [
        "missed 3 lessons in a row (at risk from 3)"]
    assert alerts[0]["basis"] == "rules"
    assert alerts[0]["layer"] == "high"
