"""Redis projection of the tables: current tags, segments, why records, timelines.

Writers record what changed without waiting; a background task writes it every
``flush_ms``. When Redis is down the operations stay queued (bounded by
``max_pending``; beyond that the oldest are dropped and counted, and
``stream-app redis-rebuild`` restores the projection from the tables).
Replaying the same change records is idempotent (HSET/SETBIT/ZADD).

Segments are bitmaps over per-tenant integer user ids (see :mod:`~stream_app.serving.keys`).
The operations keep their set-like names (``("sadd", seg_key, uid)``, ``("zadd", num_key,
uid, value)``); :func:`_apply` writes them as Lua scripts that look up (or atomically assign)
the user's integer id and set its bit (:data:`BIT_SCRIPT`), or move it between the numeric
tag's bucket bitmaps and its sorted set (:data:`NUM_SCRIPT`). The writer never waits for an
id. The live writer sends each flush as one Lua call that replays the same operations inside
Redis (:mod:`~stream_app.serving.redis_batch`, which also reads the operations for
:func:`_apply`); ``redis-rebuild`` and tests use the pipeline of :func:`_apply`.

Why records are packed into one field of the user hash (``~w``, :func:`keys.pack_why`): per
tag a 4-character shape code (rule, version, rule set, case, value names: stored once per
tenant in ``sa:{t}:wd``) and the values; :data:`WHY_SCRIPT` merges an event's records into
the field. Storage switches: ``redis_why`` = ``compact``/``off``, ``redis_timeline`` = changes
kept per user (default 0: the history is the ``tags.changes`` topic).

:func:`change_ops` is the complete projection of one change (``redis-rebuild`` writes it).
:func:`event_ops` merges one event's changes per user: one HSET of the tag fields, one
script call for the why records (and an HSETNX per why shape this process has not written
yet), one LPUSH of the timeline entries, and it skips what it already wrote (the
tenant/user set membership of users it projected before and the values index of values it
saw, both in bounded LRUs). The live writer, :class:`RedisProjection`, goes one step
further: its calls (``apply_changes``, ``set_fields``, ``forget``) only record each user's
net result since the last flush (:class:`Pending`), and the flush builds one user's
operations once (:func:`pending_ops`, the same merged form over all the user's events of
the interval): a user whose tags change several times between two flushes costs one HSET,
one why merge (one packed record per tag) and the segment bits' end state.
:class:`PerCallProjection` (each call's :func:`event_ops` at once) is kept as the reference
it is tested and measured against. ``set_fields`` writes only the fields whose value
changed since this process last wrote them for that user.

Example (pure part: the operations one tag change becomes):
    >>> ch = {"user_id": "u1", "tenant": "default", "tag_id": "activity", "old": None,
    ...       "new": "low", "seq": 1}
    >>> [op[0] for op in change_ops(ch, why=None)]
    ['hset', 'sadd', 'sadd', 'sadd', 'sadd', 'lpush', 'ltrim']
    >>> two = [ch, {**ch, "tag_id": "intent", "new": "high"}]
    >>> why = {"activity": {"rule_version": 1, "values": {"count(x)": 2}}}
    >>> [op[0] for op in event_ops(two, why, seen=Seen(10), timeline=0)]
    ['hsetmap', 'sadd', 'sadd', 'sadd', 'sadd', 'sadd', 'sadd', 'why']
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from stream_app.serving import keys
from stream_app.serving.redis_batch import BATCH_SCRIPT, WHY_FN, JsonFields, encode_batch, encode_op

log = logging.getLogger(__name__)
Op = tuple[Any, ...]


def _numeric(v: Any) -> bool:
    # a tuple, not ``int | float``: isinstance with a union type is several times slower
    return isinstance(v, (int, float)) and v.__class__ is not bool  # noqa: UP038


_NUMERIC_CLASS: dict[type, bool] = {int: True, float: True, str: False, bool: False,
                                     type(None): False}
""":func:`_numeric` of the common classes, by class (one lookup instead of a call)."""


def _members(v: Any) -> list[Any]:
    """Segment values of a tag value. A set-kind tag's list is one value (one segment per
    combination; the API's planner unions the combinations that contain an element)."""
    return [v]


def _id_prelude(nothing_to_add: str) -> str:
    """Lua shared by the scripts: the user's integer id (KEYS[2] = user hash, ARGV[1] = user
    id, ARGV[3] = tenant key prefix), assigned with ``INCR`` on first use so two writers never
    get the same id; returns -1 early when ARGV[2] equals ``nothing_to_add`` (a removal for a
    user who never had an id)."""
    return f"""
local id = redis.call('HGET', KEYS[2], '_id')
if not id then
  if ARGV[2] == '{nothing_to_add}' then return -1 end
  id = redis.call('INCR', ARGV[3] .. 'nextid') - 1
  redis.call('HSET', KEYS[2], '_id', id)
  redis.call('HSET', ARGV[3] .. 'ids:' .. math.floor(id / 128), id % 128, ARGV[1])
end
"""


