"""bench.scoring_cost: the lockstep sees any difference between two scorers, and the tool's
examples run."""

from __future__ import annotations

import doctest
from types import SimpleNamespace
from typing import Any

import pytest

from bench import scoring_cost
from bench.workload import build


@pytest.fixture(scope="module")
def items() -> list[tuple]:
    return scoring_cost.prepare(build(users=40, seed=3, days=3), 600)


def test_scoring_cost_doctests() -> None:
    failed, attempted = doctest.testmod(
        scoring_cost, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failed == 0


def test_the_same_tree_twice_gives_no_difference(items) -> None:
    tree = scoring_cost._tree(None)
    res = scoring_cost.lockstep(items, [tree, tree], None)
    assert res["differences"] == 0 and res["first_difference"] is None


@pytest.mark.parametrize("where", ["score", "state", "rounding"])
def test_a_scorer_that_differs_anywhere_is_caught(items, where: str) -> None:
    tree = scoring_cost._tree(None)

    class Off(tree.Scorer):
        def on_event(self, *args: Any, **kwargs: Any) -> Any:
            step = super().on_event(*args, **kwargs)
            if where == "score" and step.scores.get("convert"):
                step.scores["convert"] += 1e-9          # below the published 0.01
            elif where == "state" and step.sc_state.get("ra"):
                step.sc_state["ra"][-1][0] += 1
            return step

    rounding = tree.round_scores
    if where == "rounding":
        def rounding(scores: dict[str, float]) -> dict[str, float]:
            return {t: round(v, 3) for t, v in scores.items()}
    off = SimpleNamespace(**{**vars(tree), "Scorer": Off, "round_scores": rounding})
    res = scoring_cost.lockstep(items, [tree, off], None)
    assert res["differences"] > 0 and res["first_difference"]["index"] >= 0


def test_prepare_gives_tags_per_scored_event(items) -> None:
    scored = [t for _, t in items if t is not scoring_cost.DROP]
    assert len(scored) > 250 and all(t is None or isinstance(t, dict) for t in scored)
