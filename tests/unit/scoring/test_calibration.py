"""Calibration (``calibration: prior_shift``): class-balanced rehearsal trains the model on
about 1:1 classes, so its raw probability is inflated where positives are rare; the
registry corrects it by the two class ratios, so that the probability the gate, the rules
and the alerts read matches the observed positive rate, with the ranking unchanged."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from stream_app.errors import ConfigError
from stream_app.scoring.calibration import PriorShift
from stream_app.scoring.config import CalibrationConfig, load_scoring_config, parse_scoring_config
from stream_app.scoring.metrics import log_loss, roc_auc
from stream_app.scoring.registry import ModelRegistry
from tests.unit.scoring.fixtures import config


def _cfg(method: str) -> object:
    cfg = config()
    t = cfg.targets["convert"]
    return replace(cfg, targets={**cfg.targets,
                                 "convert": replace(t, calibration=CalibrationConfig(method))})


def _example(rng: random.Random) -> tuple[dict[str, float], int]:
    """A lead with a noisy signal; 15% of leads convert."""
    y = int(rng.random() < 0.15)
    a = rng.gauss(2.5 if y else 0.0, 1.0)
    return {"a": max(a, 0.0), "b": max(-a, 0.0), "c": 1.0}, y


def _run(method: str) -> tuple[ModelRegistry, list[float], list[int]]:
    reg = ModelRegistry(_cfg(method))
    rng = random.Random(3)
    for _ in range(4000):
        x, y = _example(rng)
        reg.learn("convert", x, y, gate=True)
    test = [_example(rng) for _ in range(3000)]
    return reg, [reg.predict("convert", x) for x, _ in test], [y for _, y in test]


def test_calibrated_scores_match_the_observed_rate_and_keep_the_ranking() -> None:
    raw_reg, raw, y = _run("none")
    reg, cal, y2 = _run("prior_shift")
    assert y == y2
    rate = sum(y) / len(y)
    # rehearsal: the raw model is trained on 1:1 classes and says ~2x the true rate
    assert sum(raw) / len(raw) > rate + 0.1
    assert abs(sum(cal) / len(cal) - rate) < 0.05
    assert log_loss(cal, y) < log_loss(raw, y) - 0.05
    assert roc_auc(cal, y) == pytest.approx(roc_auc(raw, y), abs=1e-9)
    c = reg.calibration("convert")
    assert c["active"] and c["train_rate"] == pytest.approx(0.5, abs=0.01)
    assert c["base_rate"] == pytest.approx(0.15, abs=0.02)
    # a lead the model calls likely (>= 0.6) converts more often than a raw 0.6 did
    hits = [t for p, t in zip(cal, y, strict=True) if p >= 0.6]
    raw_hits = [t for p, t in zip(raw, y, strict=True) if p >= 0.6]
    assert hits and sum(hits) / len(hits) > sum(raw_hits) / len(raw_hits)
    assert raw_reg.calibration("convert") is None


def test_the_gate_scores_calibrated_probabilities() -> None:
    reg = ModelRegistry(_cfg("prior_shift"), fast_predict=False)
    rng = random.Random(5)
    for _ in range(1000):
        x, y = _example(rng)
        before = reg.predict("convert", x)
        p = reg.learn("convert", x, y, gate=True)
        assert p == before
    assert reg._gates["convert"].pairs()[-1][0] == p   # noqa: SLF001


def test_a_worker_scores_with_the_trainers_calibration() -> None:
    trainer, worker = ModelRegistry(_cfg("prior_shift")), ModelRegistry(_cfg("prior_shift"))
    rng = random.Random(7)
    for _ in range(500):
        trainer.learn("convert", *_example(rng))
    worker.load("convert", trainer.snapshot("convert"))
    x = {"a": 1.5, "c": 1.0}
    assert worker.predict("convert", x) == pytest.approx(trainer.predict("convert", x))
    assert worker.calibration("convert") == trainer.calibration("convert")
    # a blob of an earlier release (no counts): uncalibrated until min_examples labels
    raw = ModelRegistry(_cfg("none"))
    raw.load("convert", trainer.snapshot("convert"))
    fresh = ModelRegistry(_cfg("prior_shift"))
    fresh.load("convert", raw.snapshot("convert"))
    assert fresh.predict("convert", x) == pytest.approx(raw.predict("convert", x))
    assert not fresh.calibration("convert")["active"]


def test_prior_shift_is_monotone_and_exact_for_known_ratios() -> None:
    c = PriorShift(CalibrationConfig("prior_shift", half_life=0, min_examples=1))
    for y in [1] * 20 + [0] * 80:        # 20% positive, each replayed against the other class
        c.update(y, [1 - y])
    assert c.base == pytest.approx(0.2) and c.train == pytest.approx(0.5)
    assert c.apply(0.5) == pytest.approx(0.2)     # a coin flip on 1:1 is the base rate
    ps = [i / 20 for i in range(21)]
    out = [c.apply(p) for p in ps]
    assert out == sorted(out) and out[0] == 0.0 and out[-1] == 1.0
    assert all(q < p for p, q in zip(ps[1:-1], out[1:-1], strict=True))


def test_the_class_ratios_follow_a_drifting_base_rate() -> None:
    c = PriorShift(CalibrationConfig("prior_shift", half_life=200, min_examples=1))
    rng = random.Random(1)
    for _ in range(3000):
        c.update(int(rng.random() < 0.4), [])
    for _ in range(3000):
        c.update(int(rng.random() < 0.1), [])
    assert c.base == pytest.approx(0.1, abs=0.04)


def test_config() -> None:
    assert load_scoring_config().targets["convert"].calibration.method == "prior_shift"
    doc = {"targets": {"t": {"calibration": {"method": "isotonic"}}}}
    with pytest.raises(ConfigError, match="calibration"):
        parse_scoring_config(doc)
