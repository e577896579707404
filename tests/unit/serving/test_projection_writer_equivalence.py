"""The live writer's faster paths (sessions 9 and 10) against reference copies of the code
before: the segment moves of a user's changes (``_moves``), the changed score fields
(``_changed_fields``) and the sets of ``new_in``, and the
flush as ONE Lua call (why merges
inside the batch script) against the two calls it replaced (the batch script, then a why
script), down to the order of the user hash's fields on a real redis-server."""

from __future__ import annotations

import enum
import math
import random
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stream_app.serving import keys
from stream_app.serving.projection import (
    Pending,
    RedisProjection,
    Seen,
    _moves,
    _numeric,
    num_edges,
)
from stream_app.serving.redis_batch import BATCH_SCRIPT, REPLAY, WHY_FN, encode_batch
from tests.unit.serving import fixtures
from tests.unit.serving.conftest import fresh_client
from tests.unit.serving.test_redis_batch import _ops, _written_by_projection

run = fixtures.run

# -- reference copies of the code before session 9 ------------------------------------------


def _reference_moves(p: Pending) -> tuple[dict, dict, dict]:
    """``projection._moves`` before: values index entries keyed ``(tag, token)``."""
    t = p.tenant
    bits: dict[str, int] = {}
    num: dict[str, Any] = {}
    vals: dict[tuple[str, str], None] = {}
    for tag, old, new in p.hist:
        new_num = _numeric(new)
        if old is not None and old != new:
            if _numeric(old):
                if not new_num:
                    num[tag] = None
            else:
                keep = {keys.value_token(new)} if new is not None else ()
                if keys.value_token(old) not in keep:
                    bits[keys.seg_key(t, tag, old)] = 0
        if new is not None:
            if new_num:
                num[tag] = new
            else:
                bits[keys.seg_key(t, tag, new)] = 1
                vals[(tag, keys.value_token(new))] = None
    return bits, num, vals


def _reference_changed(last: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """``_changed_fields``'s comparison before its fast path."""
    return {f: v for f, v in fields.items() if f not in last or last[f] != v}


_REFERENCE_WHY_SCRIPT = WHY_FN + """
local function run(op)
  for j = 7, #op, 2 do redis.call('HSETNX', op[2], op[j], op[j + 1]) end
  merge_why(op[1], op[2], op[3], op[4], op[5], tonumber(op[6]))
end
""" + REPLAY
"""The why script of the two-call writer (``WHY_BATCH_SCRIPT``)."""


def _reference_encode_why(ops: list[tuple]) -> bytes:
    """``projection.encode_why`` before: the why script's argument."""
    return orjson.dumps([[ukey, keys.why_dict_key(tenant), keys.WHY_FIELD, " ".join(drop),
                          b"|".join(records).decode(), keys.WHY_CODE_LEN,
                          *[x.decode() if isinstance(x, bytes) else x
                            for kv in shapes.items() for x in kv]]
                         for _, ukey, tenant, drop, records, shapes in ops])


def _reference_calls(batch: list[tuple], edges: Any = lambda: "") -> list[tuple[str, bytes]]:
    """``_write_batch`` before: segments ending at a deletion, each the batch script's call
    (``"batch"``) then the why script's (``"why"``), with their arguments."""
    calls: list[tuple[str, bytes]] = []
    other: list[tuple] = []
    why: list[tuple] = []

    def close() -> None:
        if other:
            calls.append(("batch", encode_batch(other, edges)))
            other.clear()
        if why:
            calls.append(("why", _reference_encode_why(why)))
            why.clear()

    for op in batch:
        if op[0] == "why":
            why.append(op)
            continue
        if op[0] == "delete" and why:
            close()
        other.append(op)
    close()
    return calls


# -- _moves -----------------------------------------------------------------------------------

class _Level(enum.IntEnum):
    ONE = 1


class _Text(str):
    pass


_VALUES = st.sampled_from(["1", 1, 1.0, 2.5, True, False, "true", "x", "y", "", None,
                           ["a"], ["a", "b"], 0, -0.0, _Level.ONE, _Text("x")])
"""Tag values, with subclasses of the classes ``_moves`` looks up by class (session 10)."""


@settings(max_examples=300, deadline=None)
@given(hist=st.lists(st.tuples(st.sampled_from(["a", "b"]), _VALUES, _VALUES), max_size=8))
@example(hist=[("a", "1", 1)])             # text -> number of the same token: the bit stays
@example(hist=[("a", "x", 2.5), ("a", 2.5, "y"), ("a", "y", None)])
def test_property_moves_are_the_reference_moves(hist):
    """Same bits, numeric moves and values entries (in order) for any changes, numeric <->
    text moves and values of the same token ("1" and 1, True and "true") included."""
    p = Pending("t", "u1")
    p.hist.extend(hist)
    bits, num, vals = _moves(p)
    want_bits, want_num, want_vals = _reference_moves(p)
    assert list(bits.items()) == list(want_bits.items())
    assert list(num.items()) == list(want_num.items())
    assert list(vals) == [(keys.values_key("t", tag), tok) for tag, tok in want_vals]


# -- set_fields --------------------------------------------------------------------------------

_FIELD_VALUES = st.sampled_from([0.1, 0.5, 1, 1.0, True, None, "low", "high", "nan"])


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.dictionaries(st.sampled_from(["score:a", "layer:a", "score:b"]),
                                      _FIELD_VALUES, max_size=3), max_size=10))
