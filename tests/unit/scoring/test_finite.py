"""QA33 F1: huge or non-finite numeric props must never make a feature, a model weight, a
published snapshot or an evaluation metric non-finite."""

import logging
import math
import pickle

import orjson
import pytest

from stream_app.events import parse_event
from stream_app.scoring.features import NUMERIC_BOUND, featurize, fold, new_state
from stream_app.scoring.metrics import calibration, log_loss, pr_auc, roc_auc, summarize
from stream_app.scoring.registry import ModelRegistry, SnapshotError, finite_model
from stream_app.scoring.scorer import Scorer
from tests.unit.scoring.fixtures import DAY, T0, config, ev, label

NAN = float("nan")
INF = float("inf")


def _all_finite(x):
    return all(math.isfinite(v) for v in x.values())


def _weights(reg, target):
    return dict(reg._models[target]["LogisticRegression"]._weights.to_dict())  # noqa: SLF001


def test_huge_props_give_finite_features_clamped_to_the_bound():
    fc = config().features
    st = new_state()
    for i in range(3):   # valid JSON numbers: two of them summed to inf before the clamp
        e = parse_event({"event_id": f"e{i}", "user_id": "w", "ts": T0 + i * 1000,
                         "type": "course_view", "props": {"minutes": 1e308}}, "click")
        fold(st, e, fc)
    fold(st, ev("w", T0 + DAY, "course_view", minutes=-INF), fc)
    fold(st, ev("w", T0 + DAY + 1, "course_view", minutes=NAN), fc)
    x = featurize(st, T0 + DAY + 2, fc)
    assert _all_finite(x)
    assert x["#minutes|n"] == pytest.approx(math.log1p(2 * NUMERIC_BOUND))
    assert x["#minutes|mean"] == pytest.approx(2 * NUMERIC_BOUND / 4)   # the NaN not counted
    assert x["#minutes|7d"] == pytest.approx(math.log1p(2 * NUMERIC_BOUND))


def test_ordinary_props_are_unchanged():
    fc = config().features
    st = new_state()
    fold(st, ev("u", T0, "course_view", minutes=3), fc)
    fold(st, ev("u", T0 + 2 * DAY, "course_view", minutes=5.5), fc)
    fold(st, ev("u", T0 + 2 * DAY + 1, "order_paid", "order", amount=-20), fc)
    x = featurize(st, T0 + 2 * DAY + 2, fc)
    assert st["tot"]["#minutes"] == 8.5 and st["tot"]["~minutes"] == 2
    assert x["#minutes|n"] == math.log1p(8.5)
    assert x["#minutes|mean"] == 8.5 / 2
    assert x["#minutes|7d"] == math.log1p(8.5)
    assert x["#amount|n"] == -math.log1p(20)


def test_a_state_with_an_inf_sum_written_before_the_clamp_gives_no_feature():
    """JSON (orjson) stores an inf as null: such a state neither crashes nor makes a feature."""
    fc = config().features
    st = new_state()
    fold(st, ev("w", T0, "course_view", minutes=3), fc)
    fold(st, ev("w", T0 + 3 * DAY, "course_view", minutes=3), fc)
    st["tot"]["#minutes"] = INF
    st["b"][0][1]["#minutes"] = INF
    st["b"][1][1]["#minutes"] = INF
    x = featurize(st, T0 + 3 * DAY + 1, fc)      # two buckets in the windows
    assert _all_finite(x) and not any(k.startswith("#minutes") for k in x)
    st = orjson.loads(orjson.dumps(st))
    assert st["tot"]["#minutes"] is None
    x = featurize(st, T0 + 3 * DAY + 1, fc)
    assert _all_finite(x) and not any(k.startswith("#minutes") for k in x)
    assert "course_view|n" in x
    fold(st, ev("w", T0 + 3 * DAY + 2, "course_view", minutes=4), fc)   # sums start again
    x = featurize(st, T0 + 3 * DAY + 3, fc)
    assert x["#minutes|n"] == math.log1p(4)
    x = featurize(st, T0 + 40 * DAY, fc)      # one bucket left in the windows: none of them
    assert _all_finite(x)


def test_one_whale_does_not_poison_the_shared_model():
    """The QA33 reproduction: 300 ordinary leads learned, then one lead with two props of
    1e308 and its label; every weight stays finite and the other leads' scores barely move."""
    cfg = config()
    reg = ModelRegistry(cfg)
    sc = Scorer(cfg, reg, alert_policy=None)
    states = {}

    def run(e):
        s = sc.on_event(states.get(e.user_id), e)
        states[e.user_id] = s.sc_state
        for ex in s.training:
            reg.learn(ex.target, ex.x, ex.y, ex.gate)

    for i in range(300):
        u = f"u{i}"
        run(ev(u, T0 + i * 1000, "course_view", minutes=3))
        run(ev(u, T0 + i * 1000 + 2 * DAY, "cart_add" if i % 2 else "page_view"))
        run(label(u, T0 + i * 1000 + 3 * DAY, "outcome", target="convert", value=i % 2))
    x1 = sc.features(states["u1"], T0 + 3 * DAY)
    before = reg.predict("convert", x1)
    for i, e in enumerate([{"minutes": 1e308}, {"minutes": 1e308}]):
        run(parse_event({"event_id": f"w{i}", "user_id": "whale", "ts": T0 + 10 * DAY + i,
                         "type": "course_view", "props": e}, "click"))
    run(label("whale", T0 + 11 * DAY, "outcome", target="convert", value=0))
    assert reg.refused.get("convert", 0) == 0     # clamped, so learned, not refused
    assert all(math.isfinite(w) for w in _weights(reg, "convert").values())
    assert reg.finite("convert")
    after = reg.predict("convert", x1)
    assert math.isfinite(after) and abs(after - before) < 0.05


