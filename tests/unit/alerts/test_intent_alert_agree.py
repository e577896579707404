"""One definition of "high intent": the hot-lead alert's ``enter_layer`` trigger fires exactly
when the lead's ``intent`` tag enters ``high``, and the layer the worker writes to Redis
(``layer:convert``) is the tag's value.

A seeded simulator stream replayed in-process the way the worker runs it: the rule engine,
then the scorer beside it (:func:`score_with_tags`), clock ticks through
:func:`tick_alerts`, and models a trainer publishes (their gates open within the replay, so
both the rules' lead points and the model's probability move the tag).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.unit.alerts.live_replay import Cooldowns, LiveReplay
from tests.unit.scoring.fixtures import config
from tests.unit.scoring.test_fast_path import _sim_events


def _layer(tags: dict[str, Any]) -> str:
    v = tags.get("intent")
    return v if isinstance(v, str) else "low"


def _replay(users: int, days: int, seed: int) -> list[dict[str, Any]]:
    """One record per scored event and per clock tick: the intent tag before and after, the
    layer written for convert, the hot-lead alerts, and whether the lead was eligible (no
    order_paid yet) and outside its cooldown."""
    lr = LiveReplay(unlimited=("hot_lead",))
    # a 3-day cooldown: since lead.yaml's hysteresis (intent version 2) no lead of this replay
    # enters high again within the shipped 24 hours (2 of 63 entries did before, 0 of 47
    # after), so a longer one keeps the cooldown covered
    lr.policy.kinds["hot_lead"] = replace(lr.policy.kinds["hot_lead"], cooldown_hours=72)
    hot = lr.policy.kinds["hot_lead"]
    cooldowns = Cooldowns(hot.cooldown_hours)
    any_alert = Cooldowns(hot.cooldown_hours)       # the last hot-lead alert, a jump's too
    out: list[dict[str, Any]] = []
    for s in lr.steps(_sim_events(users=users, days=days, seed=seed)):
        step = s.scoring
        if step is not None and not step.scores:
            continue
        hot_alerts = [a for a in s.alerts if a["kind"] == "hot_lead"]
        sc = s.state.get("sc") or {}
        out.append({"uid": s.uid, "ts": s.ts, "kind": s.kind, "before": _layer(s.before),
                    "after": _layer(s.state.get("tags") or {}),
                    "layer": step.layers.get("convert") if step else None,
                    # no order yet, and marketing not refused (consent_tag)
                    "eligible": not (sc.get("tot") or {}).keys() & hot.exclude_set
                    and (s.state.get("tags") or {}).get(hot.consent_tag) is not False,
                    "cooled": cooldowns.cooled(s.uid, s.ts),
                    "after_any": not any_alert.cooled(s.uid, s.ts),
                    "alerts": hot_alerts,
                    "source": step.source.get("convert") if step else None})
        # the entry's cooldown: the last alert at high; a jump alert of a lead below high
        # (warming up) does not hold back its entry into high (QA34 F1)
        cooldowns.note([a for a in hot_alerts if a["layer"] == "high"])
        any_alert.note(hot_alerts)
    return out


@pytest.fixture(scope="module")
def replay() -> list[dict[str, Any]]:
    # 40 days: with the hysteresis and the consent check few leads re-enter high within a
    # cooldown (1 of 61 entries here; the cooldown itself: test_policy.test_cooldown_per_lead;
    # 45 days had 1 of 71 until the users who refused profiling stopped training the model,
    # then none)
    return _replay(users=300, days=40, seed=5)


def test_the_replay_covers_tag_entries_alerts_and_cooldowns(replay) -> None:
    entries = [r for r in replay if r["after"] == "high" != r["before"]]
    assert len(entries) > 20
    assert sum(1 for r in replay for a in r["alerts"] if "enter_layer" in a["triggers"]) > 20
    # some entries come within the cooldown of a jump alert of the lead at medium (QA34 F1;
    # since then no entry of this replay falls in a high alert's cooldown: the cooldown
    # itself is test_policy.test_cooldown_per_lead and test_jump_alerts)
    assert any(r["cooled"] and r["after_any"] for r in entries)
    assert any(r["before"] == "high" != r["after"] for r in replay)   # and tags leave high
    sources = {r["source"] for r in replay if r["kind"] == "event"}
    assert "rules" in sources and len(sources) > 1     # rules, then live models


def test_every_enter_layer_alert_comes_with_the_intent_tag_entering_high(replay) -> None:
    for r in replay:
        for a in r["alerts"]:
            if "enter_layer" in a["triggers"]:
                assert r["after"] == "high" != r["before"], r
                assert a["layer"] == "high", r


def test_every_intent_tag_entering_high_alerts_an_eligible_lead_outside_cooldown(
        replay) -> None:
    for r in replay:
        if r["after"] == "high" != r["before"] and r["eligible"] and r["cooled"]:
            assert any("enter_layer" in a["triggers"] for a in r["alerts"]), r


def test_every_jump_alert_is_for_a_lead_the_intent_tag_calls_warm(replay) -> None:
    """A jump alerts a lead whose intent tag is medium or high (alerts.yaml jump_layers), its
    layer the tag's, and one below high says so and never "high from" (QA34 F1: 12 of a dev
    run's jump alerts went to users with no intent tag, 7 of them "high from 0.6")."""
    jumps = [(r, a) for r in replay for a in r["alerts"] if a["triggers"] == ["jump"]]
    assert jumps
    for r, a in jumps:
        assert a["layer"] == r["after"] and r["after"] in ("medium", "high"), (r, a)
        if a["layer"] != "high":
            assert "high from" not in str([x["en"] for x in a["reasons"]]), a
            assert [x["kind"] for x in a["reasons"][:2]] == ["jump", "layer"], a


def test_the_convert_layer_written_to_redis_is_the_intent_tag(replay) -> None:
    for r in replay:
        if r["kind"] == "event":
            assert r["layer"] == r["after"], r


def test_the_intent_tag_reads_the_model_where_its_gate_measured_it() -> None:
    """The model score makes a lead high intent at the threshold the release gate measured
    its precision and recall at (and medium at the scorer's own medium layer): one number
    each, kept equal across lead.yaml and scoring.yaml."""
    import yaml  # noqa: PLC0415

    from stream_app.config import REPO_ROOT  # noqa: PLC0415

    params = yaml.safe_load((REPO_ROOT / "config" / "rules" / "lead.yaml").read_text(
        encoding="utf-8"))["params"]
    convert = config().targets["convert"]
    assert params["intent_high_score"] == convert.alert_threshold
    assert params["intent_medium_score"] == convert.layers["medium"]


def test_a_high_lead_is_kept_below_the_entry_thresholds_and_above_medium() -> None:
    """lead.yaml's hysteresis: a lead enters high at intent_high_points / intent_high_score and
    stays high down to the keep thresholds, which lie between medium's and the entry ones.
    Below the entry ones, or an entry would not keep the lead high at the next evaluation (the
    rule would not settle); the hot-lead alert fires on the entry, so its reasons state the
    entry thresholds (alerts.yaml basis)."""
    import yaml  # noqa: PLC0415

    from stream_app.config import REPO_ROOT  # noqa: PLC0415

    params = yaml.safe_load((REPO_ROOT / "config" / "rules" / "lead.yaml").read_text(
        encoding="utf-8"))["params"]
    assert (params["intent_medium_points"] < params["intent_keep_high_points"]
            < params["intent_high_points"])
    assert (params["intent_medium_score"] < params["intent_keep_high_score"]
            < params["intent_high_score"])
