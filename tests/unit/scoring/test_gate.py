"""Release gate: switching, hysteresis, a model that cannot pass stays behind it."""

from dataclasses import replace

import pytest

from stream_app.scoring.config import GateConfig
from stream_app.scoring.gate import Gate
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from tests.unit.scoring.fixtures import T0, config, ev, lead_stream


def test_gate_opens_then_closes_when_quality_falls():
    g = Gate(GateConfig(window=20, min_labels=10, min_precision=0.6, min_recall=0.5,
                        hysteresis=0.05), threshold=0.5)
    for i in range(10):
        g.update(0.9 if i % 2 else 0.1, i % 2)
    assert g.is_open and g.precision == 1.0 and g.recall == 1.0
    for _ in range(20):                       # confident and wrong
        g.update(0.9, 0)
    assert not g.is_open and g.precision == 0.0


def test_a_model_that_flags_everyone_does_not_pass_on_a_burst_of_positives():
    g = Gate(GateConfig(window=20, min_labels=10, min_precision=0.6, min_recall=0.5,
                        min_lift=1.2), 0.5)
    for y in [1] * 16 + [0] * 4:             # positive rate 0.8, all flagged
        g.update(0.9, y)
    assert g.precision == 0.8 and g.recall == 1.0 and not g.is_open


def test_gate_needs_min_labels():
    g = Gate(GateConfig(window=50, min_labels=10, min_precision=0.1, min_recall=0.1,
                        min_lift=0.0), 0.5)
    for _ in range(9):
        g.update(0.9, 1)
    assert not g.is_open
    g.update(0.9, 1)
    assert g.is_open


def test_hysteresis_keeps_an_open_gate_open_just_below_the_bar():
    g = Gate(GateConfig(window=10, min_labels=10, min_precision=0.7, min_recall=0.1,
                        hysteresis=0.15, min_lift=0.0), 0.5)
    for y in [1] * 10:
        g.update(0.9, y)
    assert g.is_open
    for y in [0, 0, 0]:                       # precision 0.7 -> still open (>= 0.55)
        g.update(0.9, y)
    assert g.is_open and g.precision == pytest.approx(0.7)
    for y in [0, 0]:                          # precision 0.5 < 0.55 -> closes
        g.update(0.9, y)
    assert not g.is_open
    for y in [1, 1]:                          # 0.7 again, but reopening needs the full bar
        g.update(0.9, y)
    assert not g.is_open


def _run(events, cfg):
    reg = ModelRegistry(cfg)
    sc = Scorer(cfg, reg, alert_policy=None)
    states, sources = {}, []
    for e in events:
        s = sc.on_event(states.get(e.user_id), e)
        states[e.user_id] = s.sc_state
        for t in s.training:
            reg.learn(t.target, t.x, t.y, t.gate)
        if "convert" in s.source:
            sources.append(s.source["convert"])
    return reg, sources


def _cfg():
    cfg = config()
    gate = GateConfig(window=300, min_labels=100, min_precision=0.65, min_recall=0.5,
                      min_lift=1.2)
    return replace(cfg, targets={"convert": replace(cfg.targets["convert"], gate=gate,
                                                    alert_threshold=0.5)})


def test_an_informative_model_passes_and_then_drives_the_score():
    reg, sources = _run(lead_stream(700, seed=5), _cfg())
    assert reg.gate("convert").open
    assert sources[0] == "rules" and sources[-1].startswith("logreg@")


def test_a_model_that_cannot_pass_stays_behind_the_gate():
    # activity is independent of the outcome: no model can reach the bars
    reg, sources = _run(lead_stream(700, seed=5, informative=False), _cfg())
    g = reg.gate("convert")
    assert g.learned > 300 and not g.open
    assert set(sources) == {"rules"}


def test_scores_come_from_rules_while_gated():
    cfg = _cfg()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    s = sc.on_event(None, ev("u", T0, "trial_booked"))
    assert s.source["convert"] == "rules"
    assert s.scores["convert"] == pytest.approx(1 - 2.718281828 ** (-3 / 12), rel=1e-6)
