"""The at-risk alert's conditions (alerts.yaml ``at_risk.conditions``): each is stated only
when it holds, with the running rule set's threshold; nothing is claimed that was not
checked; a bad entry stops loading with the file and the kind."""

from __future__ import annotations

import pytest

from stream_app.alerts.conditions import Condition
from stream_app.alerts.policy import AlertPolicy
from stream_app.errors import ConfigError
from tests.unit.scoring.fixtures import config

DAY = 86_400_000
PARAMS = {"at_risk_absences": 3, "stalled_after": "14d", "at_risk_score": 0.7}


def _cond(kind: str, param: str, tag: str | None = None) -> Condition:
    raw = {"kind": kind, "param": param, "zh": "{value}/{threshold}", "en": "{value}/{threshold}"}
    return Condition.parse({**raw, "tag": tag} if tag else raw)


@pytest.mark.parametrize(("cond", "tags", "st", "now", "score", "source", "want"), [
    (("tag_at_least", "at_risk_absences", "consecutive_absences"),
     {"consecutive_absences": 4}, {}, 0, 0.0, "rules", "4/3"),
    (("tag_at_least", "at_risk_absences", "consecutive_absences"),
     {"consecutive_absences": 2}, {}, 0, 0.0, "rules", None),
    (("tag_at_least", "at_risk_absences", "consecutive_absences"),
     {"consecutive_absences": True}, {}, 0, 0.0, "rules", None),       # not a number
    (("idle", "stalled_after"), {}, {"study": DAY}, 16 * DAY, 0.0, "rules", "15/14"),
    (("idle", "stalled_after"), {}, {"study": DAY}, 15 * DAY, 0.0, "rules", None),  # = 14 d
    (("idle", "stalled_after"), {}, {}, 99 * DAY, 0.0, "rules", None),   # never studied
    (("score_at_least", "at_risk_score"), {}, {}, 0, 0.8, "logreg@3", "0.80/0.7"),
    (("score_at_least", "at_risk_score"), {}, {}, 0, 0.697, "logreg@3", "0.70/0.7"),
    (("score_at_least", "at_risk_score"), {}, {}, 0, 0.9, "rules", None),  # not a model's
    (("score_at_least", "at_risk_score"), {}, {}, 0, 0.69, "logreg@3", None),
    (("score_at_least", "missing_param"), {}, {}, 0, 0.99, "logreg@3", None),
])
def test_a_condition_is_stated_only_when_it_holds(cond, tags, st, now, score, source,
                                                   want) -> None:
    r = _cond(*cond).reason(PARAMS, tags, st, now, score, source)
    assert (r and r["en"]) == want
    if r is not None:
        assert r["zh"] == want and r["kind"] == "condition" and r["condition"] == cond[0]


def test_a_bad_condition_stops_loading_with_the_file_and_kind(tmp_path) -> None:
    bad = tmp_path / "alerts.yaml"
    bad.write_text("at_risk:\n  target: at_risk\n  conditions:\n"
                   "    - {kind: since, param: stalled_after, zh: a, en: b}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"alerts.yaml: at_risk: condition kind 'since'"):
        AlertPolicy.from_config(config(), bad)


def test_without_a_condition_that_holds_the_rule_reason_stays() -> None:
    """A tag true for a reason the list does not state (e.g. a new term in learning.yaml
    before alerts.yaml follows) keeps the plain rule reason: the alert still says why."""
    from stream_app.events import Event  # noqa: PLC0415

    p = AlertPolicy.from_config(config())
    st = {"tot": {"lesson_attended": 1}, "study": 0, "al": {}}
    tick = Event("clock:1", "u1", DAY, "clock_tick", "clock")
    [a] = p.decide_clock(st, tick, {"at_risk": True})
    assert [r["en"] for r in a["reasons"]] == ["flagged at risk by the rules"]
    st["al"] = {}
    [a] = p.decide_clock(st, Event("clock:2", "u1", 20 * DAY, "clock_tick", "clock"),
                         {"at_risk": True})
    assert [r["en"] for r in a["reasons"]] == [
        "no study event for over 14 days (the last on 1970-01-01)"]
    assert a["reasons"][0]["value"] == 20
    assert a["basis"] == "rules"