BIT_SCRIPT = _id_prelude("0") + """redis.call('SETBIT', KEYS[1], id, tonumber(ARGV[2]))
return tonumber(id)
"""
"""KEYS: bitmap, user hash; ARGV: user id, bit (0/1), tenant key prefix. Sets the user's bit,
assigning an integer id on first use (``INCR``: two writers never get the same id)."""

NUM_SCRIPT = _id_prelude("") + """local ek = ARGV[3] .. 'nbe:' .. ARGV[4]
local e = redis.call('GET', ek)
if not e then e = ARGV[5]; redis.call('SET', ek, e) end
local edges = {}
for x in string.gmatch(e, '[^,]+') do edges[#edges + 1] = tonumber(x) end
local function bucket(v)
  local b = 0
  for j = 1, #edges do if v >= edges[j] then b = j end end
  return b
end
local base = ARGV[3] .. 'nb:' .. ARGV[4] .. ':'
local old = redis.call('ZSCORE', KEYS[1], id)
if old then redis.call('SETBIT', base .. bucket(tonumber(old)), id, 0) end
if ARGV[2] == '' then
  redis.call('ZREM', KEYS[1], id)
else
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  redis.call('SETBIT', base .. bucket(tonumber(ARGV[2])), id, 1)
end
return tonumber(id)
"""
"""KEYS: sorted set, user hash; ARGV: user id, value ('' removes), tenant prefix, tag id,
bucket edges (used when the tag has none in Redis yet). Keeps the exact value in the sorted
set (member: the integer id) and the user's bit in the bucket bitmap of the value."""

UNID_SCRIPT = """
local id = redis.call('HGET', KEYS[1], '_id')
if not id then return 0 end
local k = ARGV[2] .. 'ids:' .. math.floor(id / 128)
if redis.call('HGET', k, id % 128) == ARGV[1] then redis.call('HDEL', k, id % 128) end
redis.call('HDEL', KEYS[1], '_id')
return 1
"""
"""KEYS: user hash; ARGV: user id, tenant prefix. Drops the integer id -> user id mapping
(the id is never reused)."""


WHY_SCRIPT = WHY_FN + """
return merge_why(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]))
"""
"""KEYS: user hash, the tenant's why shapes; ARGV: packed field name, space-separated tags
whose records go, the new records (``|``-joined, may be empty), shape code length. Rewrites
the packed why field: a kept record is one of another tag (its tag is the shape's first
element; a record of an unknown shape is dropped)."""

def why_op(tenant: str, uid: str, why: dict[str, dict[str, Any]], drop: list[str]) -> Op:
    """The operation replacing the packed why records of ``why``'s tags and dropping those
    of ``drop``: ``("why", user key, tenant, tags, records, {code: shape})``."""
    records, shapes = _packed(why.items())
    return ("why", keys.user_key(tenant, uid), tenant, tuple(sorted({*why, *drop})), records,
            shapes)


def _packed(why: Iterable[tuple[str, dict[str, Any] | None]]
            ) -> tuple[list[bytes], dict[str, bytes]]:
    """The packed records (:func:`keys.pack_why`) of ``(tag, record)`` pairs, a None record
    skipped, and their shapes ``{code: shape}``."""
    records: list[bytes] = []
    shapes: dict[str, bytes] = {}
    pack = keys.pack_why
    for tag, w in why:
        if w is not None:
            code, shape, rec = pack(tag, w)
            records.append(rec)
            shapes[code] = shape
    return records, shapes


def _settings_value(name: str, default: Any) -> Any:
    try:
        from stream_app.config import get_settings  # noqa: PLC0415

        return getattr(get_settings(), name)
    except Exception:  # noqa: BLE001 - settings unreadable: the documented default
        return default


def num_edges() -> str:
    """Bucket edges for numeric tags first written by this process (setting)."""
    return _settings_value("redis_num_edges", "0,1,5,10,20,50,100,1000")


def change_ops(change: dict[str, Any], why: dict[str, Any] | None, *,
               timeline: int = keys.TIMELINE_MAX) -> list[Op]:
    """Redis operations that project one tag-change record (``timeline``: changes kept, 0
    for none; ``why=None``: no why record for the new value, any older one is dropped)."""
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
        ops.append(why_op(t, uid, {tag: why}, []))
    elif new is None:
        ops.append(why_op(t, uid, {}, [tag]))
    if timeline > 0:
        tl = keys.timeline_key(t, uid)
        ops.append(("lpush", tl, orjson.dumps(keys.compact_change(change))))
        ops.append(("ltrim", tl, 0, timeline - 1))
    return ops