def test_property_changed_fields_are_the_reference_ones(steps):
    """For any sequence of ``set_fields`` of one user (NaN as a new object each call, as
    ``round()`` makes it): the same fields held for the flush, in the same order, and the
    same count of skipped fields."""
    proj = RedisProjection("redis://127.0.0.1:1/0", why="compact", timeline=0)
    last: dict[str, Any] = {}
    skipped = 0
    for step in steps:
        fields = {f: float("nan") if v == "nan" else v for f, v in step.items()}
        want = _reference_changed(last, fields)
        skipped += len(fields) - len(want)
        last.update(want)
        got = proj._changed_fields("t", "u1", fields)
        assert list(got.items()) == list(want.items()) or _same_with_nan(got, want)
        assert proj.skipped_fields == skipped


def _same_with_nan(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return list(a) == list(b) and all(
        x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a.values(), b.values(), strict=True))


# -- Seen.new_in (session 10) -------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(calls=st.lists(st.tuples(st.sampled_from(["g", "h"]),
                                st.lists(st.sampled_from("abcdef"), unique=True, max_size=4)),
                      max_size=30),
       size=st.integers(0, 8))
def test_property_new_in_never_skips_a_key_not_returned_before(calls, size):
    """``new_in`` (the why shapes and values index entries ``pending_ops`` writes) returns
    its keys in order, leaves out only keys it returned before for the same group (so they
    were written), holds at most ``size`` keys; with room for every key it is exactly the
    LRU's ``add`` of each key, which it replaced."""
    s, big, lru = Seen(size), Seen(10_000), Seen(10_000)
    returned: set[tuple[str, str]] = set()
    for group, ks in calls:
        got = s.new_in(group, ks)
        assert got == [k for k in ks if k in got]
        assert all((group, k) in returned for k in ks if k not in got)
        returned |= {(group, k) for k in got}
        assert sum(map(len, s._groups.values())) <= size
        assert big.new_in(group, ks) == [k for k in ks if lru.add((group, k))]


# -- one Lua call per flush ----------------------------------------------------------------


def _flush_ops(seed: int) -> list[tuple]:
    """Random merged events with why records, score fields and deletions (and the why
    operations of users created again after their deletion)."""
    ops = _ops(seed)
    assert {"why", "delete", "hsetmap", "sadd", "zadd"} <= {op[0] for op in ops}
    return ops


def test_one_call_replays_what_the_two_calls_did_in_the_same_order():
    """The single call's entries are the two-call writer's, call after call (the why
    entries tagged ``w``): why merges after the rest, except across a deletion."""
    rnd = random.Random(3)
    for seed in range(1, 6):
        ops = _flush_ops(seed)
        for _ in range(5):
            start = rnd.randrange(len(ops))
            batch = ops[start:start + rnd.randint(1, 300)]
            want = []
            for kind, payload in _reference_calls(batch):
                want += [["w", *e] if kind == "why" else e for e in orjson.loads(payload)]
            assert orjson.loads(encode_batch(batch)) == want


def _raw_dump(r: Any) -> dict[bytes, Any]:
    """Every key with its content; hashes as (field, value) pairs in the hash's own order
    (a listpack keeps the order in which fields were first written)."""
    async def go() -> dict[bytes, Any]:
        out: dict[bytes, Any] = {}
        async for k in r.scan_iter(count=1000):
            t = await r.type(k)
            if t == b"hash":
                out[k] = list((await r.hgetall(k)).items())
            elif t == b"set":
                out[k] = sorted(await r.smembers(k))
            elif t == b"zset":
                out[k] = await r.zrange(k, 0, -1, withscores=True)
            elif t == b"list":
                out[k] = await r.lrange(k, 0, -1)
            else:
                out[k] = await r.get(k)
        return out

    return run(go())


def test_one_call_leaves_redis_as_the_two_calls_did_down_to_the_field_order(redis_url):
    for seed in (1, 2):
        ops = _flush_ops(seed)
        a = fresh_client(redis_url)

        async def two_calls(ops: list[tuple] = ops, a: Any = a) -> None:
            batch_script = a.register_script(BATCH_SCRIPT)
            why_script = a.register_script(_REFERENCE_WHY_SCRIPT)
            for i in range(0, len(ops), 97):  # the flushes' batches (max_ops=97)
                for kind, payload in _reference_calls(ops[i:i + 97], num_edges):
                    script = why_script if kind == "why" else batch_script
                    failed, _ = await script(args=[payload])
                    assert failed == 0

        run(two_calls())
        b = fresh_client(redis_url)
        proj = _written_by_projection(f"{redis_url}/{b.connection_pool.connection_kwargs['db']}",
                                      ops)
        assert proj.rejected == 0 and proj.written == len(ops)
        want, got = _raw_dump(a), _raw_dump(b)
        assert any(keys.WHY_FIELD.encode() in dict(v) for v in want.values()
                   if isinstance(v, list) and v and isinstance(v[0], tuple))
        assert got == want
