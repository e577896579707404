"""Write a batch of projection operations as ONE Lua call instead of a pipeline of commands.

The live projection queues a few operations per tag change (an HSET of the user's tags, a
segment bit per moved value through the id-assigning script, ...). Sent as a redis-py
pipeline, each one is packed in Python (``pack_command``) and each reply parsed in Python:
in the worker that cost ~30% of its CPU per event (``python -m bench.ablation --variants
full,no_redis``: 1,966 against 1,323 µs/event). Here the whole batch is one orjson-encoded
array handed to :data:`BATCH_SCRIPT`, which replays it inside Redis:

* ``["b", bitmap, user_hash, uid, bit, prefix]``: the user's bit (integer id assigned on first
  use, exactly as :data:`~stream_app.serving.projection.BIT_SCRIPT`);
* ``["B", user_hash, uid, prefix, bitmap, bit, bitmap, bit, ...]``: consecutive ``b`` entries
  of one user in one entry (what :func:`encode_batch` sends: a user's segment moves follow
  each other), replayed in order, each failing alone;
* ``["n", zset, user_hash, uid, value, prefix, tag, edges]``: a numeric tag's move
  (:data:`~stream_app.serving.projection.NUM_SCRIPT`);
* ``["u", user_hash, uid, prefix]``: drop the id mapping (``UNID_SCRIPT``);
* ``["w", user_hash, shapes_hash, field, drop_tags, records, code_len, code, shape, ...]``: a
  ``"why"`` operation: the shapes written with ``HSETNX``, then the packed why field merged
  (:data:`WHY_FN`, as :data:`~stream_app.serving.projection.WHY_SCRIPT`);
* ``["c", COMMAND, arg, ...]``: any other command, as is.

The end state is the same as the pipeline's (tests compare every key). One difference: an
operation Redis rejects (e.g. a wrong key type) is counted and skipped, not retried forever.
All arguments travel as strings (but the why code length). The script names keys it was not
given in ``KEYS``: fine for one Redis server (what stream-app uses), not for Redis Cluster.

:func:`encode_batch` keeps the order in which the writer replayed a batch when the why
records were a second script's call: a batch's why entries run after its other entries, or
just before the next deletion (a forgotten user's why must not come back). Only the user
hash's field order could tell the difference, and it stays the same.

Example (pure part):
    >>> encode_op(("hsetmap", "sa:t:user:u1", {"tag:a": b'"x"'}))
    [['c', 'HSET', 'sa:t:user:u1', 'tag:a', '"x"']]
    >>> encode_op(("sadd", "sa:t:seg:a=x", "u1"))
    [['b', 'sa:t:seg:a=x', 'sa:t:user:u1', 'u1', '1', 'sa:t:']]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import orjson

from stream_app.serving import keys

_ID_FN = """
local function user_id(ukey, uid, pre, create)
  local id = redis.call('HGET', ukey, '_id')
  if not id and create then
    id = redis.call('INCR', pre .. 'nextid') - 1
    redis.call('HSET', ukey, '_id', id)
    redis.call('HSET', pre .. 'ids:' .. math.floor(id / 128), id % 128, uid)
  end
  return id
