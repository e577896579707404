"""PIPL consent (config/rules/demographic.yaml marketing_consent / profiling_consent): a user
who refused profiling gets no model score (the rule points only, so the rules see no
score.X), no hot-lead alert goes to a lead who refused marketing, and neither flag is a model
feature (QA, session 25: "profiling consent is 0" was a reason a lead was hot)."""

from __future__ import annotations

from stream_app.alerts.policy import AlertPolicy
from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from stream_app.scoring.with_tags import score_with_tags
from tests.unit.scoring.fixtures import config

T, H = 1_800_000_000_000, 3_600_000


class _Live(ModelRegistry):
    """Every target's model live, scoring 0.9."""

    def source(self, target: str) -> str:
        return "logreg@1"

    def predict(self, target: str, x: dict[str, float]) -> float:
        return 0.9


def _lead(consent: dict) -> tuple[dict, list]:
    cfg = config()
    eng = TagEngine(load_ruleset(DEFAULT_RULES))
    sc = Scorer(cfg, _Live(cfg), alert_policy=AlertPolicy.from_config(cfg))
    st, alerts, steps = None, [], []
    evs = [Event("r", "u1", T, "registered", "profile", props=consent),
           Event("a", "u1", T + H, "ad_landing", "click"),
           Event("c", "u1", T + 2 * H, "course_view", "click")]
    for e in evs:
        r = eng.on_event(st, e)
        st = r.state
        step, _ = score_with_tags(sc, eng, st, r.changes, r.why, e, prior=r.prior)
        alerts += step.alerts
        steps.append(step)
    return st, [steps[-1], alerts]


def test_a_user_who_refused_profiling_gets_no_model_score() -> None:
    st, (step, _) = _lead({"consent_profiling": False, "consent_marketing": True})
    assert st["tags"]["profiling_consent"] is False
    assert set(step.source.values()) == {"rules"}
    assert st["scores"]["convert"] is None and st["tags"]["intent"] != "high"
    st, (step, _) = _lead({"consent_profiling": True, "consent_marketing": True})
    assert step.source["convert"] == "logreg@1" and st["tags"]["intent"] == "high"


def test_no_hot_lead_alert_for_a_lead_who_refused_marketing() -> None:
    _, (_, alerts) = _lead({"consent_profiling": True, "consent_marketing": False})
    assert [a for a in alerts if a["kind"] == "hot_lead"] == []
    _, (_, alerts) = _lead({"consent_profiling": True, "consent_marketing": True})
    assert [a["kind"] for a in alerts] == ["hot_lead"]
    _, (_, alerts) = _lead({})                     # not told: no refusal
    assert [a["kind"] for a in alerts] == ["hot_lead"]


def test_consent_flags_are_not_features() -> None:
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    s = sc.on_event(None, Event("r", "u1", T, "registered", "profile",
                                props={"consent_profiling": False, "consent_marketing": True,
                                       "goal": "certificate"}))
    x = sc.features(s.sc_state, T)
    assert "goal=certificate" in x
    assert [f for f in x if "consent" in f] == []
