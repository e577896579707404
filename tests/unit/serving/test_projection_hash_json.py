"""The live writer's hash write: ``pending_ops`` hands the user's field values to the batch
(:class:`~stream_app.serving.redis_batch.JsonFields`, their JSON made when the batch is
encoded) instead of a dict of JSON bytes. Compared with the former way (kept here as
:func:`_reference`: a dict of ``orjson.dumps`` per field, the deleted tags apart) on random
calls: the same operations and the same batch bytes."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.serving import projection
from stream_app.serving.projection import RedisProjection
from stream_app.serving.redis_batch import JsonFields, encode_batch

VALUES = st.one_of(st.text(max_size=6), st.integers(-3, 3), st.sampled_from(
    [0.0, -0.0, 0.5, 1e300, math.inf, math.nan, True, False, ["a", 1], {"k": [1.5]}]))
TAGS = ["a", "b", "c"]
CALL = st.one_of(
    st.tuples(st.just("c"), st.sampled_from(["u1", "u2"]), st.sampled_from(TAGS),
              st.one_of(st.none(), VALUES)),
    st.tuples(st.just("f"), st.sampled_from(["u1", "u2"]),
              st.dictionaries(st.sampled_from(["score:x", "layer:x", "n"]), VALUES,
                              max_size=3)))


def _reference(fields: dict[str, Any]) -> tuple[dict[str, bytes], list[str]]:
    """The former hash write of a pending entry: JSON bytes per set field, deleted fields."""
    put = {f: orjson.dumps(v) for f, v in fields.items() if v is not projection._DEL}
    return put, [f for f, v in fields.items() if v is projection._DEL]


def _drive(calls: list[tuple[Any, ...]]) -> RedisProjection:
    proj = RedisProjection("redis://127.0.0.1:1/0", why="compact", timeline=0)
    last: dict[tuple[str, str], Any] = {}
    for call in calls:
        if call[0] == "c":
            _, uid, tag, new = call
            old = last.get((uid, tag))
            last[(uid, tag)] = new
            proj.apply_changes([{"tenant": "t", "user_id": uid, "tag_id": tag, "old": old,
                                 "new": new, "seq": 1}], None)
        else:
            proj.set_fields("t", call[1], call[2])
    return proj


def _as_former(ops: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(*op[:2], dict(op[2])) if op[0] == "hsetmap" else op for op in ops]


@settings(max_examples=300, deadline=None)
@given(st.lists(CALL, max_size=25))
def test_hash_writes_and_batch_bytes_are_the_former_ones(calls):
    proj = _drive(calls)
    want = {p.uid: _reference(p.hash) for p in proj._entries}
    proj.materialize()
    ops = list(proj.pending)
    for uid, (put, gone) in want.items():
        key = f"sa:t:user:{uid}"
        hset = [op[2] for op in ops if op[0] == "hsetmap" and op[1] == key]
        hdel = [list(op[2:]) for op in ops if op[0] == "hdel" and op[1] == key]
        assert hset == ([put] if put else [])
        assert [list(f) for f in hset] == ([list(put)] if put else [])   # field order
        assert hdel == ([gone] if gone else [])
    assert all(op[2].__class__ is JsonFields for op in ops if op[0] == "hsetmap")
    assert encode_batch(ops) == encode_batch(_as_former(ops))


def test_a_tag_removed_then_set_again_writes_no_deletion():
    proj = _drive([("c", "u1", "a", "x"), ("c", "u1", "a", None), ("c", "u1", "a", "y")])
    proj.materialize()
    ops = list(proj.pending)
    assert ops[0] == ("hsetmap", "sa:t:user:u1", {"tag:a": b'"y"'})
    assert not [op for op in ops if op[0] == "hdel"]
