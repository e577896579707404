"""The start-up heap freeze (stream_app.app.gc_freeze): the surviving heap is frozen once per
time the worker becomes ready, and frozen objects leave the generations a full collection
scans."""

from __future__ import annotations

import asyncio
import gc

import pytest

from stream_app.app import gc_freeze


@pytest.fixture(autouse=True)
def _unfreeze():
    yield
    gc.unfreeze()


def test_freeze_heap_moves_survivors_out_of_the_scanned_generations() -> None:
    keep = [[i] for i in range(10_000)]          # long-lived containers, like a start-up heap
    frozen = gc_freeze.freeze_heap()
    assert frozen >= len(keep)
    assert gc.get_freeze_count() == frozen
    scanned = {id(o) for o in gc.get_objects()}
    assert id(keep[0]) not in scanned and id(keep[-1]) not in scanned


def test_freezes_once_per_transition_to_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(gc_freeze, "freeze_heap", lambda: calls.append(1) or 0)
    states = iter([False, True, True, True, False, False, True, True])

    def is_ready() -> bool:
        try:
            return next(states)
        except StopIteration:
            raise asyncio.CancelledError from None

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(gc_freeze.freeze_when_ready(is_ready, check_every_s=0))
    assert len(calls) == 2                      # start-up, and after the "rebalance"
