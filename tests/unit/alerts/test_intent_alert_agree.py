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

import orjson
import pytest

from stream_app.alerts.policy import HOUR_MS, AlertPolicy
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from stream_app.scoring.with_tags import score_with_tags, tick_alerts
from tests.unit.scoring.fixtures import config
from tests.unit.scoring.test_fast_path import PUBLISH_EVERY, _sim_events

TICK_MS = 6 * HOUR_MS       # the clock sweeps every user this often (event time)


def _layer(tags: dict[str, Any]) -> str:
    v = tags.get("intent")
    return v if isinstance(v, str) else "low"


def _replay(users: int, days: int, seed: int) -> list[dict[str, Any]]:
    """One record per scored event and per clock tick that raised alerts: the intent tag
    before and after, the layer written for convert, the hot-lead alerts, and whether the
    lead was eligible (no order_paid yet) and outside its cooldown."""
    cfg = config(min_labels=30)              # models go live within the replay
    policy = AlertPolicy.from_config(cfg)
    hot = policy.kinds["hot_lead"] = replace(policy.kinds["hot_lead"],
                                             hourly_budget_per_tenant=10**9)
    trainer = ModelRegistry(cfg, fast_predict=False)
    worker = ModelRegistry(cfg)
    scorer = Scorer(cfg, worker, alert_policy=policy)
    engine = TagEngine(load_ruleset(DEFAULT_RULES))
    table: dict[str, bytes] = {}
    last_alert: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    labelled = 0
    next_tick = None

    def note(uid: str, ts: int, before: str, state: dict[str, Any], alerts: list, kind: str,
             layer: str | None, source: str | None = None) -> None:
        hot_alerts = [a for a in alerts if a["kind"] == "hot_lead"]
        sc = state.get("sc") or {}
        rec = {"uid": uid, "ts": ts, "kind": kind, "before": before,
               "after": _layer(state.get("tags") or {}), "layer": layer,
               "eligible": not (sc.get("tot") or {}).keys() & hot.exclude_set,
               "cooled": uid not in last_alert
               or ts - last_alert[uid] >= hot.cooldown_hours * HOUR_MS,
               "alerts": hot_alerts, "source": source}
        for a in hot_alerts:
            last_alert[uid] = a["ts"]
        out.append(rec)

    for ev in _sim_events(users=users, days=days, seed=seed):
        if next_tick is None:
            next_tick = ev.ts + TICK_MS
        while ev.ts >= next_tick:               # the sweep: every due user, on the clock
            for uid, raw in list(table.items()):
                state = orjson.loads(raw)
                if not engine.due(state, next_tick):
                    continue
                before = _layer(state.get("tags") or {})
                r = engine.on_tick(state, next_tick)
                if r.state is None:
                    del table[uid]
                    continue
                alerts = tick_alerts(policy, uid, r.state, r.changes, next_tick)
                note(uid, next_tick, before, r.state, alerts, "tick", None)
                table[uid] = orjson.dumps(r.state)
            next_tick += TICK_MS
        raw = table.get(ev.user_id)
        state = orjson.loads(raw) if raw else None
        before = _layer((state or {}).get("tags") or {})
        r = engine.on_event(state, ev)
        if r.duplicate or r.state is None:
            continue
        step, _ = score_with_tags(scorer, engine, r.state, r.changes, r.why, ev)
        if step.scores:
            note(ev.user_id, ev.ts, before, r.state, step.alerts, "event",
                 step.layers.get("convert"), step.source.get("convert"))
        table[ev.user_id] = orjson.dumps(r.state)
        if step.training:
            for t in step.training:
                trainer.learn(t.target, t.x, t.y, t.gate)
            labelled += 1
            if labelled % PUBLISH_EVERY == 0:
                for target in trainer.targets:
                    worker.load(target, trainer.snapshot(target))
    return out


@pytest.fixture(scope="module")
def replay() -> list[dict[str, Any]]:
    return _replay(users=300, days=30, seed=5)


def test_the_replay_covers_tag_entries_alerts_and_cooldowns(replay) -> None:
    entries = [r for r in replay if r["after"] == "high" != r["before"]]
    assert len(entries) > 20
    assert sum(1 for r in replay for a in r["alerts"] if "enter_layer" in a["triggers"]) > 20
    assert any(not r["cooled"] for r in entries)    # some entries fall in a cooldown
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