end
"""

WHY_FN = """
local function merge_why(ukey, dk, field, drop_text, new, codelen)
  local cur = redis.call('HGET', ukey, field)
  local drop = {}
  for t in string.gmatch(drop_text, '[^ ]+') do drop[t] = true end
  local keep = {}
  if cur and #cur > 2 then
    local recs, codes = {}, {}
    for rec in string.gmatch(string.sub(cur, 2, -2), '[^|]+') do
      recs[#recs + 1] = rec
      codes[#codes + 1] = string.sub(rec, 1, codelen)
    end
    if #recs > 0 then
      local shapes = redis.call('HMGET', dk, unpack(codes))
      for i, rec in ipairs(recs) do
        local tag = shapes[i] and string.match(shapes[i], '^%["([^"]*)"')
        if tag and not drop[tag] then keep[#keep + 1] = rec end
      end
    end
  end
  if new ~= '' then keep[#keep + 1] = new end
  if #keep == 0 then
    redis.call('HDEL', ukey, field)
  else
    redis.call('HSET', ukey, field, '"' .. table.concat(keep, '|') .. '"')
  end
  return #keep
end
"""
"""Lua ``merge_why(user hash, shapes hash, field, drop tags, new records, code length)``:
rewrites the packed why field (``keys.WHY_FIELD``): a kept record is one of another tag (its
tag is the shape's first element; a record of an unknown shape is dropped), the new records
(``|``-joined, may be empty) go last."""

REPLAY = """
local ops = cjson.decode(ARGV[1])
local failed, first = 0, ''
local function fail(err)
  failed = failed + 1
  if first == '' then first = tostring(err) end
end
for i = 1, #ops do
  local ok, err = pcall(run, ops[i], fail)
  if not ok then fail(err) end
end
return {failed, first}
"""
"""Lua ending a batch script: ``run`` (defined before it) applied to every operation of the
JSON array ARGV[1]; a failed operation is counted and skipped (``run(op, fail)`` may also
report failures of the parts of an entry to ``fail``). Returns ``{failed, first error}``."""

BATCH_SCRIPT = _ID_FN + WHY_FN + """
local edges_of = {}
local function edges(pre, tag, default)
  local ek = pre .. 'nbe:' .. tag
  local cached = edges_of[ek]
  if cached then return cached end
  local e = redis.call('GET', ek)
  if not e then e = default; redis.call('SET', ek, e) end
  local out = {}
  for x in string.gmatch(e, '[^,]+') do out[#out + 1] = tonumber(x) end
  edges_of[ek] = out
  return out
end
local function bucket(es, v)
  local b = 0
  for j = 1, #es do if v >= es[j] then b = j end end
  return b
end
local function set_bit(key, ukey, uid, bit, pre)
  local id = user_id(ukey, uid, pre, bit ~= '0')
  if id then redis.call('SETBIT', key, id, tonumber(bit)) end
end
local function run(op, fail)
  local kind = op[1]
  if kind == 'c' then
    local r = redis.pcall(unpack(op, 2))
    if type(r) == 'table' and r.err then error(r.err) end
  elseif kind == 'B' then
    for j = 5, #op, 2 do
      local ok, err = pcall(set_bit, op[j], op[2], op[3], op[j + 1], op[4])
      if not ok then fail(err) end
    end
  elseif kind == 'b' then
    set_bit(op[2], op[3], op[4], op[5], op[6])
  elseif kind == 'n' then
    local id = user_id(op[3], op[4], op[6], op[5] ~= '')
    if id then
      local es = edges(op[6], op[7], op[8])
      local base = op[6] .. 'nb:' .. op[7] .. ':'
      local old = redis.call('ZSCORE', op[2], id)
      if old then redis.call('SETBIT', base .. bucket(es, tonumber(old)), id, 0) end
      if op[5] == '' then
        redis.call('ZREM', op[2], id)
      else
        redis.call('ZADD', op[2], op[5], id)
        redis.call('SETBIT', base .. bucket(es, tonumber(op[5])), id, 1)
      end
    end
  elseif kind == 'u' then
    local id = redis.call('HGET', op[2], '_id')
    if id then
      local k = op[4] .. 'ids:' .. math.floor(id / 128)
      if redis.call('HGET', k, id % 128) == op[3] then redis.call('HDEL', k, id % 128) end
      redis.call('HDEL', op[2], '_id')
    end
  elseif kind == 'w' then
    for j = 8, #op, 2 do redis.call('HSETNX', op[3], op[j], op[j + 1]) end
    merge_why(op[2], op[3], op[4], op[5], op[6], tonumber(op[7]))
  else
    error('unknown projection op ' .. tostring(kind))
  end
end
""" + REPLAY
"""ARGV[1]: a JSON array of operations (see the module docstring). Returns ``{failed, first
error}``; a failed operation does not stop the others."""

#: redis-py method names whose Redis command is spelled differently
_COMMANDS = {"delete": "DEL", "hsetmap": "HSET"}


def _s(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _is_bitmap(key: str) -> bool:
    return ":seg:" in key or key.endswith(":users")


def _tenant_prefix(key: str) -> str:
    """``sa:t1:seg:a=b`` -> ``sa:t1:``."""
    return key[:key.index(":", len(keys.PREFIX) + 1) + 1]


_BITMAP_PREFIX: dict[str, str | None] = {}
"""Key -> its tenant prefix if it is a bitmap key, else None (segment keys repeat a lot;
cleared past 100,000 keys)."""


def _bitmap_prefix(key: str) -> str | None:
    try:
        return _BITMAP_PREFIX[key]
    except KeyError:
        if len(_BITMAP_PREFIX) >= 100_000:
            _BITMAP_PREFIX.clear()
        pre = _BITMAP_PREFIX[key] = _tenant_prefix(key) if _is_bitmap(key) else None
        return pre


_NUM_PARTS: dict[str, tuple[str, str]] = {}
"""Numeric tag key -> its tenant prefix and tag (cleared past 100,000 keys)."""


def _num_parts(key: str) -> tuple[str, str]:
    """``sa:t1:num:lead_points`` -> ``("sa:t1:", "lead_points")``."""
    try:
        return _NUM_PARTS[key]
    except KeyError:
        if len(_NUM_PARTS) >= 100_000:
            _NUM_PARTS.clear()
        pre = _tenant_prefix(key)
        parts = _NUM_PARTS[key] = (pre, key[len(pre) + len("num:"):])
        return parts


class JsonFields(Mapping[Any, bytes]):
    """The fields of an ``hsetmap`` operation given by their values: field -> the JSON
    (``orjson.dumps``) of the value, computed when read. The live writer's hash write, so
    that a flush makes each value's JSON text once, into its batch entry (a dict of JSON
    bytes first cost ~0.5 µs per event more in ``bench.projection_cost``). The values are
    read when the batch is encoded (again if Redis failed and the operations wait): as with
    the writer's held entries between two flushes, a value handed to the writer must not be
    changed in place after the call (the engine's change records and the scorer's fields
    never are).

    Example:
        >>> f = JsonFields({"tag:a": "x", "score:c": 0.5})
        >>> dict(f), f == {"tag:a": b'"x"', "score:c": b"0.5"}
        ({'tag:a': b'"x"', 'score:c': b'0.5'}, True)
        >>> _hset_entry("k", f) == _hset_entry("k", dict(f))
        True
    """

    __slots__ = ("raw",)

    def __init__(self, raw: dict[Any, Any]) -> None:
        self.raw = raw

    def __getitem__(self, field: Any) -> bytes:
        return orjson.dumps(self.raw[field])

    def __iter__(self) -> Iterator[Any]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __repr__(self) -> str:
        return f"JsonFields({self.raw!r})"


def _hset_entry(key: str, fields: Mapping[Any, Any]) -> list[str]:
    """The batch entry of an ``hsetmap`` (fields are text, values JSON bytes from
    ``orjson.dumps``, or a :class:`JsonFields`).

    >>> _hset_entry("sa:t:user:u1", {"tag:a": b'"x"', "n": 2})
    ['c', 'HSET', 'sa:t:user:u1', 'tag:a', '"x"', 'n', '2']
    """
    entry = ["c", "HSET", key]
    add = entry.append
    if fields.__class__ is JsonFields:
        dumps = orjson.dumps
        for f, v in fields.raw.items():
            add(f if f.__class__ is str else _s(f))
            add(dumps(v).decode())
        return entry
    for f, v in fields.items():
        add(f if f.__class__ is str else _s(f))
        add(v.decode() if v.__class__ is bytes else _s(v))
    return entry


def encode_op(op: tuple[Any, ...], edges: Callable[[], str] = lambda: "") -> list[list[str]]:
    """The batch entries of one projection operation (same meaning as the pipeline's)."""
    name = op[0]
    if name == "sadd" or name == "srem":  # noqa: PLR1714 - cheaper than a tuple test here
        pre = _bitmap_prefix(op[1])
        if pre is not None:
            bit = "1" if name == "sadd" else "0"
            return [["b", op[1], f"{pre}user:{uid}", uid if isinstance(uid, str) else _s(uid),
                     bit, pre] for uid in op[2:]]
    args = op[1:]
    if name in ("zadd", "zrem") and ":num:" in args[0]:
        pre, tag = _num_parts(args[0])
        value = repr(float(args[2])) if name == "zadd" else ""
        return [["n", args[0], f"{pre}user:{args[1]}", _s(args[1]), value, pre, tag, edges()]]
    if name == "unid":
        pre = f"{keys.PREFIX}:{args[0]}:"
        return [["u", f"{pre}user:{args[1]}", _s(args[1]), pre]]
    if name == "hsetmap":
        return [_hset_entry(args[0], args[1])]
    if name == "why":
        return [_why_entry(*args)]
    if name == "zadd":
        return [["c", "ZADD", args[0], _s(args[2]), _s(args[1])]]
    return [["c", _COMMANDS.get(name, name.upper()), *[_s(a) for a in args]]]


def _why_entry(ukey: str, tenant: str, drop: tuple[str, ...], records: list[bytes],
               shapes: dict[str, bytes]) -> list[Any]:
    """The ``"w"`` entry of a ``("why", user key, tenant, tags, records, {code: shape})``
    operation (``projection.why_op``)."""
    entry: list[Any] = ["w", ukey, keys.why_dict_key(tenant), keys.WHY_FIELD, " ".join(drop),
                        b"|".join(records).decode(), keys.WHY_CODE_LEN]
    for kv in shapes.items():
        entry += [x.decode() if isinstance(x, bytes) else x for x in kv]
    return entry


def encode_batch(ops: Iterable[tuple[Any, ...]], edges: Callable[[], str] = lambda: "") -> bytes:
    """One JSON array of every operation's entries (ARGV[1] of :data:`BATCH_SCRIPT`): the
    segment bits of one user that follow each other are one ``B`` entry (a why operation
    between them does not part them); why entries go after the others, or just before the
    next deletion (see the module docstring).

    Example:
        >>> encode_batch([("sadd", "sa:t:seg:a=x", "u1"), ("srem", "sa:t:seg:a=y", "u1"),
        ...               ("sadd", "sa:t:users", "u2")])
        b'[["B","sa:t:user:u1","u1","sa:t:","sa:t:seg:a=x","1","sa:t:seg:a=y","0"],\
["B","sa:t:user:u2","u2","sa:t:","sa:t:users","1"]]'
        >>> why = ("why", "sa:t:user:u1", "t", ("a",), [b"Abcd1"], {})
        >>> [e[0] for e in orjson.loads(encode_batch([why, ("hsetmap", "sa:t:user:u1",
        ...     {"f": b"1"}), ("delete", "sa:t:user:u1"), why]))]
        ['c', 'w', 'c', 'w']
    """
    out: list[list[Any]] = []
    why: list[list[Any]] = []  # held back until the next deletion or the end
    group: list[str] = []  # the last entry when it is a "B" one
    edges = functools.cache(edges)   # the bucket edges setting, read once per batch
    for op in ops:
        name = op[0]
        if (name == "sadd" or name == "srem") and len(op) == 3:  # noqa: PLR1714
            pre = _bitmap_prefix(op[1])
            if pre is not None:
                uid = op[2] if isinstance(op[2], str) else _s(op[2])
                if not group or group[2] != uid or group[3] != pre:
                    group = ["B", f"{pre}user:{uid}", uid, pre]
                    out.append(group)
                group += (op[1], "1" if name == "sadd" else "0")
                continue
        elif name == "hsetmap":  # one per user and flush
            out.append(_hset_entry(op[1], op[2]))
            group = []
            continue
        elif name == "why":
            why.append(_why_entry(*op[1:]))
            continue
        elif name == "delete" and why:  # a forgotten user's why must not come back
            out += why
            why = []
        group = []
        out.extend(encode_op(op, edges))
    out += why
    return orjson.dumps(out)
