"""The batch bar to beat: LightGBM trained offline on earlier presentations, same features.

The features are exactly the checkpoint snapshots the online evaluation recorded (the same
Scorer code), so the comparison is about the learner and the protocol, not the features.

Example:
    >>> recs = [{"group": f"P-{'T' if i < 80 else 'E'}@10", "x": {"a": float(i % 2), "b": 1.0},
    ...          "y": i % 2} for i in range(120)]
    >>> X, names = vectorize([r["x"] for r in recs])
    >>> X.shape, names
    ((120, 2), ['a', 'b'])
    >>> res = batch_auc(recs, train=("P-T",), test="P-E", min_child_samples=5)
    >>> res["pooled"][10]
    1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_app.scoring.metrics import roc_auc

__all__ = ["batch_auc", "split_group", "vectorize"]


def split_group(group: str) -> tuple[str, int]:
    """``"AAA-2014J@40"`` -> ``("AAA-2014J", 40)``."""
    pres, pct = group.rsplit("@", 1)
    return pres, int(pct)


def vectorize(xs: list[dict[str, float]],
              names: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Dict feature vectors to a dense matrix (missing = 0), column order ``names``."""
    if names is None:
        names = sorted({k for x in xs for k in x})
    col = {n: i for i, n in enumerate(names)}
    X = np.zeros((len(xs), len(names)), dtype=np.float32)
    for r, x in enumerate(xs):
        for k, v in x.items():
            c = col.get(k)
            if c is not None:
                X[r, c] = v
    return X, names


def _fit(X: np.ndarray, y: np.ndarray, **params: Any) -> Any:
    import lightgbm as lgb  # noqa: PLC0415 - dev extra, only for the baseline

    p = {"objective": "binary", "learning_rate": 0.03, "num_leaves": 15,
         "min_child_samples": 20, "bagging_fraction": 0.8, "bagging_freq": 1,
         "feature_fraction": 0.8, "seed": 42, "verbose": -1, "num_threads": 2}
    rounds = int(params.pop("n_estimators", 300))
    p.update(params)
    return lgb.train(p, lgb.Dataset(X, label=y), num_boost_round=rounds)


def batch_auc(records: list[dict[str, Any]], train: tuple[str, ...], test: str,
              **params: Any) -> dict[str, dict[int, float | None]]:
    """ROC-AUC per checkpoint on ``test`` of LightGBM trained on the ``train`` presentations.

    ``pooled``: one model on all training checkpoints; ``per_checkpoint``: one model per
    checkpoint share, trained on that share's checkpoints only.
    """
    tr = [r for r in records if split_group(r["group"])[0] in train]
    te = [r for r in records if split_group(r["group"])[0] == test]
    X, names = vectorize([r["x"] for r in tr])
    y = np.array([r["y"] for r in tr])
    pooled = _fit(X, y, **params)
    out: dict[str, dict[int, float | None]] = {"pooled": {}, "per_checkpoint": {}}
    for pct in sorted({split_group(r["group"])[1] for r in te}):
        sub = [r for r in te if split_group(r["group"])[1] == pct]
        Xt, _ = vectorize([r["x"] for r in sub], names)
        yt = np.array([r["y"] for r in sub])
        auc = roc_auc(pooled.predict(Xt), yt)
        out["pooled"][pct] = None if auc is None else round(auc, 4)
        idx = [i for i, r in enumerate(tr) if split_group(r["group"])[1] == pct]
        if idx and len(set(y[idx].tolist())) == 2:
            m = _fit(X[idx], y[idx], **params)
            auc = roc_auc(m.predict(Xt), yt)
            out["per_checkpoint"][pct] = None if auc is None else round(auc, 4)
    return out
