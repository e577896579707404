"""RedisProjection.reproject: a user's whole projection goes after what was held for it,
and the caches of what Redis holds forget the user (no Redis needed: only the queue)."""

from __future__ import annotations

from stream_app.serving.full_state import state_ops
from stream_app.serving.projection import RedisProjection


def test_reproject_queues_the_whole_state_after_held_writes_and_forgets_the_user():
    proj = RedisProjection("redis://127.0.0.1:1/0", why="off", timeline=0)
    proj.set_fields("t", "u1", {"score:convert": 0.5})
    proj.apply_changes([{"tenant": "t", "user_id": "u1", "tag_id": "activity", "old": None,
                         "new": "low"}])
    assert proj.held and not proj.pending
    state = {"uid": "u1", "tenant": "t", "tags": {"activity": "medium"}}
    ops = state_ops(state, None, 0)
    proj.reproject(ops, "t", "u1")
    pending = list(proj.pending)
    assert pending[-len(ops):] == ops              # the whole state last
    assert len(pending) > len(ops)                 # the held writes first
    assert proj.held == 0
    assert ("t", "u1") not in proj.seen
    # the score field is written again, though this process wrote the same value before
    proj.set_fields("t", "u1", {"score:convert": 0.5})
    assert proj.held == 1


def _tenant_adds(proj: RedisProjection) -> int:
    proj.materialize()
    n = sum(1 for op in proj.pending if op[:2] == ("sadd", "sa:tenants"))
    proj.pending.clear()
    return n


def _change(user: str) -> dict:
    return {"tenant": "t", "user_id": user, "tag_id": "activity", "old": None, "new": "low"}


def test_suspended_caches_write_shared_keys_whole_until_resumed():
    """redis-rebuild --live suspends the caches before it deletes the projection: a shared
    key this process wrote before (the tenant set) is written again for every user until
    the re-projection resumes caching; a rebalance meanwhile does not resume it."""
    proj = RedisProjection("redis://127.0.0.1:1/0", why="off", timeline=0)
    proj.apply_changes([_change("u1")])
    proj.apply_changes([_change("u2")])
    assert _tenant_adds(proj) == 1                 # cached: the tenant is written once
    proj.suspend_caches()
    proj.reset_caches()                            # partitions reassigned meanwhile
    proj.apply_changes([_change("u3")])
    assert _tenant_adds(proj) == 1
    proj.apply_changes([_change("u4")])
    assert _tenant_adds(proj) == 1                 # suspended: written again
    proj.resume_caches()
    proj.apply_changes([_change("u5")])
    proj.apply_changes([_change("u6")])
    assert _tenant_adds(proj) == 1                 # caching again, from nothing


def test_paused_writes_stay_queued_in_order_until_resumed():
    """While redis-rebuild --live deletes the projection the worker writes nothing: the
    operations wait (nothing reaches Redis: none is reachable here, a write would count an
    error), then go in order."""
    import asyncio

    proj = RedisProjection("redis://127.0.0.1:1/0", why="off", timeline=0)
    proj.pause_writes(60)
    proj.apply_changes([_change("u1")])
    assert asyncio.run(proj.flush()) == 0
    assert proj.errors == 0 and proj.pending       # built, kept, not attempted
    first = list(proj.pending)
    proj.apply_changes([_change("u2")])
    proj.resume_writes()
    assert not proj.paused
    assert asyncio.run(proj.flush()) == 0 and proj.errors == 1   # attempted: Redis is down
    assert list(proj.pending)[:len(first)] == first


def test_a_pause_ends_by_itself():
    proj = RedisProjection("redis://127.0.0.1:1/0", why="off", timeline=0)
    proj.pause_writes(0.0)
    assert not proj.paused
