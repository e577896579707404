"""``bench.projection_cost``: the worker's projection calls recorded from the engine and
scorer, the lockstep of two writers and the Redis comparison that proves the same contents."""

from __future__ import annotations

import doctest

from bench import projection_cost
from bench.projection_cost import compare_redis, intervals, lockstep, record_calls
from bench.workload import build
from stream_app.config import REPO_ROOT


def test_projection_cost_doctests():
    """The bench package is outside ``testpaths``: its examples run here (two redis-servers)."""
    failed, attempted = doctest.testmod(
        projection_cost, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failed == 0


def test_intervals_keep_every_call_in_order():
    calls = [("f", 1), ("e",), ("c", 2), ("e",), ("e",), ("g", 3)]
    runs = list(intervals(calls, 2))
    assert [c for r in runs for c in r] == calls and sum(r.count(("e",)) for r in runs) == 3


def test_lockstep_of_a_tree_with_itself_is_the_same_redis_and_a_changed_writer_is_not(
        monkeypatch):
    """The same tree on both sides gives the same contents; a writer that drops one field
    of one user is caught by the comparison (the check can fail)."""
    calls, n = record_calls(build(users=40, seed=5, days=2).records, 400)
    assert n > 200 and any(c[0] == "c" for c in calls) and any(c[0] == "f" for c in calls)
    res = lockstep(calls, other=REPO_ROOT, flush_every=60, rounds=1)
    assert res["same_redis"] and res["keys"] == res["keys_other"] > 0
    assert res["this"]["us_per_event_median"] > 0

    from stream_app.serving import projection  # noqa: PLC0415

    real = projection.pending_ops
    victim = next(c[2] for c in calls if c[0] == "f")

    def lossy(p, seen, timeline):   # this tree's writer forgets one user's score field
        ops = real(p, seen, timeline)
        if p.uid == victim:
            ops = [op if op[0] != "hsetmap" else (*op[:2], {
                k: v for k, v in op[2].items() if not k.startswith("score:")}) for op in ops]
        return ops
    monkeypatch.setattr(projection, "pending_ops", lossy)
    res = lockstep(calls, other=REPO_ROOT, flush_every=60, rounds=1)
    assert not res["same_redis"] and res["differing_count"] >= 1


def test_compare_redis_sees_a_changed_value():
    import redis  # noqa: PLC0415

    with projection_cost._servers(2) as (a, b):
        for url in (a, b):
            r = redis.Redis.from_url(url)
            r.hset("h", mapping={"x": "1", "y": "2"})
            r.sadd("s", *[f"m{i}" for i in range(200)])   # a hashtable set: compared by members
            r.close()
        assert compare_redis(a, b)["same_redis"]
        r = redis.Redis.from_url(b)
        r.hset("h", "y", "3")
        r.close()
        res = compare_redis(a, b)
        assert not res["same_redis"] and res["differing"] == ["h"]
