"""On the simulator (hidden true intent), the intent model passes its gate and drives alerts."""

import pytest

from stream_app.events import Event
from stream_app.scoring.metrics import roc_auc
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from tests.unit.scoring.fixtures import config


@pytest.fixture(scope="module")
def run():
    from stream_app.sim import START, Simulator, load_sim_config
    from stream_app.sim.rhythm import DAY_MS

    sim = Simulator(load_sim_config(overrides={"users": 1200}), seed=3)
    cfg = config()
    reg = ModelRegistry(cfg)
    sc = Scorer(cfg, reg)
    states, alerts, last = {}, [], {}
    for d in sim.events(START, 40 * DAY_MS):
        if d["type"] == "deletion_requested":
            states.pop(d["user_id"], None)
            continue
        e = Event(d["event_id"], d["user_id"], d["ts"], d["type"], d["stream"],
                  d.get("tenant") or "default", d.get("props") or {})
        s = sc.on_event(states.get(e.user_id), e)
        states[e.user_id] = s.sc_state
        for t in s.training:
            reg.learn(t.target, t.x, t.y, t.gate)
        alerts += s.alerts
        if "convert" in s.scores and s.source["convert"] != "rules":
            last[e.user_id] = s.scores["convert"]
    return reg, alerts, last, sim.truth()


def test_the_intent_model_passes_the_gate(run):
    reg, _, _, _ = run
    g = reg.gate("convert")
    assert g.open and g.labels >= g.min_labels
    assert g.precision >= g.min_precision and g.recall >= g.min_recall


def test_model_scores_follow_the_hidden_intent(run):
    _, _, last, truth = run
    users = [u for u in last if u in truth]
    high = [int(truth[u]["intent"] > 0.5) for u in users]
    assert len(users) > 200
    assert roc_auc([last[u] for u in users], high) > 0.6


def test_hot_lead_alerts_from_the_model_carry_reasons(run):
    _, alerts, _, _ = run
    hot = [a for a in alerts if a["kind"] == "hot_lead" and a["source"] != "rules"]
    assert hot
    for a in hot[-20:]:
        assert a["reasons"] and a["reasons"][0]["zh"] and a["reasons"][0]["en"]
        assert a["recent_actions"] and a["next_step"]
