"""Session 10's per-event speed-ups of the Scorer change no output: the Scorer and its alert
policy against verbatim copies of their per-event path before it (``reference_step.py``), on
a seeded simulator stream replayed the way the agent runs it (state through JSON between
events, rules first, then models a trainer publishes), and on generated point sequences.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.alerts.policy import AlertPolicy
from stream_app.scoring.config import RulesConfig
from stream_app.scoring.points import DAY_MS, RulePoints, add_points, round_scores
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from tests.unit.scoring import reference_step as ref
from tests.unit.scoring.fixtures import config
from tests.unit.scoring.test_fast_path import PUBLISH_EVERY, _sim_events


def _replay(events: list, reference: bool) -> tuple[list[bytes], dict[str, bytes]]:
    cfg = config(min_labels=30)           # gates open within the replay: models score too
    # the layers as the scorer computes them (the reference predates layers read from a rule
    # tag, which tests/unit/scoring/test_layer_tag.py covers)
    cfg = replace(cfg, targets={n: replace(t, layer_tag=None) for n, t in cfg.targets.items()})
    trainer = ModelRegistry(cfg, fast_predict=False)
    worker = ModelRegistry(cfg)
    if reference:
        sc = ref.ScorerReference(cfg, worker, alert_policy=ref.AlertPolicyReference.from_config(
            cfg))
        rounding = ref.round_scores_reference
    else:
        sc = Scorer(cfg, worker, alert_policy=AlertPolicy.from_config(cfg))
        rounding = round_scores
    table: dict[str, bytes] = {}
    out: list[bytes] = []
    labelled = 0
    for i, e in enumerate(events):
        raw = table.get(e.user_id)
        tags = {"at_risk": True} if i % 97 == 0 else {}    # rule-engine tags, now and then
        s = sc.on_event(orjson.loads(raw) if raw else None, e, rule_tags=tags)
        table[e.user_id] = enc = orjson.dumps(s.sc_state)
        out.append(orjson.dumps([
            s.scores, s.layers, s.source, s.alerts, s.checkpoints,
            [(t.target, t.x, t.y, t.ts, t.user_id, t.gate) for t in s.training],
            rounding(s.scores), enc.decode()]))
        if s.training:
            for t in s.training:
                trainer.learn(t.target, t.x, t.y, t.gate)
            labelled += 1
            if labelled % PUBLISH_EVERY == 0:
                for target in trainer.targets:
                    worker.load(target, trainer.snapshot(target))
    return out, table


@pytest.fixture(scope="module")
def replays() -> tuple[list[bytes], list[bytes], list]:
    events = _sim_events(users=400, days=30, seed=11)
    old, _ = _replay(events, reference=True)
    new, _ = _replay(events, reference=False)
    return old, new, events


def test_the_replay_covers_rules_models_alerts_study_and_labels(replays) -> None:
    old, _, events = replays
    steps = [orjson.loads(b) for b in old]
    sources = {s for step in steps for s in step[2].values()}
    alerts = [a for step in steps for a in step[3]]
    assert "rules" in sources and len(sources) > 1          # rules, then models
    assert {a["kind"] for a in alerts} == {"hot_lead", "at_risk"}
    assert sum(len(step[5]) for step in steps) > 100 and any(step[4] for step in steps)
    assert any(e.stream == "study" for e in events)         # inactivity points move
    assert any(step[0].get("at_risk") for step in steps)


def test_every_event_gives_the_same_outputs_and_state_as_the_reference(replays) -> None:
    old, new, _ = replays
    assert len(old) == len(new)
    for i, (a, b) in enumerate(zip(old, new, strict=True)):
        assert a == b, (i, a, b)


# ---- the pieces, on generated inputs (including out-of-order events) -------------------------

_CONFIGS = [
    RulesConfig(points={"a": 1, "b": 3.0, "r": -10}, half_life_days=14, scale=12),
    RulesConfig(points={"m": 3, "x": -2.0}, half_life_days=10, scale=8,
                layers={"high": 10.0, "medium": 4.0}, inactive_points_per_day=0.5,
                inactive_after_days=7),
]


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), which=st.sampled_from([0, 1]))
def test_add_points_and_score_layer_equal_the_reference(seed: int, which: int) -> None:
    rc = _CONFIGS[which]
    rng = random.Random(seed)
    new_rp: dict[str, Any] = {}
    old_rp: dict[str, Any] = {}
    fast, slow = RulePoints("t", rc), ref.RulePointsReference("t", rc)
    ts = 1_700_000_000_000
    for _ in range(40):
        ts += rng.choice([0, 1, 60_000, DAY_MS // 3, 5 * DAY_MS])
        etype = rng.choice([*rc.points, "none"])
        at = ts - rng.choice([0, 0, 0, 1, DAY_MS])            # now and then an older event
        add_points(new_rp, "t", etype, at, rc)
        ref.add_points(old_rp, "t", etype, at, rc)
        assert orjson.dumps(new_rp) == orjson.dumps(old_rp)
        assert repr(new_rp) == repr(old_rp)                  # ints stay ints
        study = rng.choice([None, ts - 20 * DAY_MS, ts - DAY_MS, ts])
        now = ts + rng.choice([0, 1, DAY_MS, 30 * DAY_MS, -DAY_MS])
        assert repr(fast.score_layer(new_rp, now, study)) == repr(
            slow.score_layer(old_rp, now, study))


@settings(max_examples=2_000)
@given(scores=st.dictionaries(st.sampled_from(["convert", "at_risk", "x"]), st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 0, False]),
    st.integers(-10, 10), st.floats(-1.0, 1.0))))
def test_round_scores_equals_the_agents_old_rounding(scores: dict[str, Any]) -> None:
    assert repr(round_scores(scores)) == repr(ref.round_scores_reference(scores))


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_score_all_equals_the_reference(seed: int) -> None:
    """Every target on its rules, states with and without points and study times (the
    inactivity points of at_risk), as of times before and after the state's events."""
    rng = random.Random(seed)
    cfg = config()
    reg = ModelRegistry(cfg)
    new, old = Scorer(cfg, reg, alert_policy=None), ref.ScorerReference(cfg, reg,
                                                                        alert_policy=None)
    types = sorted({t for tc in cfg.targets.values() for t in tc.rules.points}) + ["page_view"]
    ts = 1_700_000_000_000
    state: dict[str, Any] = {"rp": {}} if rng.random() < 0.8 else {}
    for _ in range(rng.choice([0, 1, 3, 10])):
        ts += rng.choice([0, 60_000, DAY_MS, 9 * DAY_MS])
        for name, tc in cfg.targets.items():
            ref.add_points(state.setdefault("rp", {}), name, rng.choice(types), ts, tc.rules)
    if rng.random() < 0.6:
        state["study"] = ts - rng.choice([0, DAY_MS, 8 * DAY_MS, 40 * DAY_MS])
    for now in (ts, ts + DAY_MS, ts + 20 * DAY_MS):
        a, b = Scorer.score(new, state, now), ref.ScorerReference.score(old, state, now)
        assert repr((a.scores, a.layers, a.source)) == repr((b.scores, b.layers, b.source))