class Seen:
    """A bounded LRU of keys already written (``(tenant, uid)``, ``(tenant, tag, token)``),
    and bounded sets of the keys many users share (:meth:`new_in`: a tenant's why shapes and
    values index entries).

    Example:
        >>> s = Seen(2)
        >>> s.add("a"), s.add("a"), s.add("b"), s.add("c"), "a" in s
        (True, False, True, True, False)
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[Any, None] = OrderedDict()
        self._groups: dict[Any, set[Any]] = {}
        self._in_groups = 0

    def new_in(self, group: Any, keys: Iterable[Any]) -> list[Any]:
        """The ``keys`` not remembered yet in ``group`` (remembered now), in order: for the
        few keys every user shares (a tenant's why shape codes and values index entries),
        one set test per call instead of an LRU step per key. The groups hold at most
        ``size`` keys in all (all forgotten when full: they are written again, which
        changes nothing in Redis).

        Example:
            >>> s = Seen(3)
            >>> s.new_in("g", ["a", "b"]), s.new_in("g", ["b", "c"]), s.new_in("g", ["a"])
            (['a', 'b'], ['c'], [])
            >>> s.new_in("g", ["d"]), s.new_in("g", ["a"])   # a 4th key: all forgotten
            (['d'], ['a'])
            >>> Seen(0).new_in("g", ["a"]), Seen(1).new_in("g", ["a", "b"])
            (['a'], ['a', 'b'])
        """
        known = self._groups.get(group)
        if known is None:
            known = self._groups[group] = set()
        elif known.issuperset(keys):
            return []
        new = [k for k in keys if k not in known]
        if self._in_groups + len(new) > self.size:
            self._groups.clear()
            known = self._groups[group] = set()
            self._in_groups = 0
            if len(new) > self.size:  # no room (size 0: nothing is remembered)
                return new
        known.update(new)
        self._in_groups += len(new)
        return new

    def add(self, key: Any) -> bool:
        """Remember ``key``; True when it was not known (so it must be written)."""
        if key in self._d:
            self._d.move_to_end(key)
            return False
        self._d[key] = None
        if len(self._d) > self.size:
            self._d.popitem(last=False)
        return True

    def discard(self, key: Any) -> None:
        self._d.pop(key, None)

    def __contains__(self, key: Any) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)


def event_ops(changes: list[dict[str, Any]], why: dict[str, dict[str, Any]] | None,
              seen: Seen | None = None, *, timeline: int = keys.TIMELINE_MAX) -> list[Op]:
    """Merged operations of one event's changes (one user usually; grouped per user).

    Same end state as the :func:`change_ops` of each change in order. With ``seen``, the
    SADDs to ``users``/``tenants`` and to the values index are left out for what was already
    written (and remembered there).
    """
    by_user: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for ch in changes:
        by_user.setdefault((ch["tenant"], ch["user_id"]), []).append(ch)
    ops: list[Op] = []
    for (t, uid), chs in by_user.items():
        ukey = keys.user_key(t, uid)
        tag_set: dict[str, bytes] = {}
        why_set: dict[str, dict[str, Any]] = {}
        members: list[Op] = []
        last: dict[str, Any] = {}
        for ch in chs:
            last[ch["tag_id"]] = ch.get("new")
            for op in change_ops(ch, None)[1:]:  # the set/zset moves, in order
                if op[0] in ("lpush", "ltrim", "why") or op[1] in (keys.users_key(t),
                                                                     keys.TENANTS_KEY):
                    continue
                if op[0] == "sadd" and op[1].startswith(f"{keys.PREFIX}:{t}:vals:") \
                        and seen is not None and not seen.add((t, op[1], op[2])):
                    continue
                members.append(op)
        removed = [tag for tag, v in last.items() if v is None]
        for tag, v in last.items():
            if v is not None:
                tag_set[f"tag:{tag}"] = orjson.dumps(v)
                w = (why or {}).get(tag)
                if w is not None:
                    why_set[tag] = w
        if tag_set:
            ops.append(("hsetmap", ukey, tag_set))
        if removed:
            ops.append(("hdel", ukey, *[f"tag:{tag}" for tag in removed]))
        ops.extend(members)
        if seen is None or seen.add((t, uid)):
            ops.append(("sadd", keys.users_key(t), uid))
            if seen is None or seen.add((t,)):
                ops.append(("sadd", keys.TENANTS_KEY, t))
        gone = [tag for tag in last if tag not in why_set]
        if why is not None and (why_set or gone):
            op = why_op(t, uid, why_set, gone)
            if seen is not None:  # shapes this process wrote already
                op = (*op[:5], {c: v for c, v in op[5].items() if seen.add((t, "wd", c))})
            ops.append(op)
        if timeline > 0:
            tl = keys.timeline_key(t, uid)
            ops.append(("lpush", tl, *[orjson.dumps(keys.compact_change(ch)) for ch in chs]))
            ops.append(("ltrim", tl, 0, timeline - 1))
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
    ops.append(("srem", keys.users_key(tenant), uid))
    ops.append(("unid", tenant, uid))  # needs the user hash: before its deletion
    # the user hash holds the packed why records; why:{uid} is the old layout's
    ops.append(("delete", keys.user_key(tenant, uid), keys.why_key(tenant, uid),
                keys.timeline_key(tenant, uid)))
    return ops


def _apply(pipe: Any, op: Op) -> None:
    """Queue one operation on a (sync or async) pipeline. Every operation but ``why`` is
    read as the live writer's batch reads it (:func:`~stream_app.serving.redis_batch.
    encode_op`: segment and numeric moves, id drops, plain commands), then sent as the Lua
    scripts :data:`BIT_SCRIPT`, :data:`NUM_SCRIPT`, :data:`UNID_SCRIPT` or the command."""
    if op[0] == "why":
        ukey, tenant, drop, records, shapes = op[1:]
        dk = keys.why_dict_key(tenant)
        for code, shape in shapes.items():
            pipe.hsetnx(dk, code, shape)
        pipe.eval(WHY_SCRIPT, 2, ukey, dk, keys.WHY_FIELD, " ".join(drop), b"|".join(records),
                  keys.WHY_CODE_LEN)
        return
    for kind, *args in encode_op(op, num_edges):
        if kind == "b":      # bitmap, user hash; uid, bit, prefix
            pipe.eval(BIT_SCRIPT, 2, *args)
        elif kind == "n":    # zset, user hash; uid, value, prefix, tag, edges
            pipe.eval(NUM_SCRIPT, 2, *args)
        elif kind == "u":    # user hash; uid, prefix
            pipe.eval(UNID_SCRIPT, 1, *args)
        else:
            pipe.execute_command(*args)


MIN_HASH_VALUE = 1024
"""``hash-max-listpack-value`` the packed why field needs (see ``deploy/redis/redis.conf``)."""


_DEL = object()
"""A hash field removed (a tag whose last value is None)."""


class Pending:
    """What one user's calls since the last flush leave to write: the net result, not the
    calls (see :class:`RedisProjection`). ``hash``: field -> last value written by
    ``apply_changes``/``set_fields`` (:data:`_DEL` for a removed tag); ``hist``: ``(tag,
    old, new)`` of every change in order (segment moves are replayed from it at flush time);
    ``why``: tag -> last why record (None: drop it), in the order Redis's packed field will
    hold them; ``timeline``: compact change records (when the timeline is on); ``forget``:
    the tags passed to :meth:`RedisProjection.forget`, which closes the entry.

    Example:
        >>> p = Pending("t", "u1")
        >>> p.hist.append(("activity", None, "low")); p.hist.append(("activity", "low", "high"))
        >>> [op[0] for op in pending_ops(p, None, 0)]
        ['srem', 'sadd', 'sadd', 'sadd', 'sadd', 'sadd']
    """

    __slots__ = ("tenant", "uid", "hash", "dels", "hist", "why", "timeline", "forget")

    def __init__(self, tenant: str, uid: str) -> None:
        self.tenant = tenant
        self.uid = uid
        self.hash: dict[str, Any] = {}
        self.dels = 0                 # _DEL values put in ``hash`` (an upper bound)
        self.hist: list[tuple[str, Any, Any]] = []
        self.why: dict[str, dict[str, Any] | None] = {}
        self.timeline: list[list[Any]] = []
        self.forget: dict[str, Any] | None = None


_SEGMENTS: dict[tuple[str, str, str], tuple[str, str, str]] = {}
"""``(tenant, tag, text value)`` -> its segment key, value token and values index key (a
tenant has a few hundred; cleared past 100,000)."""


def _segment(t: str, tag: str, v: Any) -> tuple[str, str, str]:
    """The segment key, the value token and the values index key of one value of a tag (text
    values cached).

    Example:
        >>> _segment("t", "a", "x"), _segment("t", "a", True)
        (('sa:t:seg:a=x', 'x', 'sa:t:vals:a'), ('sa:t:seg:a=true', 'true', 'sa:t:vals:a'))
    """
    if v.__class__ is not str:
        return keys.seg_key(t, tag, v), keys.value_token(v), keys.values_key(t, tag)
    k = (t, tag, v)
    try:
        return _SEGMENTS[k]
    except KeyError:
        if len(_SEGMENTS) >= 100_000:
            _SEGMENTS.clear()
        seg = _SEGMENTS[k] = (keys.seg_key(t, tag, v), v, keys.values_key(t, tag))
        return seg


def _moves(p: Pending) -> tuple[dict[str, int], dict[str, Any], dict[tuple[str, str], None]]:
    """Replay ``p.hist`` as :func:`change_ops` would write it, keeping the last operation per
    key: segment bits ``{seg key: 0/1}``, numeric tags ``{tag: value or None (removed)}``
    and the values index entries ``{(values key, token): None}`` (every new value, in order).
    A value is one segment (:func:`_members`); a new value's segment is looked up only when it
    has one or when it decides whether the old value's bit is cleared (same token)."""
    t = p.tenant
    bits: dict[str, int] = {}
    num: dict[str, Any] = {}
    vals: dict[tuple[str, str], None] = {}
    numeric = _NUMERIC_CLASS.get
    for tag, old, new in p.hist:
        new_num = numeric(new.__class__)
        if new_num is None:
            new_num = _numeric(new)
        if old is not None and old != new:
            old_num = numeric(old.__class__)
            if old_num is None:
                old_num = _numeric(old)
            if old_num:
                if not new_num:
                    num[tag] = None
            else:
                key, tok, _ = _segment(t, tag, old)
                if new is None or tok != _segment(t, tag, new)[1]:
                    bits[key] = 0
        if new is not None:
            if new_num:
                num[tag] = new
            else:
                key, tok, vk = _segment(t, tag, new)
                bits[key] = 1
                vals[(vk, tok)] = None
    return bits, num, vals


def _hash_writes(p: Pending) -> tuple[dict[str, Any], list[str]]:
    """The fields of a :class:`Pending` entry's hash to set (their values) and those to
    delete (:data:`_DEL`): without a deleted tag (``p.dels`` 0), the hash itself.

    Example:
        >>> p = Pending("t", "u1")
        >>> p.hash.update({"tag:a": "x", "score:c": 0.5})
        >>> _hash_writes(p)
        ({'tag:a': 'x', 'score:c': 0.5}, [])
        >>> p.hash["tag:a"] = _DEL; p.dels += 1
        >>> _hash_writes(p)
        ({'score:c': 0.5}, ['tag:a'])
    """
    h = p.hash
    if not p.dels:
        return h, []
    return {f: v for f, v in h.items() if v is not _DEL}, [f for f, v in h.items() if v is _DEL]


def pending_ops(p: Pending, seen: Seen | None, timeline: int) -> list[Op]:
    """The operations of one user's :class:`Pending` entry: the end state the per-call
    operations (:func:`event_ops` per event, one ``hsetmap`` per ``set_fields``,
    :func:`forget_ops`) leave, written once. A forgotten entry writes only what outlives the
    user's deletion (the values index, the tenant), clears the segments and numeric tags it
    moved (Redis holds their values of the last flush) and deletes the user.

    Example:
        >>> p = Pending("t", "u1")
        >>> p.hist += [("lead_points", None, 1), ("lead_points", 1, 2)]
        >>> p.hash["tag:lead_points"] = 2
        >>> ops = pending_ops(p, Seen(10), 0)
        >>> ops[0]   # the values' JSON made when the batch is encoded
        ('hsetmap', 'sa:t:user:u1', JsonFields({'tag:lead_points': 2}))
        >>> ops[0] == ('hsetmap', 'sa:t:user:u1', {'tag:lead_points': b'2'})
        True
        >>> ops[1]
        ('zadd', 'sa:t:num:lead_points', 'u1', 2.0)
        >>> p.forget = {"lead_points": 2}
        >>> [op[0] for op in pending_ops(p, Seen(10), 0)]
        ['sadd', 'zrem', 'zrem', 'srem', 'unid', 'delete']
    """
    t, uid = p.tenant, p.uid
    bits, num, vals = _moves(p) if p.hist else ({}, {}, {})
    ops: list[Op] = []
    if p.forget is None:
        ukey = keys.user_key(t, uid)
        put, gone = _hash_writes(p)
        if put:
            ops.append(("hsetmap", ukey, JsonFields(put)))
        if gone:
            ops.append(("hdel", ukey, *gone))
        for key, bit in bits.items():
            ops.append(("sadd" if bit else "srem", key, uid))
        for tag, v in num.items():
            ops.append(("zadd", keys.num_key(t, tag), uid, float(v)) if v is not None
                       else ("zrem", keys.num_key(t, tag), uid))
    if vals:  # the values index entries this process has not written yet
        new_vals = seen.new_in((t, "vals"), vals) if seen is not None else vals
        ops.extend(("sadd", vk, tok) for vk, tok in new_vals)
    if p.forget is not None:
        if p.hist and (seen is None or seen.add((t,))):
            ops.append(("sadd", keys.TENANTS_KEY, t))
        # Redis still holds the values of the last flush, which the deletion's tags (the
        # current ones) may not name: every segment and numeric tag moved is cleared
        ops.extend(("srem", key, uid) for key in bits)
        ops.extend(("zrem", keys.num_key(t, tag), uid) for tag in num)
        ops.extend(forget_ops(t, uid, p.forget))
        return ops
    if p.hist and (seen is None or seen.add((t, uid))):
        ops.append(("sadd", keys.users_key(t), uid))
        if seen is None or seen.add((t,)):
            ops.append(("sadd", keys.TENANTS_KEY, t))
    if p.why:  # what why_op() makes of the records (a None record: dropped)
        records, shapes = _packed(p.why.items())
        if seen is not None:  # shapes this process wrote already
            codes = seen.new_in((t, "wd"), shapes)
            if len(codes) < len(shapes):
                shapes = {c: shapes[c] for c in codes}
        ops.append(("why", ukey, t, tuple(sorted(p.why)), records, shapes))
    if p.timeline and timeline > 0:
        tl = keys.timeline_key(t, uid)
        ops.append(("lpush", tl, *[orjson.dumps(c) for c in p.timeline]))
        ops.append(("ltrim", tl, 0, timeline - 1))
    return ops


class RedisProjection:
    """The live writer of the projection: coalesces each user's calls between flushes and
    writes their net result.

    ``apply_changes``, ``set_fields`` and ``forget`` only record, per user, what changed
    (a :class:`Pending` entry: last hash values, the tag moves, last why records); every
    ``flush_ms`` the writer turns each entry into its operations (:func:`pending_ops`: one
    HSET, the segment bits' last state, one why merge per user, ...) and writes them in one
    Lua call (:mod:`~stream_app.serving.redis_batch`). A user whose tags change several times
    within a flush costs one write of the end state. More than ``max_held`` held changes
    build the operations at once (and wake the writer). Operations wait in ``pending``
    (bounded by ``max_pending``, oldest dropped) while Redis is down.

    Redis ends as the per-call writer (:class:`PerCallProjection`) leaves it, but for what
    nothing reads: integer ids (a user created and forgotten within a flush takes none),
    the bits of values a user held only between two flushes (cleared either way; the
    per-call writer may leave an all-zero bitmap key), and why shapes of records replaced
    within a flush (never stored, so never written to ``sa:{t}:wd``).
    """

    def __init__(self, url: str, flush_ms: int = 100, max_pending: int = 1_000_000,
                 metrics: Any = None, lru_users: int = 100_000, why: str | None = None,
                 timeline: int | None = None, max_held: int = 50_000) -> None:
        import redis.asyncio as aioredis  # noqa: PLC0415

        self.why_mode = why if why is not None else _settings_value("redis_why", "compact")
        self.timeline = timeline if timeline is not None else _settings_value(
            "redis_timeline", keys.TIMELINE_MAX)

        self.client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._batch = self.client.register_script(BATCH_SCRIPT)
        self.rejected = 0
        self.flush_s = flush_ms / 1000
        self.max_pending = max_pending
        self.pending: deque[Op] = deque()
        self.dropped = 0
        self.errors = 0
        self.written = 0
        self._task: asyncio.Task | None = None
        self._metrics = metrics
        self.seen = Seen(lru_users)   # (tenant, uid), (tenant,), (tenant, vals key, token)
        self._lru_users = lru_users
        self.suspended = False        # suspend_caches(): nothing remembered (all written)
        self._paused_until = 0.0      # pause_writes(): monotonic time writing starts again
        self._fields: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._fields_max = lru_users
        self.skipped_fields = 0
        self.max_held = max_held
        self.held = 0                 # changes and field sets held in ``_entries``
        self._entries: list[Pending] = []           # in order of first call
        self._live: dict[tuple[str, str], Pending] = {}   # open entry of each user
        self._wake: asyncio.Event | None = None
        #: epoch ms of the first failed write of the current outage (None: writing)
        self.failing_since_ms: int | None = None
        #: ``written`` once the outage's queue is written (set by the first write after it)
        self._outage_until: int | None = None
        #: called after each failed write and once when an outage's queue is written
        #: (the worker keeps a record that survives a kill, ``app/unwritten.OutageMarker``)
        self.on_failing: Callable[[RedisProjection], None] | None = None

    def _entry(self, tenant: str, uid: str) -> Pending:
        p = self._live[(tenant, uid)] = Pending(tenant, uid)
        self._entries.append(p)
        return p

    def apply_changes(self, changes: list[dict[str, Any]],
                      why: dict[str, dict[str, Any]] | None = None) -> None:
        """Record one event's tag changes (``why``: the event's why records by tag; None
        leaves the stored ones as they are)."""
        if not changes:
            return
        if self.why_mode == "off":
            why = None
        tl = self.timeline > 0
        live = self._live
        key: tuple[str, str] | None = None
        p: Pending | None = None
        last: dict[Pending, dict[str, Any]] = {}
        for ch in changes:
            k = (ch["tenant"], ch["user_id"])
            if k != key:
                key = k
                p = live.get(k) or self._entry(*k)
                by_tag = last.setdefault(p, {})
            tag, new = ch["tag_id"], ch.get("new")
            p.hist.append((tag, ch.get("old"), new))
            if new is None:
                p.hash[f"tag:{tag}"] = _DEL
                p.dels += 1
            else:
                p.hash[f"tag:{tag}"] = new
            by_tag[tag] = new
            if tl:
                p.timeline.append(keys.compact_change(ch))
        if why is not None:
            for p, by_tag in last.items():
                pw = p.why
                for tag, new in by_tag.items():  # a changed tag's record moves to the end
                    pw.pop(tag, None)
                    pw[tag] = why.get(tag) if new is not None else None
        self.held += len(changes)
        if self.held > self.max_held:  # _hold()'s test inline: one call less per event
            self._hold(0)

    def set_fields(self, tenant: str, uid: str, fields: dict[str, Any]) -> None:
        """Set plain profile fields (scores, layers, counts) on the user's hash; only those
        whose value differs from what this process last wrote for the user (bounded LRU)."""
        changed = self._changed_fields(tenant, uid, fields)
        if changed:
            (self._live.get((tenant, uid)) or self._entry(tenant, uid)).hash.update(changed)
            self._hold(1)

    def _changed_fields(self, tenant: str, uid: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The fields whose value differs from what was last set for the user (remembered
        now, in a bounded LRU of users)."""
        if not fields:
            return {}
        k = (tenant, uid)
        last = self._fields.get(k)
        if last is None:
            last = self._fields[k] = {}
            if len(self._fields) > self._fields_max:
                self._fields.popitem(last=False)
        else:
            self._fields.move_to_end(k)
            if last == fields:
                # the common case (~60% of the scorer's calls): nothing moved, one C-level
                # comparison instead of one per field. It differs from the loop below only
                # for a value unequal to itself (NaN) passed again as the very same object
                # (== takes identity as equality): unchanged here, rewritten by the loop.
                self.skipped_fields += len(fields)
                return {}
        changed = {f: v for f, v in fields.items() if f not in last or last[f] != v}
        self.skipped_fields += len(fields) - len(changed)
        last.update(changed)
        return changed

    def reset_caches(self) -> None:
        """Forget what was written (call when partitions are reassigned: another worker may
        have written these users meanwhile). Suspended caches stay suspended."""
        size = 0 if self.suspended else self._lru_users
        self.seen = Seen(size)
        self._fields.clear()
        self._fields_max = size

    def suspend_caches(self) -> None:
        """Remember nothing of what is written until :meth:`resume_caches`: every shared key
        (tenant set, value index, why shapes) and every field is written whole, for when
        Redis may lose what this process wrote (``redis-rebuild --live`` deletes the
        projection while the workers run).

        Example:
            >>> p = RedisProjection("redis://127.0.0.1:1/0", why="off", timeline=0)
            >>> p.suspend_caches(); p.reset_caches()         # a rebalance keeps it suspended
            >>> p.set_fields("t", "u1", {"score:x": 1}); p.set_fields("t", "u1", {"score:x": 1})
            >>> p.held                                          # both written
            2
            >>> p.resume_caches(); p.set_fields("t", "u1", {"score:x": 1})
            >>> p.set_fields("t", "u1", {"score:x": 1}); p.held   # the second is skipped
            3
        """
        self.suspended = True
        self.reset_caches()

    def resume_caches(self) -> None:
        """Remember what is written again (from nothing)."""
        self.suspended = False
        self.reset_caches()

    def pause_writes(self, seconds: float) -> None:
        """Write nothing to Redis for ``seconds`` or until :meth:`resume_writes`: what is
        written meanwhile waits in ``pending``, in order (``redis-rebuild --live`` deletes
        the projection meanwhile: a write interleaved with its deletion could keep an
        integer id whose mapping the deletion removed).

        Example:
            >>> p = RedisProjection("redis://127.0.0.1:1/0")
            >>> p.pause_writes(60); p.paused
            True
            >>> p.resume_writes(); p.paused
            False
        """
        self._paused_until = time.monotonic() + seconds

    def resume_writes(self) -> None:
        """Write again (at once)."""
        self._paused_until = 0.0
        if self._wake is not None:
            self._wake.set()

    @property
    def paused(self) -> bool:
        """True while :meth:`pause_writes` holds the writes."""
        if self._paused_until and time.monotonic() >= self._paused_until:
            self._paused_until = 0.0
        return self._paused_until > 0

    def forget(self, tenant: str, uid: str, tags: dict[str, Any]) -> None:
        """Record the removal of every trace of a user (and forget what was cached of it):
        the user's held writes are dropped; later calls open a new entry."""
        self.seen.discard((tenant, uid))
        self._fields.pop((tenant, uid), None)
        p = self._live.pop((tenant, uid), None)
        if p is None:
            p = self._entry(tenant, uid)
            del self._live[(tenant, uid)]
        p.forget = dict(tags)
        self._hold(1)

    def reproject(self, ops: list[Op], tenant: str, uid: str) -> None:
        """Write a user's whole projection (``ops``: :func:`~stream_app.serving.full_state.
        state_ops` of its state) after what is held for it, and forget what was cached of
        it: the user's next score fields are written whole."""
        self.materialize()     # the user's held writes go first: they are older
        self.seen.discard((tenant, uid))
        self._fields.pop((tenant, uid), None)
        self._push(ops)

    def materialize(self) -> int:
        """Build the operations of every held entry into ``pending`` (the flush does this
        first); returns how many were built."""
        if not self._entries:
            return 0
        entries, self._entries, self._live, self.held = self._entries, [], {}, 0
        ops: list[Op] = []
        tl = self.timeline
        for p in entries:
            ops.extend(pending_ops(p, self.seen, tl))
        self._push(ops)
        return len(ops)

    def _hold(self, n: int) -> None:
        """``n`` more changes or field sets held; past ``max_held`` build the operations now
        and wake the writer."""
        self.held += n
        if self.held > self.max_held:
            self.materialize()
            if self._wake is not None:
                self._wake.set()

    def _push(self, ops: list[Op]) -> None:
        self.pending.extend(ops)
        over = len(self.pending) - self.max_pending
        if over > 0:
            for _ in range(over):
                self.pending.popleft()
            self.dropped += over
            log.warning("Redis projection buffer full: dropped %d ops "
                        "(run redis-rebuild --live)", over)

    async def flush(self, max_ops: int = 5000) -> int:
        """Build the held entries' operations, then write up to ``max_ops`` pending
        operations; keep them queued if Redis fails (and while writes are paused)."""
        self.materialize()
        if not self.pending or self.paused:
            return 0
        batch = list(itertools.islice(self.pending, max_ops))
        queued = len(self.pending)
        t0 = time.perf_counter()
        try:
            results = await self._write_batch(batch)
        except Exception as exc:  # noqa: BLE001 - Redis down: retry later, keep the ops
            self.errors += 1
            if self._metrics:
                self._metrics.redis_error("pipeline")
            log.warning("Redis write failed (%s); %d ops kept for retry", exc, len(self.pending))
            if self.failing_since_ms is None:
                self.failing_since_ms = int(time.time() * 1000)
            self._outage_until = None     # measured again at the next write that succeeds
            if self.on_failing is not None:
                self.on_failing(self)
            return 0
        failed = sum(int(f) for f, _ in results)
        if failed:
            # rejected by Redis (e.g. a key of another type): counted and skipped, not retried
            self.rejected += failed
            if self._metrics:
                self._metrics.redis_error("op")
            first = next(x for f, x in results if int(f))
            log.warning("Redis rejected %s projection ops (first: %s)", failed, first)
        if self._metrics:
            self._metrics.redis_latency(time.perf_counter() - t0)
        if len(batch) == len(self.pending):  # the usual case: nothing was queued meanwhile
            self.pending.clear()
        else:
            for _ in batch:
                self.pending.popleft()
        if self.failing_since_ms is not None and self._outage_until is None:
            self._outage_until = self.written + queued   # the queue the outage left
        self.written += len(batch)
        if self.failing_since_ms is not None and (
                self.written >= self._outage_until or not self.pending):
            # the outage's queue is written (what live traffic queued meanwhile is not the
            # outage's: QA36 F2, the marker stayed while events kept arriving)
            self.failing_since_ms = self._outage_until = None
            if self.on_failing is not None:
                self.on_failing(self)
        return len(batch)

    async def _write_batch(self, batch: list[Op]) -> list[tuple[Any, Any]]:
        """Write ``batch`` in one Lua call (:func:`~stream_app.serving.redis_batch.encode_batch`:
        why records after the rest, except across a user's deletion, as when they were a
        second call); ``[(failed, first error)]``. No ``SCRIPT EXISTS`` round trip: redis-py's
        script object loads the script when Redis answers ``NOSCRIPT`` (nothing ran) and
        calls it again."""
        return [await self._batch(args=[encode_batch(batch, num_edges)])]

    async def check_config(self) -> int | None:
        """Warn when Redis would store the user hashes as hashtables: the packed why field
        is longer than Redis's default ``hash-max-listpack-value`` (64). Returns the
        setting (None when ``CONFIG GET`` is not allowed)."""
        try:
            got = await self.client.config_get("hash-max-*-value")
            limit = max(int(v) for v in got.values())
        except Exception:  # noqa: BLE001 - managed Redis without CONFIG: nothing to check
            return None
        if self.why_mode != "off" and limit < MIN_HASH_VALUE:
            log.warning("Redis hash-max-listpack-value is %d: user hashes with packed why "
                        "records become hashtables (~1 KB more per user); set it to %d "
                        "(deploy/redis/redis.conf)", limit, MIN_HASH_VALUE)
        return limit

    async def run(self) -> None:
        """Flush forever (a background task)."""
        await self.check_config()
        self._wake = asyncio.Event()
        while True:
            self._wake.clear()
            n = await self.flush()
            if self._metrics:
                self._metrics.redis_buffered(len(self.pending) + self.held)
            if n < 5000:
                wait = self.flush_s if self.errors == 0 or n else min(2.0, self.flush_s * 10)
                # woken early when the held entries outgrow ``max_held``
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def drain(self, timeout: float = 10.0) -> None:
        """Flush until nothing is pending or ``timeout`` passes (a pause ends: the worker
        stops)."""
        self._paused_until = 0.0
        deadline = time.monotonic() + timeout
        while (self.pending or self._entries) and time.monotonic() < deadline:
            if not await self.flush():
                await asyncio.sleep(0.2)


class PerCallProjection(RedisProjection):
    """The writer before coalescing: every call becomes its operations at once
    (:func:`event_ops` per event, one ``hsetmap`` per ``set_fields``, :func:`forget_ops`).
    Kept as the reference the coalescing :class:`RedisProjection` is tested and measured
    against (``tests/unit/serving/test_projection_coalesce.py``, ``bench/redis_memory.py``).

    Example:
        >>> proj = PerCallProjection("redis://127.0.0.1:1/0", why="compact", timeline=0)
        >>> proj.set_fields("t", "u1", {"score:a": 0.5})
        >>> list(proj.pending)
        [('hsetmap', 'sa:t:user:u1', {'score:a': b'0.5'})]
    """

    def apply_changes(self, changes: list[dict[str, Any]],
                      why: dict[str, dict[str, Any]] | None = None) -> None:
        if changes:
            if self.why_mode == "off":
                why = None
            self._push(event_ops(changes, why, self.seen, timeline=self.timeline))

    def set_fields(self, tenant: str, uid: str, fields: dict[str, Any]) -> None:
        changed = self._changed_fields(tenant, uid, fields)
        if changed:
            self._push([("hsetmap", keys.user_key(tenant, uid),
                         {f: orjson.dumps(v) for f, v in changed.items()})])

    def forget(self, tenant: str, uid: str, tags: dict[str, Any]) -> None:
        self.seen.discard((tenant, uid))
        self._fields.pop((tenant, uid), None)
        self._push(forget_ops(tenant, uid, tags))
