"""Run segment plans on Redis: sizes, member snapshots and cursor paging (async client).

Segments are bitmaps over the tenant's integer user ids (see :mod:`~stream_app.serving.keys`).
A size is one pipeline: the plan's ``BITOP`` steps into temporary keys (each with a
``PEXPIRE``: a crash never leaves them behind), ``BITCOUNT`` of the result and a ``DEL``; a
single tag value is one ``BITCOUNT``. Every operator reads users/8 bytes (125 KB per operand
at 1M users), whatever the segment sizes.

Paging never re-runs the query: the first page computes the segment straight into a
snapshot key (``sa:{t}:tmp:snap:{id}``: the plan's last step writes it; a bare tag bitmap is
copied), kept ``snapshot_ttl_s`` and refreshed on each page. A page costs what it returns,
not the segment size: the same pipeline as the snapshot (or, for a later page, its
``EXPIRE``) also asks ``BITCOUNT``, ``STRLEN`` and a first ``GETRANGE`` from the cursor's
bit; when that chunk holds fewer than ``limit + 1`` bits, further chunks are sized from the
segment's density (``BITCOUNT / STRLEN``) and runs of zero bytes are skipped with ``BITPOS``;
decoding stops at the ``limit + 1``-th bit. Integer ids become user ids with one ``HMGET``
per 128 ids (``sa:{t}:ids:{n//128}``) in one pipeline. Nothing writes to the snapshot, so
every member comes exactly once, in integer-id order (the order users were first
projected). The cursor holds the snapshot id, the next bit position and a digest of the
expression; it only works for the tenant that created it. A segment that fits in the first
page leaves no snapshot behind (its ``DEL`` rides with the ``HMGET`` pipeline).

Sizes are cached per (tenant, expression) for ``size_cache_s`` seconds (default 5). The
values present of text and set tags (``tag:x``, ``x != v`` and set membership need them) are
cached per process but checked with one ``SCARD`` of their index on every query, so a new
value counts at once (:meth:`SegmentRunner.present_values`).

Example (needs a Redis with Lua; the unit tests run a real redis-server)::

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
from dataclasses import dataclass, replace
from typing import Any

import orjson

from stream_app.config import bad_edge
from stream_app.errors import StreamAppError
from stream_app.serving import keys
from stream_app.serving.segments import (
    Catalog,
    Key,
    Plan,
    Range,
    SegmentError,
    compile_node,
    leaves,
    lower,
    parse,
    tags_needing_values,
)

__all__ = ["CursorError", "Page", "SegmentRunner", "StoredDataError", "bit_positions",
           "decode_cursor", "encode_cursor", "parse_edges", "values_key"]

_SNAP_ID = re.compile(r"^[0-9a-f]{8,32}$")


_NONZERO = re.compile(rb"[^\x00]")
_BITS = [tuple(j for j in range(8) if b >> (7 - j) & 1) for b in range(256)]
"""Bit offsets (0 = most significant, Redis' SETBIT order) set in each byte value, ascending."""


def bit_positions(data: bytes, base: int = 0, start: int = 0,
                  limit: int | None = None) -> list[int]:
    """Offsets of the set bits of a bitmap chunk (``base``: offset of its first bit), in
    ascending order: only those ``>= start``, and at most ``limit`` of them.

    Decoding stops at the ``limit``-th bit, so a page costs what it returns, not the chunk
    size; zero bytes are skipped by a compiled regex (C speed).

    >>> bit_positions(bytes([0b10000001, 0, 0b01000000]), base=8)
    [8, 15, 25]
    >>> bit_positions(bytes([0b11100001, 0b01000000]), start=2, limit=2)
    [2, 7]
    >>> bit_positions(bytes([0b11111111]), base=16, start=30)
    []
    """
    out: list[int] = []
    first = max(0, (start - base) // 8)  # earlier bytes only hold bits below start
    if limit is None:
        for m in _NONZERO.finditer(data, first):
            i = m.start()
            off = base + 8 * i
            out.extend(off + j for j in _BITS[data[i]])
        if out and out[0] < start:
            out = [x for x in out if x >= start]
        return out
    if limit <= 0:
        return out
    for m in _NONZERO.finditer(data, first):
        i = m.start()
        off = base + 8 * i
        if off < start:
            out.extend(off + j for j in _BITS[data[i]] if off + j >= start)
        else:
            out.extend(off + j for j in _BITS[data[i]])
        if len(out) >= limit:
            del out[limit:]
            break
    return out


class CursorError(SegmentError):
    """A paging cursor is malformed, expired, or belongs to another expression."""


class StoredDataError(StreamAppError):
    """Redis holds data the API cannot read as its writer meant it (the message names the
    key and the repair); the API answers 500 with that message."""


def parse_edges(raw: str, key: str) -> list[float]:
    """The bucket edges stored at ``key`` (``sa:{t}:nbe:{tag}``), exactly as the writer
    buckets values with them: in stored order, a value in the bucket of the last edge it
    reaches. Those are the buckets the planner assumes only for strictly ascending numbers,
    so edges written by an unchecked setting (unsorted, or text Lua read as nothing) are
    refused, never re-sorted (re-sorting gave wrong members, QA28 F15).

    >>> parse_edges("0,1,5, 10", "k")
    [0.0, 1.0, 5.0, 10.0]
    >>> try: parse_edges("10,5,1,0", "sa:t:nbe:lead_points")
    ... except StoredDataError as exc: print(str(exc)[:89])
    the bucket edges of numeric tag 'lead_points' stored in Redis (sa:t:nbe:lead_points = '10
    """
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    bad = bad_edge(parts)   # the setting's own check (config.Settings.redis_num_edges)
    if bad is not None:
        i, kind = bad
        problem = (f"hold {parts[i]!r}, which is not a number" if kind == "number"
                   else f"are not strictly ascending ({parts[i]} after {parts[i - 1]})")
        tag = key.rpartition(":nbe:")[2]
        raise StoredDataError(
            f"the bucket edges of numeric tag {tag!r} stored in Redis ({key} = {raw!r}) "
            f"{problem}, so ranges on this tag cannot be answered: set "
            "STREAM_APP_REDIS_NUM_EDGES to ascending numbers and run `stream-app "
            "redis-rebuild` (the edges are kept in Redis once written)")
    return [float(p) for p in parts]


def values_key(tenant: str, tag_id: str) -> str:  # same as serving.keys.values_key
    """The index ``sa:{t}:vals:{tag}`` (set of values present) of text/set tags, written by
    the projection with each new value.

    When absent (data projected before the index existed) the runner finds the values by
    ``SCAN MATCH sa:{t}:seg:{tag}=*`` (cached ``value_cache_s``).

    >>> values_key("acme", "first_channel")
    'sa:acme:vals:first_channel'
    """
    return f"{keys.PREFIX}:{tenant}:vals:{tag_id}"


def snapshot_key(tenant: str, snap_id: str) -> str:
    return f"{keys.PREFIX}:{tenant}:tmp:snap:{snap_id}"


#: a quoted string of the grammar (whitespace inside it is part of the value)
_QUOTED = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")
#: a Redis string holds at most 512 MB: its bit positions are below 2**32
MAX_BIT = 2**32


#: the whitespace the grammar ignores (lark's ``common.WS``); other Unicode spaces (U+3000,
#: U+00A0, ...) are characters the grammar refuses, so they must not be collapsed
_GRAMMAR_WS = re.compile(r"[ \t\f\r\n]+")


def expr_digest(expr: str) -> str:
    r"""Digest of an expression for the size cache and cursors: runs of the whitespace the
    grammar ignores (``[ \t\f\r\n]``) outside quoted strings count as one space, quoted
    strings and every other character are kept exactly, so two expressions of one digest
    parse alike.

    >>> expr_digest("a  =  'x y'") == expr_digest("a =\t'x y'\n") != expr_digest("a = 'x  y'")
    True
    >>> expr_digest("region = 北京") == expr_digest("region = 北京\u3000")
    False
    """
    parts = _QUOTED.split(expr)
    text = "".join(p if i % 2 else _GRAMMAR_WS.sub(" ", p) for i, p in enumerate(parts))
    return hashlib.sha256(text.strip(" ").encode()).hexdigest()[:12]


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
    if (not _SNAP_ID.match(out[0]) or not 0 <= out[1] < MAX_BIT or not 0 <= out[2] < MAX_BIT
            or not 1 <= out[5] <= 100_000):
        raise CursorError("malformed cursor")
    return out


@dataclass
class Page:
    """One page of a segment's members (in snapshot scan order).

    ``skipped``: members of the page's stretch of the snapshot whose user was deleted
    (``stream-app forget``) since the snapshot was taken; they are left out, so over all
    pages ``len(members) + skipped`` adds up to ``total``.

    >>> Page(["u1", "u3"], 3, None, skipped=1)
    Page(members=['u1', 'u3'], total=3, next_cursor=None, skipped=1)
    """

    members: list[str]
    total: int
    next_cursor: str | None
    skipped: int = 0


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class SegmentRunner:
    """Evaluates segment expressions of any tenant on one Redis (``redis.asyncio`` client)."""

    def __init__(self, redis: Any, catalog: Catalog, *, temp_ttl_ms: int = 30_000,
                 snapshot_ttl_s: int = 600, value_cache_s: float = 30.0,
                 size_cache_s: float = 5.0, size_cache_max: int = 4096,
                 read_chunk: int = 16_384) -> None:
        self.r = redis
        self.catalog = catalog
        self.temp_ttl_ms = temp_ttl_ms
        self.snapshot_ttl_s = snapshot_ttl_s
        self.value_cache_s = value_cache_s
        self._values: dict[tuple[str, str], tuple[float, int, list[Any]]] = {}
        self._edges: dict[str, tuple[float, list[float]]] = {}
        self.size_cache_s = size_cache_s
        self.size_cache_max = size_cache_max
        self.read_chunk = read_chunk
        self._sizes: dict[tuple[str, str], tuple[float, int]] = {}

    # -- planning ----------------------------------------------------------------------
    async def compile(self, tenant: str, expr: str) -> Plan:
        """Parse and plan ``expr`` for ``tenant`` (looks up text/set tag values and numeric
        bucket edges if needed)."""
        ast = parse(expr)
        found = {}
        for tag in sorted(tags_needing_values(ast, self.catalog)):
            found[tag] = await self.present_values(tenant, tag)
        root = lower(ast, self.catalog, tenant, found)
        zkeys = sorted({n.zkey if isinstance(n, Range) else n.name for n in leaves(root)
                        if isinstance(n, Range) or (isinstance(n, Key) and n.z)})
        edges = {z: await self.bucket_edges(z) for z in zkeys}
        return compile_node(root, tenant, qid=secrets.token_hex(8), edges=edges,
                            ttl_ms=self.temp_ttl_ms)

    async def bucket_edges(self, zkey: str) -> list[float]:
        """The bucket edges the writer used for a numeric tag (cached ``value_cache_s`` once
        written: the writer stores them with the tag's first value and keeps them; a tag not
        written yet is asked again next time, so its first values are not read with no
        edges)."""
        now = time.monotonic()
        hit = self._edges.get(zkey)
        if hit and hit[0] > now:
            return hit[1]
        pre, _, tag = zkey.rpartition(":num:")
        ekey = f"{pre}:nbe:{tag}"
        raw = await self.r.get(ekey)
        edges = parse_edges(_text(raw), ekey) if raw else []
        if edges:
            self._edges[zkey] = (now + self.value_cache_s, edges)
        return edges

    async def present_values(self, tenant: str, tag_id: str) -> list[Any]:
        """Values of a text/set tag that some user of ``tenant`` holds.

        Read from the projection's index ``sa:{t}:vals:{tag}`` (values are only ever added
        to it), whose ``SCARD`` is asked on every call: the cached list is used only while
        the index has as many values as when it was read (and for at most
        ``value_cache_s``), so a value the projection has just written is seen by the next
        query. Without an index (data written before it existed) the values come from
        ``SCAN MATCH sa:{t}:seg:{tag}=*``, cached ``value_cache_s``.

        Example (``runner`` over a Redis where user u1 just got ``first_channel=douyin``)::

            await runner.present_values("t", "first_channel")   # ['bilibili', 'douyin']
        """
        now = time.monotonic()
        vkey = values_key(tenant, tag_id)
        card = int(await self.r.scard(vkey))
        hit = self._values.get((tenant, tag_id))
        if hit and hit[0] > now and hit[1] == card:
            return hit[2]
        kind = self.catalog.tags[tag_id].kind
        tokens = [_text(v) for v in await self.r.smembers(vkey)] if card else []
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
        self._values[(tenant, tag_id)] = (now + self.value_cache_s, card, values)
        return values

    # -- execution ---------------------------------------------------------------------
    def _queue_steps(self, pipe: Any, p: Plan) -> None:
        for step in p.steps:
            pipe.execute_command(*step)
            if step[0] != "EVAL":  # the range script sets its own expiry
                dst = step[2] if step[0] == "BITOP" else step[1]
                pipe.execute_command("PEXPIRE", dst, self.temp_ttl_ms)

    async def size_of(self, p: Plan) -> int:
        """Number of members of a planned segment."""
        if p.result is None:
            return 0
        if not p.temps:  # a tag value or a whole bucket: one existing bitmap
            return int(await self.r.execute_command("BITCOUNT", p.result))
        pipe = self.r.pipeline(transaction=False)
        self._queue_steps(pipe, p)
        pipe.execute_command("BITCOUNT", p.result)
        pipe.execute_command("DEL", *p.temps)
        out = await pipe.execute()
        return int(out[-2])

    async def size(self, tenant: str, expr: str) -> int:
        """Number of users of ``tenant`` matching ``expr`` (cached ``size_cache_s``; the
        expression is parsed first, so a cached size is never the answer to one that does
        not parse)."""
        hit = self.cached_size(tenant, expr)
        if hit is not None:
            parse(expr)
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

    async def user_ids(self, tenant: str, ids: list[int], *,
                       delete: str | None = None) -> list[str]:
        """User ids of integer ids (one ``HMGET`` per 128 ids; forgotten ids are skipped).

        ``delete``: a key to ``DEL`` in the same round trip (a finished snapshot).
        """
        if not ids:
            if delete is not None:
                await self.r.delete(delete)
            return []
        groups: dict[int, list[int]] = {}
        for n in ids:
            groups.setdefault(n // keys.IDS_PER_HASH, []).append(n)
        pipe = self.r.pipeline(transaction=False)
        order = list(groups)
        for g in order:
            pipe.hmget(keys.ids_key(tenant, g * keys.IDS_PER_HASH),
                       [n % keys.IDS_PER_HASH for n in groups[g]])
        if delete is not None:
            pipe.delete(delete)
        out = await pipe.execute()
        got: dict[int, Any] = {}
        for g, vals in zip(order, out[:len(order)], strict=True):
            for n, v in zip(groups[g], vals, strict=True):
                got[n] = v
        return [_text(got[n]) for n in ids if got.get(n) is not None]

    def chunk_bytes(self, want: int, density: float | None = None) -> int:
        """Bytes to read for about ``want`` set bits (``density``: set bits per bit).

        Without a density, assumes one bit in 16 is set; always between 64 bytes and
        ``read_chunk``.

        >>> r = SegmentRunner(None, None, read_chunk=16_384)
        >>> r.chunk_bytes(101), r.chunk_bytes(101, 0.5), r.chunk_bytes(101, 0.0001)
        (202, 64, 16384)
        """
        # without a density assume 1 bit in 16; with one, 25 % slack (bits are not uniform)
        est = 2 * want if not density or density <= 0 else int(want / density / 8 * 1.25) + 8
        return max(64, min(self.read_chunk, est))

    async def read_ids(self, key: str, start: int, want: int, *,
                       head: tuple[bytes, int] | None = None,
                       density: float | None = None) -> list[int]:
        """Up to ``want`` set bit offsets of bitmap ``key`` from bit ``start`` on.

        Reads as little as the page needs: ``GETRANGE`` chunks sized from ``density`` (set
        bits per bit, e.g. ``BITCOUNT / (8 * STRLEN)``), doubling while bits are missing, and
        a ``BITPOS`` jump over a run of zero bytes; decoding stops at the ``want``-th bit.
        ``head``: the first chunk, already read from byte ``start // 8`` (its bytes and the
        number of bytes asked for, so a short chunk means the end of the bitmap).
        """
        out: list[int] = []
        byte = start // 8
        size = self.chunk_bytes(want, density)
        while len(out) < want:
            if head is not None:
                chunk, asked = head
                head = None
            else:
                chunk = await self.r.getrange(key, byte, byte + size - 1)
                asked = size
            if not chunk:
                break
            found = bit_positions(chunk, 8 * byte, start, want - len(out))
            out.extend(found)
            if len(out) >= want or len(chunk) < asked:
                break
            byte += len(chunk)
            if not found:  # a run of zeros: let Redis find the next set bit
                nxt = int(await self.r.bitpos(key, 1, byte))
                if nxt < 0:
                    break
                byte = nxt // 8
            size = min(self.read_chunk, max(2 * size, self.chunk_bytes(want - len(out),
                                                                       density)))
        return out

    async def members(self, tenant: str, expr: str) -> set[str]:
        """Every member at once (for tests and small segments; use :meth:`page` to export)."""
        p = await self.compile(tenant, expr)
        if p.result is None:
            return set()
        pipe = self.r.pipeline(transaction=False)
        self._queue_steps(pipe, p)
        pipe.execute_command("GET", p.result)
        if p.temps:
            pipe.execute_command("DEL", *p.temps)
        out = await pipe.execute()
        raw = out[-2 if p.temps else -1] or b""
        return set(await self.user_ids(tenant, bit_positions(raw)))

    def _queue_snapshot(self, pipe: Any, p: Plan, skey: str) -> None:
        """Queue the plan's steps computing the segment straight into ``skey`` (the last
        step's temporary renamed in the commands; a bare tag or bucket bitmap is copied),
        with the snapshot expiry, and the other temporaries' ``DEL``."""
        assert p.result is not None
        if p.result in p.temps:  # temporaries are unique to the query: rename in place
            steps = [tuple(skey if x == p.result else x for x in step) for step in p.steps]
            self._queue_steps(pipe, replace(p, steps=steps))
        else:
            pipe.execute_command("BITOP", "OR", skey, p.result)  # a copy of an existing key
        pipe.execute_command("EXPIRE", skey, self.snapshot_ttl_s)
        rest = [k for k in p.temps if k != p.result]
        if rest:
            pipe.execute_command("DEL", *rest)

    async def snapshot(self, tenant: str, expr: str) -> tuple[str | None, int, bool]:
        """Store the segment for paging: ``(snapshot id or None if empty, size, False)``."""
        p = await self.compile(tenant, expr)
        if p.result is None:
            return None, 0, False
        snap_id = secrets.token_hex(8)
        skey = snapshot_key(tenant, snap_id)
        pipe = self.r.pipeline(transaction=False)
        self._queue_snapshot(pipe, p, skey)
        pipe.execute_command("BITCOUNT", skey)
        total = int((await pipe.execute())[-1])
        if not total:
            await self.r.delete(skey)
            return None, 0, False
        return snap_id, total, False

    async def page(self, tenant: str, expr: str, cursor: str | None,
                   limit: int = 1000) -> Page:
        """A page of members: the first (``cursor=None``) or the one after ``cursor``.

        Cost follows the page, not the segment: the first page is one pipeline (the plan's
        ``BITOP`` steps, the result renamed to the snapshot, ``BITCOUNT``, ``STRLEN`` and a
        first ``GETRANGE`` sized for ``limit + 1`` bits), then more ``GETRANGE`` only when
        the segment is sparse there, and one pipeline of ``HMGET`` (plus the snapshot's
        ``DEL`` after the last page). A later page is the same without the plan.

        A member whose user was deleted since the snapshot (its integer id no longer maps to
        a user id) is left out and counted in :attr:`Page.skipped`.
        """
        if not 1 <= limit <= 100_000:
            raise SegmentError("limit must be between 1 and 100000")
        digest = expr_digest(expr)
        want = limit + 1  # one more: is there a next page, and where it starts
        first = self.chunk_bytes(want)
        pipe = self.r.pipeline(transaction=False)
        if cursor is None:
            p = await self.compile(tenant, expr)
            if p.result is None:
                return Page([], 0, None)
            snap_id, start = secrets.token_hex(8), 0
            skey = snapshot_key(tenant, snap_id)
            self._queue_snapshot(pipe, p, skey)
        else:
            parse(expr)  # a later page must not accept what the first page would refuse
            snap_id, start, _, cdigest, _, _ = decode_cursor(cursor)
            if cdigest != digest:
                raise CursorError("the cursor belongs to another expression")
            skey = snapshot_key(tenant, snap_id)
            pipe.execute_command("EXPIRE", skey, self.snapshot_ttl_s)
        pipe.execute_command("BITCOUNT", skey)
        pipe.execute_command("STRLEN", skey)
        pipe.execute_command("GETRANGE", skey, start // 8, start // 8 + first - 1)
        out = await pipe.execute()
        total, length, head = int(out[-3]), int(out[-2]), out[-1]
        if cursor is not None and not out[0]:  # EXPIRE of a missing key
            raise CursorError("the cursor expired (or is not one of this tenant's); start "
                              "again without a cursor")
        if cursor is not None and start >= 8 * length:
            raise CursorError("malformed cursor: it points past the end of the segment")
        if not total:
            await self.r.delete(skey)
            return Page([], 0, None)
        ids = await self.read_ids(skey, start, want, head=(head or b"", first),
                                  density=total / (8 * length))
        if len(ids) > limit:
            nxt = encode_cursor(snap_id, ids[limit], 0, digest, False, limit)
            members = await self.user_ids(tenant, ids[:limit])
            return Page(members, total, nxt, skipped=limit - len(members))
        members = await self.user_ids(tenant, ids, delete=skey)
        return Page(members, total, None, skipped=len(ids) - len(members))
