"""Run segment plans on Redis: sizes, member snapshots and cursor paging (async client).

One query is one pipeline: the plan's ``*STORE`` commands into temporary keys, a
``PEXPIRE`` on each (so a crash never leaves them behind), the final read, and a ``DEL``
of the temporaries. Paging members never re-runs the query: the first page stores the
result as a *snapshot* sorted set with every score 0 (``ZUNIONSTORE snap 1 result WEIGHTS
0``), kept ``snapshot_ttl_s`` and refreshed on each page, and pages are read in user-id
order with ``ZRANGEBYLEX snap (last +  LIMIT 0 n``. The cursor names the snapshot, the last
user id returned and a digest of the expression; it is only valid for the tenant that
created it (the snapshot key is under the tenant's prefix).

Example (with fakeredis)::

    runner = SegmentRunner(redis.asyncio.Redis(...), Catalog.from_ruleset(ruleset))
    await runner.size("default", "activity = high AND NOT tag:refunded")      # 1234
    page = await runner.page("default", "activity = high", None, limit=500)
    page.members, page.next_cursor, page.total
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import ResponseError

from stream_app.serving import keys
from stream_app.serving.segments import (
    Catalog,
    Plan,
    SegmentError,
    parse,
    plan,
    tags_needing_values,
)

__all__ = ["CursorError", "Page", "SegmentRunner", "decode_cursor", "encode_cursor",
           "values_key"]

_SNAP_ID = re.compile(r"^[0-9a-f]{8,32}$")


class CursorError(SegmentError):
    """A paging cursor is malformed, expired, or belongs to another expression."""


def values_key(tenant: str, tag_id: str) -> str:
    """Proposed index ``sa:{t}:vals:{tag}`` (set of values present) for text/set tags.

    Not written by the projection yet; when absent the runner finds the values by
    ``SCAN MATCH sa:{t}:seg:{tag}=*`` (cached ``value_cache_s``).
    """
    return f"{keys.PREFIX}:{tenant}:vals:{tag_id}"


def snapshot_key(tenant: str, snap_id: str) -> str:
    return f"{keys.PREFIX}:{tenant}:tmp:snap:{snap_id}"


def expr_digest(expr: str) -> str:
    return hashlib.sha256(" ".join(expr.split()).encode()).hexdigest()[:12]


def encode_cursor(snap_id: str, after: str, digest: str) -> str:
    """Opaque cursor text.

    >>> c = encode_cursor("0a1b2c3d", "u42", "d1")
    >>> decode_cursor(c)
    ('0a1b2c3d', 'u42', 'd1')
    """
    raw = orjson.dumps({"s": snap_id, "a": after, "h": digest})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str, str]:
    """``(snapshot id, last user id, expression digest)``; CursorError when malformed.

    >>> decode_cursor("garbage")
    Traceback (most recent call last):
    ...
    stream_app.serving.segment_runner.CursorError: malformed cursor
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        d = orjson.loads(raw)
        snap, after, digest = str(d["s"]), str(d["a"]), str(d["h"])
    except Exception:  # noqa: BLE001 - any decoding problem is a bad cursor
        raise CursorError("malformed cursor") from None
    if not _SNAP_ID.match(snap):
        raise CursorError("malformed cursor")
    return snap, after, digest


