"""The per-event speed-ups of the Scorer (issue #7) change no output.

A seeded simulator stream is replayed the way the agent runs it (the user state goes through a
JSON record between events; a worker registry scores with the models a trainer publishes)
twice: through the reference path (features built for every event by the pre-optimisation
:func:`featurize_reference`, River's own predict) and through the default, fast path (cached
feature names, features built only when a model reads them, compiled linear predict). Every
event's scores, layers, sources, alerts, training pairs and checkpoints, and every user's
final state, must be the same.
"""

from __future__ import annotations

import random
from typing import Any
from unittest import mock

import orjson
import pytest

from stream_app.events import Event
from stream_app.scoring import scorer as scorer_module
from stream_app.scoring.models import compile_predict, make_learner, predict
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from tests.unit.scoring.fixtures import DAY, config
from tests.unit.scoring.reference import featurize_reference

PUBLISH_EVERY = 10     # the trainer publishes its models after this many labelled events
INTENTS = ("medium", "high", None, "low")


def _sim_events(users: int, days: int, seed: int) -> list[Event]:
    from stream_app.sim import START, Simulator, load_sim_config  # noqa: PLC0415
    from stream_app.sim.rhythm import DAY_MS  # noqa: PLC0415

    sim = Simulator(load_sim_config(overrides={"users": users}), seed=seed)
    return [Event(d["event_id"], d["user_id"], d["ts"], d["type"], d["stream"],
                  d.get("tenant") or "default", d.get("props") or {})
            for d in sim.events(START, days * DAY_MS) if d["type"] != "deletion_requested"]


def _replay(events: list[Event], fast: bool) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    cfg = config(min_labels=30)           # gates open within the replay: models score too
    trainer = ModelRegistry(cfg, fast_predict=False)
    worker = ModelRegistry(cfg, fast_predict=fast)
    sc = Scorer(cfg, worker, lazy_features=fast)
    table: dict[str, bytes] = {}
    out: list[dict[str, Any]] = []
    labelled = 0
    for i, e in enumerate(events):
        raw = table.get(e.user_id)
        # rule-engine tags: at_risk now and then; an intent layer per user (a jump alerts
        # only a medium or high lead, QA34 F1), so the model's alerts are exercised too
        tags: dict[str, Any] = {"at_risk": True} if i % 97 == 0 else {}
        intent = INTENTS[sum(map(ord, e.user_id)) % len(INTENTS)]
        if intent is not None:
            tags.update(intent=intent, lead_points=5)
        s = sc.on_event(orjson.loads(raw) if raw else None, e, rule_tags=tags)
        table[e.user_id] = orjson.dumps(s.sc_state)
        out.append({
            "scores": s.scores, "layers": s.layers, "source": s.source, "alerts": s.alerts,
            "training": [(t.target, t.x, t.y, t.ts, t.user_id, t.gate) for t in s.training],
            "checkpoints": s.checkpoints,
        })
        if s.training:
            for t in s.training:
                trainer.learn(t.target, t.x, t.y, t.gate)
            labelled += 1
            if labelled % PUBLISH_EVERY == 0:
                for target in trainer.targets:
                    worker.load(target, trainer.snapshot(target))
    return out, table


@pytest.fixture(scope="module")
def replays() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict, dict]:
    events = _sim_events(users=500, days=30, seed=5)
    with mock.patch.object(scorer_module, "featurize", featurize_reference):
        ref, ref_table = _replay(events, fast=False)
    new, new_table = _replay(events, fast=True)
    return ref, new, ref_table, new_table


def test_the_replay_exercises_models_alerts_and_labels(replays):
    ref, _, _, _ = replays
    model_scored = sum(1 for r in ref if any(s != "rules" for s in r["source"].values()))
    rules_only = sum(1 for r in ref if r["source"] and
                     all(s == "rules" for s in r["source"].values()))
    alerts = [a for r in ref for a in r["alerts"]]
    assert model_scored > 1000 and rules_only > 1000
    assert {a["source"] == "rules" for a in alerts} == {True, False}
    assert {a["kind"] for a in alerts} == {"hot_lead", "at_risk"}
    assert sum(len(r["training"]) for r in ref) > 100
    assert any(r["checkpoints"] for r in ref)


