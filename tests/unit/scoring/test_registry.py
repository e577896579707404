import pytest

from stream_app.scoring.registry import ModelRegistry, SnapshotError
from tests.unit.scoring.fixtures import config


def _trained():
    reg = ModelRegistry(config())
    for i in range(200):
        reg.learn("convert", {"a": float(i % 2), "b": (i % 7) / 7}, i % 2)
    return reg


def test_snapshot_load_gives_the_same_model_gate_and_version():
    trainer = _trained()
    worker = ModelRegistry(config())
    worker.load("convert", trainer.snapshot("convert"))
    for x in ({"a": 1.0}, {"a": 0.0, "b": 0.3}, {}):
        assert worker.predict("convert", x) == trainer.predict("convert", x)
    assert worker.gate("convert") == trainer.gate("convert")
    # learning continues identically on both (replay reservoir and RNG travel too)
    for reg in (trainer, worker):
        reg.learn("convert", {"a": 1.0}, 1)
    assert worker.predict("convert", {"a": 0.5}) == trainer.predict("convert", {"a": 0.5})


def test_bad_blobs_are_refused():
    reg = ModelRegistry(config())
    with pytest.raises(SnapshotError):
        reg.load("convert", b"not a pickle")
    with pytest.raises(SnapshotError):
        reg.load("at_risk", _trained().snapshot("convert"))


def test_every_learner_learns_a_separable_concept():
    from stream_app.scoring.models import make_learner, predict
    for name in ("logreg", "hat", "arf", "ensemble"):
        m = make_learner(name, {"lr": 0.1, "grace_period": 20, "n_models": 3})
        for i in range(400):
            m.learn_one({"a": float(i % 2), "n": (i * 7919 % 13) / 13}, bool(i % 2))
        assert predict(m, {"a": 1.0, "n": 0.5}) > predict(m, {"a": 0.0, "n": 0.5}), name


def test_version_follows_learning_and_loading():
    # version() is cached per target: it must change with every learn and load
    reg = ModelRegistry(config())
    assert reg.version("convert") == "logreg@0" and reg.source("convert") == "rules"
    trainer = _trained()
    assert trainer.version("convert") == "logreg@200"
    reg.load("convert", trainer.snapshot("convert"))
    assert reg.version("convert") == "logreg@200"
    reg.learn("convert", {"a": 1.0}, 1)
    assert reg.version("convert") == "logreg@201"
    reg._gates["convert"].load_pairs([], True)   # noqa: SLF001 - an open gate shows the version
    assert reg.source("convert") == "logreg@201"