@dataclass
class Page:
    """One page of a segment's members (user-id order)."""

    members: list[str]
    total: int
    next_cursor: str | None


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class SegmentRunner:
    """Evaluates segment expressions of any tenant on one Redis (``redis.asyncio`` client)."""

    def __init__(self, redis: Any, catalog: Catalog, *, temp_ttl_ms: int = 30_000,
                 snapshot_ttl_s: int = 600, value_cache_s: float = 30.0) -> None:
        self.r = redis
        self.catalog = catalog
        self.temp_ttl_ms = temp_ttl_ms
        self.snapshot_ttl_s = snapshot_ttl_s
        self.value_cache_s = value_cache_s
        self._values: dict[tuple[str, str], tuple[float, list[Any]]] = {}
        self._intercard: bool | None = None

    # -- planning ----------------------------------------------------------------------
    async def compile(self, tenant: str, expr: str) -> Plan:
        """Parse and plan ``expr`` for ``tenant`` (looks up text/set tag values if needed)."""
        ast = parse(expr)
        found = {}
        for tag in sorted(tags_needing_values(ast, self.catalog)):
            found[tag] = await self.present_values(tenant, tag)
        return plan(ast, self.catalog, tenant, qid=secrets.token_hex(8), found_values=found)

    async def present_values(self, tenant: str, tag_id: str) -> list[Any]:
        """Values of a text/set tag that some user of ``tenant`` holds."""
        now = time.monotonic()
        hit = self._values.get((tenant, tag_id))
        if hit and hit[0] > now:
            return hit[1]
        kind = self.catalog.tags[tag_id].kind
        tokens = [_text(v) for v in await self.r.smembers(values_key(tenant, tag_id))]
        if not tokens:
            prefix = keys.seg_key(tenant, tag_id, "")
            tokens = [_text(k)[len(prefix):] async for k in
                      self.r.scan_iter(match=prefix + "*", count=5000)]
        values: list[Any] = []
        for tok in sorted(set(tokens)):
            if kind == "set":
                try:
                    values.append(orjson.loads(tok))
                except orjson.JSONDecodeError:
                    continue
            else:
                values.append(tok)
        self._values[(tenant, tag_id)] = (now + self.value_cache_s, values)
        return values

    # -- execution ---------------------------------------------------------------------
    def _queue_steps(self, pipe: Any, p: Plan) -> None:
        for step in p.steps:
            pipe.execute_command(*step)
            if step[1] in p.temps and step[0] != "ZREMRANGEBYSCORE":
                pipe.execute_command("PEXPIRE", step[1], self.temp_ttl_ms)

    async def size_of(self, p: Plan) -> int:
        """Number of members of a planned segment."""
        if p.result is None:
            return 0
        cmd = p.size_command()
        if cmd is not None:
            return int(await self.r.execute_command(*cmd))
        inter = p.intercard_keys()
        if inter is not None and self._intercard is not False:
            try:  # Redis >= 7; older servers answer "unknown command" once
                n = int(await self.r.execute_command("SINTERCARD", len(inter), *inter))
                self._intercard = True
                return n
            except ResponseError:
                self._intercard = False
        pipe = self.r.pipeline(transaction=False)
        self._queue_steps(pipe, p)
        pipe.execute_command("ZCARD" if p.z else "SCARD", p.result)
        pipe.execute_command("DEL", *p.temps)
        out = await pipe.execute()
        return int(out[-2])

    async def size(self, tenant: str, expr: str) -> int:
        """Number of users of ``tenant`` matching ``expr``."""
        return await self.size_of(await self.compile(tenant, expr))

    async def members(self, tenant: str, expr: str) -> set[str]:
        """Every member at once (for tests and small segments; use :meth:`page` to export)."""
        p = await self.compile(tenant, expr)
        if p.result is None:
            return set()
        pipe = self.r.pipeline(transaction=False)
        self._queue_steps(pipe, p)
        if p.z:
            pipe.execute_command("ZRANGE", p.result, 0, -1)
        else:
            pipe.execute_command("SMEMBERS", p.result)
        if p.temps:
            pipe.execute_command("DEL", *p.temps)
        out = await pipe.execute()
        return {_text(m) for m in out[-2 if p.temps else -1]}

    async def snapshot(self, tenant: str, expr: str) -> tuple[str | None, int]:
        """Store the segment as a paging snapshot: ``(snapshot id or None if empty, size)``."""
        p = await self.compile(tenant, expr)
        if p.result is None:
            return None, 0
        snap_id = secrets.token_hex(8)
        skey = snapshot_key(tenant, snap_id)
        pipe = self.r.pipeline(transaction=False)
        self._queue_steps(pipe, p)
        pipe.execute_command("ZUNIONSTORE", skey, 1, p.result, "WEIGHTS", 0)
        pipe.execute_command("EXPIRE", skey, self.snapshot_ttl_s)
        if p.temps:
            pipe.execute_command("DEL", *p.temps)
        out = await pipe.execute()
        total = int(out[-3 if p.temps else -2])
        return (snap_id if total else None), total

    async def page(self, tenant: str, expr: str, cursor: str | None,
                   limit: int = 1000) -> Page:
        """A page of members: the first (``cursor=None``) or the one after ``cursor``."""
        if not 1 <= limit <= 100_000:
            raise SegmentError("limit must be between 1 and 100000")
        digest = expr_digest(expr)
        if cursor is None:
            parse(expr)
            snap_id, total = await self.snapshot(tenant, expr)
            if snap_id is None:
                return Page([], total, None)
            start = "-"
        else:
            snap_id, after, cdigest = decode_cursor(cursor)
            if cdigest != digest:
                raise CursorError("the cursor belongs to another expression")
            start = "(" + after
        skey = snapshot_key(tenant, snap_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.execute_command("ZRANGEBYLEX", skey, start, "+", "LIMIT", 0, limit + 1)
        pipe.execute_command("ZCARD", skey)
        pipe.execute_command("EXPIRE", skey, self.snapshot_ttl_s)
        rows, total, alive = await pipe.execute()
        if not alive:
            raise CursorError("the cursor expired; start again without a cursor")
        members = [_text(m) for m in rows[:limit]]
        more = len(rows) > limit
        if not more:
            await self.r.delete(skey)
        nxt = encode_cursor(snap_id, members[-1], digest) if more else None
        return Page(members, int(total), nxt)
