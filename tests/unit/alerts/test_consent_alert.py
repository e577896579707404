"""No hot-lead alert for a lead who refused marketing, however the CRM spelled the refusal
(QA session 26, F10: ``consent_marketing`` "False", "FALSE" or "N" gave the consent tag null,
"not told", and the lead got a hot-lead alert: a sales call to someone who said no). An
unreadable answer counts as a refusal (config/rules/demographic.yaml, version 2); a lead
who said nothing about marketing is still alerted (not told is no refusal).

The lead goes the way of the worker: the rule engine, then the scorer with the rule tags
(``score_with_tags``), no model live: intent is high from lead.yaml's points alone."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from stream_app.alerts.policy import AlertPolicy
from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from stream_app.scoring.with_tags import score_with_tags
from tests.unit.scoring.fixtures import config

T, H = 1_800_000_000_000, 3_600_000
_ABSENT = object()
_rules = cache(lambda: load_ruleset(DEFAULT_RULES))


def _hot_lead_alerts(consent: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A lead registering with ``consent_marketing`` = ``consent`` (no prop: ``_ABSENT``),
    then 20 course views an hour apart; its final tags and its hot-lead alerts."""
    cfg = config()
    eng = TagEngine(_rules())
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=AlertPolicy.from_config(cfg))
    props = {} if consent is _ABSENT else {"consent_marketing": consent}
    evs = [Event("r", "u1", T, "registered", "profile", props=props)]
    evs += [Event(f"cv{i}", "u1", T + (i + 1) * H, "course_view", "click") for i in range(20)]
    st, alerts = None, []
    for e in evs:
        r = eng.on_event(st, e)
        st = r.state
        step, _ = score_with_tags(sc, eng, st, r.changes, r.why, e, prior=r.prior)
        alerts += [a for a in step.alerts if a["kind"] == "hot_lead"]
    return st["tags"], alerts


@pytest.mark.parametrize("refusal", ["False", "FALSE", "N", " no ", "Off", "f", "否", "拒绝",
                                     "不同意", False, 0, "maybe", ""])
def test_no_hot_lead_alert_whatever_the_spelling_of_the_refusal(refusal: Any) -> None:
    tags, alerts = _hot_lead_alerts(refusal)
    assert tags["intent"] == "high"            # hot all the same: only the consent stops it
    assert tags["marketing_consent"] is False
    assert alerts == []


@pytest.mark.parametrize("grant", ["True", "Y", "YES", "同意", True, 1, _ABSENT])
def test_a_lead_who_granted_marketing_or_was_not_asked_is_alerted(grant: Any) -> None:
    tags, alerts = _hot_lead_alerts(grant)
    assert tags.get("marketing_consent") is (None if grant is _ABSENT else True)
    assert len(alerts) == 1
