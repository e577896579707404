"""Run segment plans on Redis: sizes, member snapshots and cursor paging (async client).

Sizes avoid building the segment where cardinalities suffice: a tag value is ``SCARD``, a
numeric range ``ZCOUNT``, ``IN`` over one tag's values the sum of their ``SCARD`` (a user
holds one value of a tag, so they are disjoint), ``NOT x`` is ``SCARD users - |x|`` (every
tagged user is in ``users``), an intersection of plain sets ``SINTERCARD`` (Redis >= 7).
Anything else is computed into temporary keys in one pipeline: the plan's ``*STORE``
commands, a ``PEXPIRE`` on each (a crash never leaves them behind), the read, and a ``DEL``.

Paging never re-runs the query: the first page computes the segment and *renames* the
result into a snapshot key (``sa:{t}:tmp:snap:{id}``; a bare tag key is copied), kept
``snapshot_ttl_s`` and refreshed on each page. Pages walk the snapshot with ``SSCAN``
(``ZSCAN`` when numeric ranges took part); nothing writes to the snapshot, so a scan
cursor always yields the same batch and every member comes exactly once. The paging cursor
holds the snapshot id, the scan cursor, how many members of that batch were already
returned, and a digest of the expression; it only works for the tenant that created it.
Members come in no particular order. A result known to fit in the first page (cached size,
a single key's cardinality, or ``SINTERCARD ... LIMIT``) is read at once, without a snapshot.

Sizes are cached per (tenant, expression) for ``size_cache_s`` seconds (default 5): a
dashboard polling one segment costs one computation per period. A numeric range intersected
with plain sets is counted with ``ZINTERCARD`` (Redis >= 7) over the in-range part or, when
that is larger, as everything minus the out-of-range parts, so nothing of the size of the
sets is stored.

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
    USERS,
    Catalog,
    Diff,
    Inter,
    Key,
    Plan,
    Range,
    SegmentError,
    Union,
    compile_node,
    disjoint,
    disjoint_keys,
    intersect,
    leaves,
    lower,
    parse,
    tags_needing_values,
    unite,
)

__all__ = ["CursorError", "Page", "SegmentRunner", "decode_cursor", "encode_cursor",
           "values_key"]

_SNAP_ID = re.compile(r"^[0-9a-f]{8,32}$")


class CursorError(SegmentError):
    """A paging cursor is malformed, expired, or belongs to another expression."""


def values_key(tenant: str, tag_id: str) -> str:  # same as serving.keys.values_key
    """Proposed index ``sa:{t}:vals:{tag}`` (set of values present) for text/set tags.

    Not written by the projection yet; when absent the runner finds the values by
    ``SCAN MATCH sa:{t}:seg:{tag}=*`` (cached ``value_cache_s``).
    """
    return f"{keys.PREFIX}:{tenant}:vals:{tag_id}"


def snapshot_key(tenant: str, snap_id: str) -> str:
    return f"{keys.PREFIX}:{tenant}:tmp:snap:{snap_id}"


def expr_digest(expr: str) -> str:
    return hashlib.sha256(" ".join(expr.split()).encode()).hexdigest()[:12]


def encode_cursor(snap_id: str, scan: int, skip: int, digest: str, z: bool = False,
                  count: int = 1000) -> str:
    """Opaque cursor text (``count``: the scan COUNT every page of the snapshot uses).

    >>> c = encode_cursor("0a1b2c3d", 1536, 7, "d1")
    >>> decode_cursor(c)
    ('0a1b2c3d', 1536, 7, 'd1', False, 1000)
    """
    raw = orjson.dumps({"s": snap_id, "c": scan, "k": skip, "h": digest, "z": int(z),
                        "n": count})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int, int, str, bool, int]:
    """``(snapshot id, scan cursor, skip, expression digest, zset, count)``; CursorError if
    malformed.

    >>> decode_cursor("garbage")
    Traceback (most recent call last):
    ...
    stream_app.serving.segment_runner.CursorError: malformed cursor
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        d = orjson.loads(raw)
        out = (str(d["s"]), int(d["c"]), int(d["k"]), str(d["h"]), bool(d["z"]),
               int(d["n"]))
    except Exception:  # noqa: BLE001 - any decoding problem is a bad cursor
        raise CursorError("malformed cursor") from None
    if not _SNAP_ID.match(out[0]) or out[1] < 0 or out[2] < 0 or not 1 <= out[5] <= 100_000:
        raise CursorError("malformed cursor")
    return out


