"""bench.business_cost: the lockstep comparison of the business path finds a tree that
sends other partials (and agrees with itself)."""

from __future__ import annotations

import doctest
import shutil
from pathlib import Path

import pytest

from bench import business_cost
from bench.workload import build
from stream_app.config import REPO_ROOT


@pytest.fixture(scope="module")
def workload():
    return build(users=40, seed=5, days=3)


def test_doctests() -> None:
    failed, attempted = doctest.testmod(business_cost)
    assert attempted > 0 and failed == 0


def _tree(tmp: Path, old: str, new: str) -> Path:
    """A copy of this tree with one planted change in stream_app/app/business.py."""
    for part in ("stream_app", "config", "topics"):
        shutil.copytree(REPO_ROOT / part, tmp / part,
                        ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp / "stream_app" / "app" / "business.py"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return tmp


def test_same_tree_same_result(workload) -> None:
    res = business_cost.compare(workload, REPO_ROOT, events=800, rounds=1, rate=100.0)
    assert res["same_result"] and res["this"]["points"] == res["other"]["points"] > 0
    assert set(res["this"]["parts"]) == set(business_cost.PARTS)


@pytest.mark.parametrize(("old", "new"), [
    ("PARTIALS_EVERY_S = 0.5", "PARTIALS_EVERY_S = 0.25"),          # other messages
    ("latest[z_gauge] = z", "latest[z_gauge] = z + 1e-9"),          # other gauge values
])
def test_a_planted_difference_is_found(workload, tmp_path, old, new) -> None:
    res = business_cost.compare(workload, _tree(tmp_path, old, new), events=800, rounds=1,
                                rate=100.0)
    assert not res["same_result"] and res["differs"]
