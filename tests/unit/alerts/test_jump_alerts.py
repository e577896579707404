"""The hot-lead ``jump`` trigger and the entry into high intent (QA34 F1).

A jump (the gated model's score up by ``jump``) alerted leads whatever their ``intent`` tag,
even leads with no tag yet ("model score 0.60 (high from 0.6)" next to ``layer: low``), and
took the lead's one 24 h cooldown: the alert of the lead's entry into high intent, minutes
later, was never sent (39 leads in 5 minutes of a dev run). Now a jump alerts only a lead
whose tag is in ``jump_layers`` (medium, high), never one the rules hold out of high
although its score reaches the high threshold, and a jump alert of a lead below high does
not hold back the alert of its entry into high.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from stream_app.alerts.policy import HOUR_MS, AlertPolicy
from stream_app.events import Event
from stream_app.scoring.scorer import ScoreStep
from tests.unit.scoring.fixtures import T0, config

MODEL = "logreg@9"
MEDIUM = {"intent": "medium", "lead_points": 6}
HIGH = {"intent": "high", "lead_points": 16}


class _Explains:
    def explain(self, target: str, x: dict[str, float], k: int) -> list[tuple[str, float]]:
        return [("course_view|7d", 0.5)]


class _Lead:
    """One lead's alert state, fed scores and tags the way the scorer passes them."""

    def __init__(self, policy: AlertPolicy | None = None, uid: str = "u1") -> None:
        self.policy = policy or AlertPolicy.from_config(config())
        self.st: dict[str, Any] = {"tot": {"course_view": 1}, "ra": [[T0, "course_view"]]}
        self.uid = uid
        self.n = 0

    def event(self, ts: int, score: float, tags: dict[str, Any], source: str = MODEL,
              etype: str = "cart_add") -> list[dict[str, Any]]:
        self.n += 1
        layer = tags.get("intent") if isinstance(tags.get("intent"), str) else "low"
        step = ScoreStep(self.st, {"convert": score}, {"convert": layer}, {"convert": source})
        ev = Event(f"{self.uid}-{self.n}", self.uid, ts, etype, "click")
        return [a for a in self.policy.decide(self.st, ev, {"a": 1.0}, step, _Explains(), tags)
                if a["kind"] == "hot_lead"]

    def tick(self, ts: int, tags: dict[str, Any]) -> list[dict[str, Any]]:
        tick = Event(f"clock:{ts}", self.uid, ts, "clock_tick", "clock")
        return [a for a in self.policy.decide_clock(self.st, tick, tags)
                if a["kind"] == "hot_lead"]


def test_a_medium_lead_s_jump_alert_does_not_take_the_alert_of_its_entry_into_high() -> None:
    """u0009807 of the QA run: a jump alert at medium, then the intent tag turns high."""
    lead = _Lead()
    assert lead.event(T0, 0.06, MEDIUM) == []
    [jump] = lead.event(T0 + 60_000, 0.44, MEDIUM)
    assert jump["triggers"] == ["jump"] and jump["layer"] == "medium"
    [enter] = lead.event(T0 + 120_000, 0.5, HIGH)
    assert enter["triggers"] == ["enter_layer"] and enter["layer"] == "high"


def test_the_entry_on_the_clock_after_a_jump_alert_is_alerted_too() -> None:
    lead = _Lead()
    lead.event(T0, 0.1, MEDIUM)
    assert len(lead.event(T0 + HOUR_MS, 0.45, MEDIUM)) == 1
    [enter] = lead.tick(T0 + 2 * HOUR_MS, HIGH)
    assert enter["triggers"] == ["enter_layer"]


def test_at_most_a_jump_and_an_entry_per_cooldown() -> None:
    """A second jump within the cooldown, and a jump right after the high alert, stay
    quiet; the entry into high is not alerted twice within the cooldown either."""
    lead = _Lead()
    lead.event(T0, 0.05, MEDIUM)
    assert len(lead.event(T0 + HOUR_MS, 0.33, MEDIUM)) == 1
    assert lead.event(T0 + 2 * HOUR_MS, 0.05, MEDIUM) == []
    assert lead.event(T0 + 3 * HOUR_MS, 0.35, MEDIUM) == []         # a jump again: held
    assert len(lead.event(T0 + 4 * HOUR_MS, 0.5, HIGH)) == 1        # the entry into high
    assert lead.event(T0 + 5 * HOUR_MS, 0.2, MEDIUM) == []
    assert lead.event(T0 + 6 * HOUR_MS, 0.55, HIGH) == []           # high again, in cooldown
    assert lead.event(T0 + 7 * HOUR_MS, 0.2, HIGH) == []
    assert lead.event(T0 + 8 * HOUR_MS, 0.5, HIGH) == []            # a jump of a high lead
    # after the cooldown a high lead whose score jumps is alerted again (a re-heated lead)
    lead.event(T0 + 30 * HOUR_MS, 0.2, HIGH)
    [a] = lead.event(T0 + 31 * HOUR_MS, 0.55, HIGH)
    assert a["triggers"] == ["jump"] and a["layer"] == "high"


