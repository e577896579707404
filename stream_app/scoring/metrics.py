"""Classification metrics for evaluation: ROC-AUC, PR-AUC, log loss, calibration, P/R.

Example:
    >>> p = [0.9, 0.8, 0.3, 0.2, 0.6]
    >>> y = [1, 1, 0, 0, 0]
    >>> roc_auc(p, y), round(pr_auc(p, y), 3)
    (1.0, 1.0)
    >>> m = summarize(p, y, threshold=0.5)
    >>> m["precision"], m["recall"], m["n"], m["positives"]
    (0.6667, 1.0, 5, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stream_app.scoring.gate import flagged

__all__ = ["calibration", "log_loss", "nonfinite", "pr_auc", "roc_auc", "summarize"]


def nonfinite(p: Any) -> int:
    """How many of the scores ``p`` are not finite numbers (NaN: a poisoned model).

    >>> nonfinite([0.2, float("nan"), 1.0])
    1
    """
    return int((~np.isfinite(np.asarray(p, dtype=float))).sum())


def roc_auc(p: Any, y: Any) -> float | None:
    """Area under the ROC curve (ties count one half); None when one class is missing or a
    score is not finite (a NaN has no rank; sorting put it last: QA33 F1).

    >>> roc_auc([float("nan"), 0.2, 0.8, float("nan")], [1, 0, 1, 0]) is None
    True
    """
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=int)
    if nonfinite(p):
        return None
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=float)
    sp = p[order]
    # average ranks of ties
    i = 0
    r = np.arange(1, len(p) + 1, dtype=float)
    _, start, counts = np.unique(sp, return_index=True, return_counts=True)
    for s, c in zip(start, counts, strict=True):
        if c > 1:
            r[s:s + c] = r[s:s + c].mean()
        i += c
    ranks[order] = r
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_auc(p: Any, y: Any) -> float | None:
    """Average precision (area under the precision-recall curve, step-wise): the sum over
    the distinct scores, highest first, of the recall gained there times the precision of
    everything scored at least that high. A run of tied scores is one threshold, so the
    order of tied items does not matter and a constant score gives the base rate.

    Example:
        >>> pr_auc([0.5, 0.5, 0.5, 0.5], [1, 0, 0, 1])
        0.5
        >>> a = pr_auc([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0])   # the tie's order does not count
        >>> b = pr_auc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])
        >>> round(a, 4), a == b
        (0.8333, True)

    None when there is no positive or a score is not finite (QA33 F1).
    """
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=int)
    if nonfinite(p):
        return None
    n_pos = int(y.sum())
    if n_pos == 0:
        return None
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    # the last index of each run of equal scores: the thresholds
    last = np.r_[np.flatnonzero(ps[1:] != ps[:-1]), len(ps) - 1]
    tp_at = tp[last]
    precision = tp_at / (last + 1)
    gained = np.diff(np.r_[0, tp_at])
    return float((precision * gained).sum() / n_pos)


def log_loss(p: Any, y: Any, eps: float = 1e-7) -> float | None:
    """Mean log loss (scores clipped to ``[eps, 1 - eps]``); None for no label or a score
    that is not finite (QA33 F1)."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=int)
    if len(y) == 0 or nonfinite(p):
        return None
    p = np.clip(p, eps, 1 - eps)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def calibration(p: Any, y: Any, bins: int = 10) -> list[dict[str, Any]]:
    """Per probability bin: count, mean predicted probability, observed positive rate.
    Scores that are not finite get a bin of their own, ``"nan"``, after the others (they
    were dropped, with a numpy warning: QA33 F1).

    >>> calibration([0.05, float("nan")], [0, 1])
    [{'bin': '0.0-0.1', 'n': 1, 'mean_score': 0.05, 'positive_rate': 0.0}, \
{'bin': 'nan', 'n': 1, 'mean_score': None, 'positive_rate': 1.0}]
    """
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=int)
    bad = ~np.isfinite(p)
    if bad.any():
        out = calibration(p[~bad], y[~bad], bins)
        out.append({"bin": "nan", "n": int(bad.sum()), "mean_score": None,
                    "positive_rate": round(float(y[bad].mean()), 4)})
        return out
    idx = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        n = int(m.sum())
        if n:
            out.append({"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "n": n,
                        "mean_score": round(float(p[m].mean()), 4),
                        "positive_rate": round(float(y[m].mean()), 4)})
    return out


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def summarize(p: Any, y: Any, threshold: float) -> dict[str, Any]:
    """All metrics of predictions ``p`` against labels ``y`` (alert threshold ``threshold``).

    Precision and recall count a score as flagged as the rules and the gate read it: at the
    published resolution, 0.01 (:func:`~stream_app.scoring.gate.flagged`; QA41 F5).

    >>> summarize([0.597, 0.594], [1, 0], 0.6)["precision"]     # 0.597 reads 0.60
    1.0

    ``nonfinite`` counts the scores that are not finite numbers; with any, every metric of
    the scores (AUCs, log loss, Brier, precision, recall) is None, not a finite number made
    from the rest (QA33 F1), and the calibration has a ``"nan"`` bin.

    >>> m = summarize([float("nan"), 0.2, 0.8, float("nan")], [1, 0, 1, 0], 0.5)
    >>> m["nonfinite"], m["roc_auc"], m["pr_auc"], m["brier"], m["precision"]
    (2, None, None, None, None)
    """
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=int)
    bad = nonfinite(p)
    hit = np.fromiter((flagged(v, threshold) for v in p.tolist()), dtype=bool, count=len(p))
    tp = int((hit & (y == 1)).sum())
    fp = int((hit & (y == 0)).sum())
    fn = int((~hit & (y == 1)).sum())
    return {
        "n": len(y),
        "positives": int(y.sum()),
        "nonfinite": bad,
        "roc_auc": _r(roc_auc(p, y)),
        "pr_auc": _r(pr_auc(p, y)),
        "log_loss": _r(log_loss(p, y)),
        "brier": _r(float(((p - y) ** 2).mean())) if len(y) and not bad else None,
        "threshold": threshold,
        "precision": None if bad else _r(tp / (tp + fp)) if tp + fp else 0.0,
        "recall": None if bad else _r(tp / (tp + fn)) if tp + fn else 0.0,
        "calibration": calibration(p, y),
    }