_KINDS = ["enter", "jump", "none", "missed", "attended", "tag"]


@settings(max_examples=300, deadline=None)
@given(seq=st.lists(st.tuples(st.sampled_from(_KINDS), st.floats(0.0, 1.0),
                              st.sampled_from(["high", "medium", "low"]),
                              st.booleans(), st.integers(0, 30 * 3_600_000)),
                    min_size=1, max_size=30))
def test_decide_equals_the_reference(seq: list[tuple[str, float, str, bool, int]]) -> None:
    """Layer entries, score jumps, missed lessons and rule tags, alone and together (two
    triggers at once), for leads and learners, across cooldowns."""
    from stream_app.events import Event  # noqa: PLC0415
    from stream_app.scoring.scorer import ScoreStep  # noqa: PLC0415

    cfg = config()
    reg = ModelRegistry(cfg)
    policies = [AlertPolicy.from_config(cfg), ref.AlertPolicyReference.from_config(cfg)]
    states: list[dict[str, Any]] = [{"tot": {"lesson_attended": 1}, "rp": {}, "ra": []}
                                    for _ in policies]
    ts = 1_700_000_000_000
    for i, (kind, score, layer, model, dt) in enumerate(seq):
        ts += dt
        etype = {"missed": "lesson_missed", "attended": "lesson_attended"}.get(kind, "course_view")
        event = Event(f"e{i}", "u1", ts, etype, "study", "default", {})
        tags = {"at_risk": kind == "tag" or (kind == "missed" and model)}
        got = []
        for policy, state in zip(policies, states, strict=True):
            step = ScoreStep(state, {}, {}, {}, [], [], [])
            for target in ("convert", "at_risk"):
                step.scores[target] = score if kind != "enter" else 0.9
                step.layers[target] = "high" if kind == "enter" else layer
                step.source[target] = "logreg@1" if model else "rules"
            got.append(orjson.dumps([policy.decide(state, event, {"a": 1.0}, step, reg, tags),
                                     state]))
        assert got[0] == got[1], i


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_update_equals_the_reference_with_any_registration_type(seed: int) -> None:
    """features.update against the old copy, with the registration type a milestone or not."""
    from dataclasses import replace  # noqa: PLC0415

    from stream_app.events import Event  # noqa: PLC0415
    from stream_app.scoring.features import new_state, update  # noqa: PLC0415

    rng = random.Random(seed)
    fc = config().features
    fc = replace(fc, milestones=rng.choice([fc.milestones, ("order_paid",), ()]),
                 registration_type=rng.choice(["registered", "signup"]),
                 day_offset_hours=rng.choice([8.0, 0.0, 5.5]))
    a, b = new_state(), new_state()
    ts = 1_700_000_000_000
    for i in range(30):
        ts += rng.choice([0, 1, 3_600_000, DAY_MS, 40 * DAY_MS]) - rng.choice([0, 0, DAY_MS])
        e = Event(f"e{i}", "u", ts, rng.choice(["registered", "signup", "order_paid",
                                               "page_view", "lesson_attended"]),
                  rng.choice(["click", "profile", "study"]), "default",
                  {"channel": rng.choice(["a", "b", None]), "amount": rng.choice([1, 2.5]),
                   "city": "x" * rng.choice([3, 50]), "goal": rng.choice(["g", True, None]),
                   "name": rng.choice(["bob", None, 3]),        # an excluded prop
                   "tags": rng.choice([["a"], "t", 0])})
        update(a, e, fc)
        ref.update(b, e, fc)
        assert orjson.dumps(a) == orjson.dumps(b), i