def test_fast_path_gives_the_same_outputs_event_by_event(replays):
    ref, new, _, _ = replays
    assert len(ref) == len(new)
    for i, (a, b) in enumerate(zip(ref, new, strict=True)):
        assert a["scores"].keys() == b["scores"].keys(), i
        for t, score in a["scores"].items():
            assert abs(score - b["scores"][t]) <= 1e-12, (i, t)
            assert round(score, 2) == round(b["scores"][t], 2), (i, t)   # as published
        assert a["layers"] == b["layers"], i
        assert a["source"] == b["source"], i
        assert a["alerts"] == b["alerts"], i
        assert a["training"] == b["training"], i
        assert a["checkpoints"] == b["checkpoints"], i


def test_fast_path_leaves_the_same_user_states(replays):
    _, _, ref_table, new_table = replays
    assert ref_table == new_table


def test_featurize_equals_the_reference_at_any_later_time():
    from stream_app.scoring.features import featurize, new_state, update  # noqa: PLC0415

    fc = config().features
    rng = random.Random(7)
    states: dict[str, dict[str, Any]] = {}
    compared = multi_bucket = 0
    for e in _sim_events(users=150, days=40, seed=9):
        if e.stream == "label":
            continue
        st = states.setdefault(e.user_id, new_state())
        update(st, e, fc)
        for later in (0, rng.randrange(DAY), rng.randrange(40 * DAY)):
            a, b = featurize(st, e.ts + later, fc), featurize_reference(st, e.ts + later, fc)
            assert a == b and list(a) == list(b)
            compared += 1
        multi_bucket += len(st["b"]) > 1
    assert compared > 3000 and multi_bucket > 300


@pytest.mark.parametrize("learner", ["logreg", "logreg_std", "plain"])
def test_compiled_predict_equals_river(learner):
    cfg = config()
    catalog = dict(cfg.learners, plain={"kind": "logreg", "lr": 0.05, "scaler": "none"})
    model = make_learner(learner, None, catalog)
    rng = random.Random(3)
    keys = [f"f{i}" for i in range(30)]

    def sample() -> dict[str, float]:
        return {k: rng.choice([0.5, 1.0, 3.0, -2.0, 7.5]) for k in rng.sample(keys, 6)}

    for _ in range(400):
        x = sample()
        model.learn_one(x, x.get("f1", 0) + x.get("f2", 0) > 1)
    fn = compile_predict(model)
    xs = [sample() | {"unseen": 4.0} for _ in range(300)]
    diffs = [abs(fn(x) - predict(model, x)) for x in xs]
    assert max(diffs) <= 1e-12
    assert len({round(predict(model, x), 3) for x in xs}) > 20     # not a constant


def test_registry_compiles_per_model_version_and_drops_it_when_the_model_changes():
    cfg = config()
    trainer, worker = ModelRegistry(cfg), ModelRegistry(cfg)
    rng = random.Random(5)
    xs = [{"a": rng.random(), "b": rng.random() * 3, "c": 1.0} for _ in range(60)]
    for x in xs[:30]:
        trainer.learn("convert", x, int(x["a"] > 0.5))
    worker.load("convert", trainer.snapshot("convert"))
    ref = [predict(trainer._models["convert"], x) for x in xs]
    assert [worker.predict("convert", x) for x in xs] == pytest.approx(ref, abs=1e-12)
    assert callable(worker._fast["convert"])                   # compiled after a prediction
    worker.learn("convert", xs[0], 1)                          # the model changed ...
    assert "convert" not in worker._fast                       # ... so the copy is dropped
    after = [predict(worker._models["convert"], x) for x in xs]
    assert after != ref
    assert [worker.predict("convert", x) for x in xs] == pytest.approx(after, abs=1e-12)
    worker.load("convert", trainer.snapshot("convert"))
    assert [worker.predict("convert", x) for x in xs] == pytest.approx(ref, abs=1e-12)
    assert compile_predict(make_learner("hat")) is None
    assert compile_predict(make_learner("ensemble", None, cfg.learners)) is None
