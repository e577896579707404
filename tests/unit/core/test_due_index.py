"""DueIndex: due users pop in time order, and a stepwise rebuild keeps what the agent wrote
while the table was being read."""

from __future__ import annotations

import random

from stream_app.due_index import DueIndex


def test_pop_due_matches_a_reference_schedule() -> None:
    rnd = random.Random(7)
    idx, ref = DueIndex(), {}
    idx.rebuild([])
    for step in range(3_000):
        uid = f"u{rnd.randrange(200)}"
        roll = rnd.random()
        if roll < 0.6:
            t = rnd.randrange(10_000)
            idx.set(uid, t)
            ref[uid] = t
        elif roll < 0.7:
            idx.discard(uid)
            ref.pop(uid, None)
        else:
            now = rnd.randrange(10_000)
            got = idx.pop_due(now)
            want = sorted((t, u) for u, t in ref.items() if t <= now)
            assert sorted(got) == sorted(u for _, u in want), step
            assert [ref[u] for u in got] == sorted(ref[u] for u in got)   # earliest first
            for u in got:
                del ref[u]
    assert len(idx) == len(ref)


def test_stepwise_rebuild_keeps_live_writes_and_deletions() -> None:
    idx = DueIndex()
    token = idx.begin_rebuild()
    idx.set("moved_on", 900)        # processed while the table was read: its read value is old
    idx.discard("deleted")           # deleted meanwhile: the read value must not bring it back
    assert idx.finish_rebuild([("a", 100), ("moved_on", 10), ("deleted", 20)], token)
    assert not idx.stale
    assert idx.pop_due(500) == ["a"]
    assert idx.pop_due(1_000) == ["moved_on"]
    assert len(idx) == 0


def test_a_rebalance_during_a_rebuild_abandons_it() -> None:
    idx = DueIndex()
    idx.rebuild([("old", 5)])
    token = idx.begin_rebuild()
    idx.invalidate()
    assert not idx.finish_rebuild([("x", 1)], token)
    assert idx.stale                              # the next sweep starts over
    token = idx.begin_rebuild()
    assert idx.finish_rebuild([("x", 1)], token)
    assert idx.pop_due(10) == ["x"]
