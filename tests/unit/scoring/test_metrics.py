import random

import pytest

from stream_app.scoring.metrics import calibration, log_loss, pr_auc, roc_auc, summarize


def _brute_auc(p, y):
    pos = [a for a, b in zip(p, y, strict=True) if b]
    neg = [a for a, b in zip(p, y, strict=True) if not b]
    s = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return s / (len(pos) * len(neg))


def test_roc_auc_matches_the_pairwise_definition_with_ties():
    rng = random.Random(0)
    for _ in range(20):
        p = [round(rng.random(), 1) for _ in range(60)]
        y = [int(rng.random() < 0.4) for _ in range(60)]
        assert roc_auc(p, y) == pytest.approx(_brute_auc(p, y))


def test_degenerate_inputs():
    assert roc_auc([0.1, 0.2], [1, 1]) is None
    assert pr_auc([0.1], [0]) is None
    assert summarize([], [], 0.5)["n"] == 0


def test_pr_auc_log_loss_and_calibration():
    assert pr_auc([0.9, 0.1, 0.8], [1, 0, 0]) == pytest.approx(1.0)
    assert pr_auc([0.9, 0.8, 0.1], [0, 1, 0]) == pytest.approx(0.5)
    assert log_loss([0.5, 0.5], [1, 0]) == pytest.approx(0.6931, abs=1e-4)
    cal = calibration([0.05, 0.07, 0.95], [0, 1, 1])
    assert cal[0] == {"bin": "0.0-0.1", "n": 2, "mean_score": 0.06, "positive_rate": 0.5}
    assert cal[-1]["bin"] == "0.9-1.0" and cal[-1]["positive_rate"] == 1.0


def _brute_average_precision(p, y):
    """sum over distinct thresholds t (highest first) of (R(t) - R(prev)) * P(t)."""
    n_pos = sum(y)
    out, prev_recall = 0.0, 0.0
    for t in sorted(set(p), reverse=True):
        chosen = [b for a, b in zip(p, y, strict=True) if a >= t]
        recall = sum(chosen) / n_pos
        out += (recall - prev_recall) * sum(chosen) / len(chosen)
        prev_recall = recall
    return out


def test_pr_auc_counts_a_run_of_tied_scores_as_one_threshold():
    """QA30 F2: tied scores were each their own threshold, in input order."""
    rng = random.Random(1)
    for _ in range(30):
        p = [round(rng.random(), 1) for _ in range(50)]
        y = [int(rng.random() < 0.3) for _ in range(50)]
        if not any(y):
            continue
        assert pr_auc(p, y) == pytest.approx(_brute_average_precision(p, y))
        pairs = list(zip(p, y, strict=True))
        rng.shuffle(pairs)
        assert pr_auc(*zip(*pairs, strict=True)) == pytest.approx(pr_auc(p, y))
    # a constant score ranks nothing: its average precision is the base rate
    assert pr_auc([0.5] * 4, [1, 1, 1, 0]) == pytest.approx(0.75)
    assert pr_auc([0.5] * 4, [0, 1, 1, 1]) == pytest.approx(0.75)