@dataclass
class Page:
    """One page of a segment's members (in snapshot scan order)."""

    members: list[str]
    total: int
    next_cursor: str | None


def _has_range(node: Any) -> bool:
    """Does computing ``node`` involve a numeric range (costly sorted-set work)?"""
    if isinstance(node, Range):
        return True
    if isinstance(node, Inter | Union):
        return any(_has_range(i) for i in node.items)
    if isinstance(node, Diff):
        return _has_range(node.base) or any(_has_range(i) for i in node.minus)
    return False


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class SegmentRunner:
    """Evaluates segment expressions of any tenant on one Redis (``redis.asyncio`` client)."""

    def __init__(self, redis: Any, catalog: Catalog, *, temp_ttl_ms: int = 30_000,
                 snapshot_ttl_s: int = 600, value_cache_s: float = 30.0,
                 size_cache_s: float = 5.0, size_cache_max: int = 4096) -> None:
        self.r = redis
        self.catalog = catalog
        self.temp_ttl_ms = temp_ttl_ms
        self.snapshot_ttl_s = snapshot_ttl_s
        self.value_cache_s = value_cache_s
        self._values: dict[tuple[str, str], tuple[float, list[Any]]] = {}
        self._intercard: bool | None = None
        self.size_cache_s = size_cache_s
        self.size_cache_max = size_cache_max
        self._sizes: dict[tuple[str, str], tuple[float, int]] = {}

    # -- planning ----------------------------------------------------------------------
    async def compile(self, tenant: str, expr: str) -> Plan:
        """Parse and plan ``expr`` for ``tenant`` (looks up text/set tag values if needed)."""
        ast = parse(expr)
        found = {}
        for tag in sorted(tags_needing_values(ast, self.catalog)):
            found[tag] = await self.present_values(tenant, tag)
        root = lower(ast, self.catalog, tenant, found)
        sizes = await self.leaf_sizes(root) if _has_range(root) else None
        return compile_node(root, tenant, qid=secrets.token_hex(8), sizes=sizes)

    async def leaf_sizes(self, root: Any) -> dict[Any, int]:
        """Cardinality of every key and numeric range of a tree (one pipeline, O(log n))."""
        nodes = sorted(leaves(root), key=repr)
        pipe = self.r.pipeline(transaction=False)
        for n in nodes:
            if isinstance(n, Range):
                pipe.execute_command("ZCOUNT", n.zkey, n.lo, n.hi)
            else:
                pipe.execute_command("ZCARD" if n.z else "SCARD", n.name)
        return {n: int(v) for n, v in zip(nodes, await pipe.execute(), strict=True)}

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
            pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
            tokens = [_text(k)[len(prefix):] async for k in
                      self.r.scan_iter(match=pattern, count=5000)]
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
        return await self._count(p.root, p.tenant)

    async def _count(self, node: Any, tenant: str) -> int:
        if isinstance(node, Key):
            return int(await self.r.execute_command("ZCARD" if node.z else "SCARD", node.name))
        if isinstance(node, Range):
            return int(await self.r.execute_command("ZCOUNT", node.zkey, node.lo, node.hi))
        if isinstance(node, Union) and disjoint_keys(node.items):
            pipe = self.r.pipeline(transaction=False)
            for k in node.items:
                pipe.scard(k.name)
            return sum(int(n) for n in await pipe.execute())
        if isinstance(node, Union) and all(
                disjoint(a, b) for i, a in enumerate(node.items) for b in node.items[i + 1:]):
            return sum([await self._count(i, tenant) for i in node.items])
        if (isinstance(node, Union) and len(node.items) <= 3
                and all(isinstance(i, Key) and not i.z for i in node.items)
                and await self._has_intercard()):
            return await self._union_count([i.name for i in node.items])
        if isinstance(node, Diff) and isinstance(node.base, Key) and node.base.group == USERS:
            minus = node.minus[0] if len(node.minus) == 1 else Union(node.minus)
            return await self._count(node.base, tenant) - await self._count(minus, tenant)
        if isinstance(node, Diff) and not _has_range(node.base) and await self._has_intercard():
            # |B - M| = |B| - |B & M|: with SINTERCARD both sides usually need no stores
            both = intersect([node.base, unite(list(node.minus))])
            return await self._count(node.base, tenant) - await self._count(both, tenant)
        if (isinstance(node, Inter) and await self._has_intercard()
                and sum(isinstance(i, Range) for i in node.items) == 1
                and all(isinstance(i, Range) or (isinstance(i, Key) and not i.z)
                        for i in node.items)):
            return await self._range_intercard(node, tenant)
        if (isinstance(node, Inter) and self._intercard is not False
                and all(isinstance(i, Key) and not i.z for i in node.items)):
            names = [i.name for i in node.items]
            try:  # Redis >= 7; older servers answer "unknown command" once
                n = int(await self.r.execute_command("SINTERCARD", len(names), *names))
                self._intercard = True
                return n
            except ResponseError:
                self._intercard = False
        p = compile_node(node, tenant, qid=secrets.token_hex(8))
        pipe = self.r.pipeline(transaction=False)
        self._queue_steps(pipe, p)
        pipe.execute_command("ZCARD" if p.z else "SCARD", p.result)
        pipe.execute_command("DEL", *p.temps)
        out = await pipe.execute()
        return int(out[-2])

    async def _range_intercard(self, node: Inter, tenant: str) -> int:
        """|R & S1 & ...| for one numeric range R and plain sets, with ZINTERCARD: over the
        in-range members copied out, or over the whole sorted set minus the out-of-range
        sides, whichever copies fewer members."""
        r = next(i for i in node.items if isinstance(i, Range))
        sets = [i.name for i in node.items if isinstance(i, Key)]
        sides = []  # out-of-range parts: (lo, hi) score bounds
        if r.lo != "-inf":
            sides.append(("-inf", r.lo[1:] if r.lo.startswith("(") else f"({r.lo}"))
        if r.hi != "+inf":
            sides.append((r.hi[1:] if r.hi.startswith("(") else f"({r.hi}", "+inf"))
        pipe = self.r.pipeline(transaction=False)
        pipe.execute_command("ZCOUNT", r.zkey, r.lo, r.hi)
        for lo, hi in sides:
            pipe.execute_command("ZCOUNT", r.zkey, lo, hi)
        counts = [int(x) for x in await pipe.execute()]
        inside, outside = counts[0], sum(counts[1:])
        qid = secrets.token_hex(8)
        parts = [(r.lo, r.hi, 1)] if inside <= outside else \
            [(lo, hi, -1) for (lo, hi), n in zip(sides, counts[1:], strict=True) if n]
        pipe = self.r.pipeline(transaction=False)
        temps = []
        for i, (lo, hi, _) in enumerate(parts):
            tmp = f"{keys.PREFIX}:{tenant}:tmp:{qid}:r{i}"
            temps.append(tmp)
            pipe.execute_command("ZRANGESTORE", tmp, r.zkey, lo, hi, "BYSCORE")
            pipe.execute_command("PEXPIRE", tmp, self.temp_ttl_ms)
            pipe.execute_command("ZINTERCARD", 1 + len(sets), tmp, *sets)
        if inside > outside:
            pipe.execute_command("ZINTERCARD", 1 + len(sets), r.zkey, *sets)
        if temps:
            pipe.execute_command("DEL", *temps)
        out = await pipe.execute()
        total = 0
        for i, (_, _, sign) in enumerate(parts):
            total += sign * int(out[3 * i + 2])
        if inside > outside:
            total += int(out[3 * len(parts)])
        return total

    async def _has_intercard(self) -> bool:
        """Does the server have SINTERCARD (Redis >= 7)? Asked once, on a missing key."""
        if self._intercard is None:
            try:
                await self.r.execute_command("SINTERCARD", 1, f"{keys.PREFIX}:-probe-")
                self._intercard = True
            except ResponseError as exc:  # only "unknown command" means Redis < 7
                self._intercard = "unknown command" not in str(exc).lower()
        return self._intercard

    async def _union_count(self, names: list[str]) -> int:
        """|A u B u C| by inclusion-exclusion with SCARD and SINTERCARD (nothing stored)."""
        pipe = self.r.pipeline(transaction=False)
        terms = []
        for mask in range(1, 1 << len(names)):
            part = [n for i, n in enumerate(names) if mask >> i & 1]
            terms.append(1 if len(part) % 2 else -1)
            if len(part) == 1:
                pipe.scard(part[0])
            else:
                pipe.execute_command("SINTERCARD", len(part), *part)
        return sum(sign * int(n) for sign, n in zip(terms, await pipe.execute(), strict=True))

    async def size(self, tenant: str, expr: str) -> int:
        """Number of users of ``tenant`` matching ``expr`` (cached ``size_cache_s``)."""
        hit = self.cached_size(tenant, expr)
        if hit is not None:
            return hit
        n = await self.size_of(await self.compile(tenant, expr))
        self._remember_size(tenant, expr, n)
        return n

    def cached_size(self, tenant: str, expr: str) -> int | None:
        """The size computed less than ``size_cache_s`` ago, if any."""
        hit = self._sizes.get((tenant, expr_digest(expr)))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def _remember_size(self, tenant: str, expr: str, n: int) -> None:
        if self.size_cache_s <= 0:
            return
        now = time.monotonic()
        if len(self._sizes) >= self.size_cache_max:
            self._sizes = {k: v for k, v in self._sizes.items() if v[0] > now}
            while len(self._sizes) >= self.size_cache_max:
                self._sizes.pop(next(iter(self._sizes)))
        self._sizes[(tenant, expr_digest(expr))] = (now + self.size_cache_s, n)

    async def _fits(self, tenant: str, expr: str, p: Plan, limit: int) -> bool:
        """Is the segment known, cheaply, to have at most ``limit`` members?"""
        n = self.cached_size(tenant, expr)
        if n is None and p.size_command() is not None:
            n = int(await self.r.execute_command(*p.size_command()))
        if n is None:
            names = p.intercard_keys()
            if names is None or not await self._has_intercard():
                return False
            n = int(await self.r.execute_command("SINTERCARD", len(names), *names,
                                                 "LIMIT", limit + 1))
        return n <= limit

    async def _small_page(self, p: Plan, limit: int) -> list[str] | None:
        """All members in one pipeline (no snapshot); None when more than ``limit``."""
        pipe = self.r.pipeline(transaction=False)
        self._queue_steps(pipe, p)
        pipe.execute_command("ZRANGE" if p.z else "SMEMBERS", p.result,
                             *((0, limit) if p.z else ()))
        if p.temps:
            pipe.execute_command("DEL", *p.temps)
        out = await pipe.execute()
        got = [_text(m) for m in out[-2 if p.temps else -1]]
        return got if len(got) <= limit else None

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

    async def snapshot(self, tenant: str, expr: str) -> tuple[str | None, int, bool]:
        """Store the segment for paging: ``(snapshot id or None if empty, size, zset?)``."""
        p = await self.compile(tenant, expr)
        if p.result is None:
            return None, 0, False
        snap_id = secrets.token_hex(8)
        skey = snapshot_key(tenant, snap_id)
        pipe = self.r.pipeline(transaction=False)
        self._queue_steps(pipe, p)
        rename_at = -1
        if p.result in p.temps:  # fails with "no such key" when the result is empty
            rename_at = len(pipe.command_stack)
            pipe.execute_command("RENAME", p.result, skey)
        elif p.z:
            pipe.execute_command("ZUNIONSTORE", skey, 1, p.result)
        else:
            pipe.execute_command("SUNIONSTORE", skey, p.result)
        pipe.execute_command("EXPIRE", skey, self.snapshot_ttl_s)
        pipe.execute_command("ZCARD" if p.z else "SCARD", skey)
        rest = [t for t in p.temps if t != p.result]
        if rest:
            pipe.execute_command("DEL", *rest)
        out = await pipe.execute(raise_on_error=False)
        for i, res in enumerate(out):
            if isinstance(res, Exception) and i != rename_at:
                raise res
        total = int(out[-2 if rest else -1])
        if not total:
            return None, 0, p.z
        return snap_id, total, p.z

    async def _scan(self, skey: str, z: bool, cursor: int, count: int) -> tuple[int, list[str]]:
        if z:
            nxt, items = await self.r.zscan(skey, cursor, count=count)
            return int(nxt), [_text(m) for m, _ in items]
        nxt, items = await self.r.sscan(skey, cursor, count=count)
        return int(nxt), [_text(m) for m in items]

    async def page(self, tenant: str, expr: str, cursor: str | None,
                   limit: int = 1000) -> Page:
        """A page of members: the first (``cursor=None``) or the one after ``cursor``."""
        if not 1 <= limit <= 100_000:
            raise SegmentError("limit must be between 1 and 100000")
        digest = expr_digest(expr)
        if cursor is None:
            p = await self.compile(tenant, expr)
            if p.result is None:
                return Page([], 0, None)
            if await self._fits(tenant, expr, p, limit):
                small = await self._small_page(p, limit)
                if small is not None:
                    return Page(small, len(small), None)
            snap_id, total, z = await self.snapshot(tenant, expr)
            if snap_id is None:
                return Page([], total, None)
            scan, skip, count = 0, 0, max(limit, 10)
            skey = snapshot_key(tenant, snap_id)
        else:
            snap_id, scan, skip, cdigest, z, count = decode_cursor(cursor)
            if cdigest != digest:
                raise CursorError("the cursor belongs to another expression")
            skey = snapshot_key(tenant, snap_id)
            pipe = self.r.pipeline(transaction=False)
            pipe.execute_command("ZCARD" if z else "SCARD", skey)
            pipe.execute_command("EXPIRE", skey, self.snapshot_ttl_s)
            total, alive = await pipe.execute()
            if not alive:
                raise CursorError("the cursor expired; start again without a cursor")
        members: list[str] = []
        nxt_cursor: str | None = None
        while True:
            nxt, batch = await self._scan(skey, z, scan, count)
            batch = batch[skip:]
            need = limit - len(members)
            if len(batch) > need:  # the page ends inside this batch: resume in it
                members += batch[:need]
                nxt_cursor = encode_cursor(snap_id, scan, skip + need, digest, z, count)
                break
            members += batch
            if nxt == 0:
                break
            scan, skip = nxt, 0
            if len(members) == limit:  # full: is anything left after this point?
                while nxt != 0:
                    nxt, peek = await self._scan(skey, z, scan, 10)
                    if peek:
                        nxt_cursor = encode_cursor(snap_id, scan, 0, digest, z, count)
                        break
                    scan = nxt
                break
        if nxt_cursor is None:
            await self.r.delete(skey)
        return Page(members, int(total), nxt_cursor)