def test_learn_refuses_a_non_finite_feature(caplog):
    cfg = config()
    reg = ModelRegistry(cfg)
    assert reg.learn("convert", {"a": 1.0}, 1) == 0.5
    assert reg.learn("convert", {"a": 0.5}, 0, gate=True) is not None
    w, version, gate = _weights(reg, "convert"), reg.version("convert"), reg.gate("convert")
    blob = reg.snapshot("convert")
    with caplog.at_level(logging.WARNING, "stream_app.scoring.registry"):
        for bad in (INF, -INF, NAN):
            assert reg.learn("convert", {"a": 1.0, "b": bad}, 1, gate=True) is None
    assert reg.refused["convert"] == 3
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1  # rate-limited
    assert _weights(reg, "convert") == w and reg.version("convert") == version
    assert reg.gate("convert").labels == gate.labels
    assert pickle.loads(reg.snapshot("convert"))["replay"] == pickle.loads(blob)["replay"]
    assert reg.learn("convert", {"a": 1e308, "b": 1e308}, 1) is not None   # finite: learned


def test_learn_refuses_when_the_prequential_score_is_not_finite():
    cfg = config()
    reg = ModelRegistry(cfg)
    reg.learn("convert", {"a": 1.0}, 1)
    reg._models["convert"]["LogisticRegression"]._weights["a"] = NAN  # noqa: SLF001
    learned = reg.gate("convert").learned
    assert reg.learn("convert", {"a": 1.0}, 1, gate=True) is None
    assert reg.refused["convert"] == 1 and reg.gate("convert").learned == learned


def test_a_non_finite_model_is_never_published_nor_loaded():
    cfg = config()
    trainer, worker = ModelRegistry(cfg), ModelRegistry(cfg)
    for i in range(5):
        trainer.learn("at_risk", {"a": float(i)}, i % 2)
    good = trainer.publishable_snapshot("at_risk")
    assert good is not None
    worker.load("at_risk", good)
    trainer.learn("at_risk", {"a": 2.0}, 1)
    trainer._models["at_risk"]["StandardScaler"].vars["a"] = INF  # noqa: SLF001
    assert not trainer.finite("at_risk")
    poisoned = trainer.snapshot("at_risk")
    assert trainer.publishable_snapshot("at_risk") is None
    assert trainer.rollbacks["at_risk"] == 1
    assert trainer.finite("at_risk") and trainer.version("at_risk") == "logreg_std@5"
    with pytest.raises(SnapshotError, match="non-finite"):
        worker.load("at_risk", poisoned)
    assert worker.version("at_risk") == "logreg_std@5" and worker.finite("at_risk")
    # without a good snapshot to go back to: a fresh model
    fresh = ModelRegistry(cfg)
    fresh.learn("convert", {"a": 1.0}, 1)
    fresh._models["convert"]["LogisticRegression"]._weights["a"] = NAN  # noqa: SLF001
    assert fresh.publishable_snapshot("convert") is None
    assert fresh.version("convert") == "logreg@0" and fresh.finite("convert")


def test_finite_model_reads_tree_statistics():
    cfg = config()
    reg = ModelRegistry(cfg.with_learner("hat", ["convert"]))
    for i in range(50):
        reg.learn("convert", {"a": float(i % 7)}, i % 2)
    assert reg.finite("convert")
    m = reg._models["convert"]  # noqa: SLF001
    leaf = m._root  # noqa: SLF001
    leaf.stats[True] = NAN
    assert not finite_model(m)


def test_metrics_do_not_make_finite_numbers_of_nan_scores():
    p, y = [NAN, 0.2, 0.8, NAN], [1, 0, 1, 0]
    assert roc_auc(p, y) is None and pr_auc(p, y) is None and log_loss(p, y) is None
    bins = calibration(p, y)
    assert sum(b["n"] for b in bins) == 4 and bins[-1]["bin"] == "nan" and bins[-1]["n"] == 2
    m = summarize(p, y, 0.5)
    assert m["nonfinite"] == 2
    assert all(m[k] is None for k in ("roc_auc", "pr_auc", "log_loss", "brier", "precision",
                                      "recall"))
    ok = summarize([0.9, 0.85, 0.6, 0.1], y, 0.5)
    assert ok["nonfinite"] == 0 and ok["roc_auc"] == 0.75 and ok["precision"] == 0.6667
