"""Redis projection of the tables: current tags, segments, why records, timelines.

Writers queue operations without waiting; a background task writes them in pipelines
every ``flush_ms``. When Redis is down the operations stay queued (bounded by
``max_pending``; beyond that the oldest are dropped and counted, and
``stream-app redis-rebuild`` restores the projection from the tables).
Replaying the same change records is idempotent (HSET/SADD/SREM/ZADD).

Example (pure part: the operations one tag change becomes):
    >>> ch = {"user_id": "u1", "tenant": "default", "tag_id": "activity", "old": None,
    ...       "new": "low", "seq": 1}
    >>> [op[0] for op in change_ops(ch, why=None)]
    ['hset', 'sadd', 'sadd', 'sadd', 'sadd', 'lpush', 'ltrim']
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import orjson

from stream_app.serving import keys

log = logging.getLogger(__name__)
Op = tuple[Any, ...]


def _numeric(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _members(v: Any) -> list[Any]:
    """Segment values of a tag value. A set-kind tag's list is one value (one segment per
    combination; the API's planner unions the combinations that contain an element)."""
    return [v]


def change_ops(change: dict[str, Any], why: dict[str, Any] | None) -> list[Op]:
    """Redis operations that project one tag-change record."""
    t, uid, tag = change["tenant"], change["user_id"], change["tag_id"]
    old, new = change.get("old"), change.get("new")
    ukey = keys.user_key(t, uid)
    ops: list[Op] = []
    if new is None:
        ops.append(("hdel", ukey, f"tag:{tag}"))
    else:
        ops.append(("hset", ukey, f"tag:{tag}", orjson.dumps(new)))
    if old is not None and old != new:
        if _numeric(old) and not _numeric(new):
            ops.append(("zrem", keys.num_key(t, tag), uid))
        elif not _numeric(old):
            keep = set(map(keys.value_token, _members(new))) if new is not None else set()
            for v in _members(old):
                if keys.value_token(v) not in keep:
                    ops.append(("srem", keys.seg_key(t, tag, v), uid))
    if new is not None:
        if _numeric(new):
            ops.append(("zadd", keys.num_key(t, tag), uid, float(new)))
        else:
            for v in _members(new):
                ops.append(("sadd", keys.seg_key(t, tag, v), uid))
                ops.append(("sadd", keys.values_key(t, tag), keys.value_token(v)))
    ops.append(("sadd", keys.users_key(t), uid))
    ops.append(("sadd", keys.TENANTS_KEY, t))
    if why is not None:
        ops.append(("hset", keys.why_key(t, uid), tag, orjson.dumps(why)))
    elif new is None:
        ops.append(("hdel", keys.why_key(t, uid), tag))
    tl = keys.timeline_key(t, uid)
    ops.append(("lpush", tl, orjson.dumps(change)))
    ops.append(("ltrim", tl, 0, keys.TIMELINE_MAX - 1))
    return ops


def forget_ops(tenant: str, uid: str, tags: dict[str, Any]) -> list[Op]:
    """Operations that remove every trace of a user (PIPL deletion)."""
    ops: list[Op] = []
    for tag, value in tags.items():
        if value is None:
            continue
        if _numeric(value):
            ops.append(("zrem", keys.num_key(tenant, tag), uid))
        else:
            for v in _members(value):
                ops.append(("srem", keys.seg_key(tenant, tag, v), uid))
    ops.append(("delete", keys.user_key(tenant, uid), keys.why_key(tenant, uid),
                keys.timeline_key(tenant, uid)))
    ops.append(("srem", keys.users_key(tenant), uid))
    return ops


def _apply(pipe: Any, op: Op) -> None:
    name, *args = op
    if name == "hset":
        pipe.hset(args[0], args[1], args[2])
    elif name == "hsetmap":
        pipe.hset(args[0], mapping=args[1])
    elif name == "zadd":
        pipe.zadd(args[0], {args[1]: args[2]})
    else:
        getattr(pipe, name)(*args)


class RedisProjection:
    """Queue of projection operations written to Redis in pipelines."""

    def __init__(self, url: str, flush_ms: int = 100, max_pending: int = 1_000_000,
                 metrics: Any = None) -> None:
        import redis.asyncio as aioredis  # noqa: PLC0415

        self.client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self.flush_s = flush_ms / 1000
        self.max_pending = max_pending
        self.pending: deque[Op] = deque()
        self.dropped = 0
        self.errors = 0
        self.written = 0
        self._task: asyncio.Task | None = None
        self._metrics = metrics

    def apply_changes(self, changes: list[dict[str, Any]],
                      why: dict[str, dict[str, Any]] | None = None) -> None:
        for ch in changes:
            self._push(change_ops(ch, (why or {}).get(ch["tag_id"])))

    def set_fields(self, tenant: str, uid: str, fields: dict[str, Any]) -> None:
        """Set plain profile fields (scores, layers, counts) on the user's hash."""
        if fields:
            self._push([("hsetmap", keys.user_key(tenant, uid),
                         {k: orjson.dumps(v) for k, v in fields.items()})])

    def forget(self, tenant: str, uid: str, tags: dict[str, Any]) -> None:
        self._push(forget_ops(tenant, uid, tags))

    def _push(self, ops: list[Op]) -> None:
        self.pending.extend(ops)
        over = len(self.pending) - self.max_pending
        if over > 0:
            for _ in range(over):
                self.pending.popleft()
            self.dropped += over
            log.warning("Redis projection buffer full: dropped %d ops (run redis-rebuild)", over)

    async def flush(self, max_ops: int = 5000) -> int:
        """Write up to ``max_ops`` pending operations; keep them queued if Redis fails."""
        if not self.pending:
            return 0
        batch = [self.pending[i] for i in range(min(max_ops, len(self.pending)))]
        pipe = self.client.pipeline(transaction=False)
        for op in batch:
            _apply(pipe, op)
        t0 = time.perf_counter()
        try:
            await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - Redis down: retry later, keep the ops
            self.errors += 1
            if self._metrics:
                self._metrics.redis_error("pipeline")
            log.warning("Redis write failed (%s); %d ops kept for retry", exc, len(self.pending))
            return 0
        if self._metrics:
            self._metrics.redis_latency(time.perf_counter() - t0)
        for _ in batch:
            self.pending.popleft()
        self.written += len(batch)
        return len(batch)

    async def run(self) -> None:
        """Flush forever (a background task)."""
        while True:
            n = await self.flush()
            if self._metrics:
                self._metrics.redis_buffered(len(self.pending))
            if n < 5000:
                await asyncio.sleep(self.flush_s if self.errors == 0 or n else min(
                    2.0, self.flush_s * 10))

    async def drain(self, timeout: float = 10.0) -> None:
        """Flush until nothing is pending or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            if not await self.flush():
                await asyncio.sleep(0.2)