def test_a_jump_alert_after_the_high_alert_waits_for_its_cooldown() -> None:
    lead = _Lead()
    lead.event(T0, 0.5, HIGH)
    lead.event(T0 + HOUR_MS, 0.05, MEDIUM)
    assert lead.event(T0 + 2 * HOUR_MS, 0.45, MEDIUM) == []


@pytest.mark.parametrize("tags", [
    {},                                             # no intent tag yet (no click)
    {"intent": None},
    {"intent": "low", "lead_points": 0},
    # the model says high, the rules hold it at medium (no lead points: lead.yaml)
    {"intent": "medium", "lead_points": 0},
], ids=["no-tag", "null-tag", "low", "medium-held-out-of-high"])
def test_no_jump_alert_for_a_lead_the_intent_tag_does_not_call_warm(tags) -> None:
    """u0011652 of the QA run: "model score 0.60 (high from 0.6)" under ``layer: low``. And
    the jump that did not alert takes no cooldown: the entry into high alerts."""
    lead = _Lead()
    assert lead.event(T0, 0.1, tags) == []
    assert lead.event(T0 + 60_000, 0.8, tags) == []
    assert lead.event(T0 + 120_000, 0.1, tags) == []
    assert lead.event(T0 + 180_000, 0.6, tags) == []
    [enter] = lead.event(T0 + 240_000, 0.8, HIGH)
    assert enter["triggers"] == ["enter_layer"]


def test_no_hot_lead_alert_has_a_reason_that_contradicts_its_layer() -> None:
    lead = _Lead()
    for i, (score, tags) in enumerate([(0.05, MEDIUM), (0.58, MEDIUM), (0.0, {}), (0.9, {}),
                                       (0.1, HIGH), (0.7, HIGH)]):
        for a in lead.event(T0 + i * 30 * HOUR_MS, score, tags):
            if a["layer"] != "high":
                assert "high from" not in str([r["en"] for r in a["reasons"]]), a
                assert a["reasons"][1]["kind"] == "layer", a


def test_the_jump_layers_are_config() -> None:
    policy = AlertPolicy.from_config(config())
    assert policy.kinds["hot_lead"].jump_layers == ("medium", "high")
    policy.kinds["hot_lead"] = replace(policy.kinds["hot_lead"], jump_layers=("high",))
    lead = _Lead(policy)
    lead.event(T0, 0.05, MEDIUM)
    assert lead.event(T0 + HOUR_MS, 0.45, MEDIUM) == []


def test_every_layer_a_jump_alerts_below_high_has_its_words() -> None:
    policy = AlertPolicy.from_config(config())
    k = policy.kinds["hot_lead"]
    for layer in set(k.jump_layers) - {k.enter_layer}:
        w = policy.words.labels.get(f"layer:{layer}") or {}
        assert w.get("zh") and w.get("en"), layer


def test_consent_customers_and_the_budget_still_hold_a_jump_back() -> None:
    lead = _Lead()
    refused = {**MEDIUM, "marketing_consent": False}
    lead.event(T0, 0.05, refused)
    assert lead.event(T0 + HOUR_MS, 0.45, refused) == []
    customer = _Lead(uid="u2")
    customer.st["tot"]["order_paid"] = 1
    customer.event(T0, 0.05, MEDIUM)
    assert customer.event(T0 + HOUR_MS, 0.45, MEDIUM) == []
    policy = AlertPolicy.from_config(config())
    policy.kinds["hot_lead"] = replace(policy.kinds["hot_lead"], hourly_budget_per_tenant=1)
    a, b = _Lead(policy, "a"), _Lead(policy, "b")
    a.event(T0, 0.05, MEDIUM)
    b.event(T0, 0.05, MEDIUM)
    assert len(a.event(T0 + 60_000, 0.45, MEDIUM)) == 1
    assert b.event(T0 + 120_000, 0.45, MEDIUM) == []       # the hour's budget is spent
    assert b.event(T0 + 180_000, 0.5, HIGH) == []          # for the entry too
