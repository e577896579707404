"""The projection's one-Lua-call batch writer leaves Redis exactly as the command pipeline
does (every key compared, real redis-server), and a rejected operation is counted and
skipped without losing the rest of the batch."""

from __future__ import annotations

import random

from stream_app.serving import keys
from stream_app.serving.projection import RedisProjection, Seen, event_ops, forget_ops
from stream_app.serving.redis_batch import encode_batch
from tests.unit.serving import fixtures
from tests.unit.serving.conftest import fresh_client
from tests.unit.serving.test_serving_projection import _dump, _events, _write

run = fixtures.run


def _ops(seed: int) -> list[tuple]:
    """Merged event writes, score fields, numeric moves and deletions of random users."""
    rnd = random.Random(seed)
    seen = Seen(1000)
    ops: list[tuple] = []
    tags: dict[tuple[str, str], dict] = {}
    for chs, why in _events(seed=seed, users=30, steps=5):
        ops.extend(event_ops(chs, why, seen))
        t, uid = chs[0]["tenant"], chs[0]["user_id"]
        cur = tags.setdefault((t, uid), {})
        for ch in chs:
            cur[ch["tag_id"]] = ch["new"]
        ops.append(("hsetmap", keys.user_key(t, uid),
                    {"score:intent": str(rnd.random()).encode(), "layer:intent": b'"warm"'}))
        if rnd.random() < 0.1:
            ops.extend(forget_ops(t, uid, {k: v for k, v in cur.items() if v is not None}))
            seen.discard((t, uid))
            tags.pop((t, uid))
    return ops


def _written_by_projection(url: str, ops: list[tuple]) -> RedisProjection:
    proj = RedisProjection(url, lru_users=0)
    proj.pending.extend(ops)

    async def go() -> None:
        while proj.pending:
            assert await proj.flush(max_ops=97)      # several batches, split anywhere
        await proj.client.aclose()

    run(go())
    return proj


def test_batch_writes_leave_the_same_redis_as_the_pipeline(redis_url):
    for seed in (1, 2):
        ops = _ops(seed)
        assert {op[0] for op in ops} >= {"hsetmap", "sadd", "srem", "zadd", "zrem", "unid",
                                         "delete", "lpush", "ltrim"}
        a = fresh_client(redis_url)
        _write(a, ops)
        b = fresh_client(redis_url)
        url = f"{redis_url}/{b.connection_pool.connection_kwargs['db']}"
        proj = _written_by_projection(url, ops)
        assert proj.rejected == 0 and proj.written == len(ops)
        want, got = _dump(a), _dump(b)
        assert len(want) > 50
        assert got == want


def test_a_rejected_op_is_counted_and_the_others_still_apply(redis_url):
    b = fresh_client(redis_url)
    url = f"{redis_url}/{b.connection_pool.connection_kwargs['db']}"
    run(b.set("sa:t:user:x", "a string, not a hash"))
    ops = [("hsetmap", "sa:t:user:x", {"tag:a": b'"1"'}),        # WRONGTYPE
           ("hsetmap", "sa:t:user:y", {"tag:a": b'"2"'}),
           ("sadd", "sa:t:seg:a=2", "y")]
    proj = _written_by_projection(url, ops)
    assert proj.rejected == 1 and not proj.pending
    assert run(b.hget("sa:t:user:y", "tag:a")) == b'"2"'
    assert run(b.getbit("sa:t:seg:a=2", int(run(b.hget("sa:t:user:y", "_id"))))) == 1


def test_a_rejected_bit_of_a_users_group_is_counted_and_the_others_still_apply(redis_url):
    b = fresh_client(redis_url)
    url = f"{redis_url}/{b.connection_pool.connection_kwargs['db']}"
    run(b.hset("sa:t:seg:a=bad", "f", "a hash, not a bitmap"))
    ops = [("sadd", "sa:t:seg:a=1", "y"), ("sadd", "sa:t:seg:a=bad", "y"),  # WRONGTYPE
           ("srem", "sa:t:seg:a=0", "y"), ("sadd", "sa:t:seg:a=3", "y")]
    assert encode_batch(ops).count(b'"B"') == 1   # one entry for the user's bits
    proj = _written_by_projection(url, ops)
    assert proj.rejected == 1 and not proj.pending
    uid = int(run(b.hget("sa:t:user:y", "_id")))
    assert [run(b.getbit(f"sa:t:seg:a={v}", uid)) for v in (1, 0, 3)] == [1, 0, 1]


def test_encoding_is_plain_json_strings():
    raw = encode_batch([("zadd", "sa:t:num:lead_points", "u1", 2.5),
                        ("hsetmap", "sa:t:user:u1", {"f": b"1"}), ("delete", "k1", "k2")],
                       lambda: "0,1,5")
    assert raw == (b'[["n","sa:t:num:lead_points","sa:t:user:u1","u1","2.5","sa:t:",'
                   b'"lead_points","0,1,5"],["c","HSET","sa:t:user:u1","f","1"],'
                   b'["c","DEL","k1","k2"]]')


def _encode_one_by_one(ops: list[tuple]) -> bytes:
    """``encode_batch`` without its inline paths: every operation through ``encode_op``
    (the hash writes and numeric moves as before session 10), the same grouping order."""
    import orjson  # noqa: PLC0415

    from stream_app.serving import redis_batch  # noqa: PLC0415

    out: list = []
    why: list = []
    group: list = []
    for op in ops:
        if op[0] in ("sadd", "srem") and len(op) == 3 and redis_batch._bitmap_prefix(op[1]):
            e = redis_batch.encode_op(op)[0]
            if not group or group[2] != e[3] or group[3] != e[5]:
                group = ["B", e[2], e[3], e[5]]
                out.append(group)
            group += (e[1], e[4])
            continue
        if op[0] == "why":
            why.append(redis_batch._why_entry(*op[1:]))
            continue
        if op[0] == "delete" and why:
            out += why
            why = []
        group = []
        out.extend(redis_batch.encode_op(op, lambda: "0,1"))
    return orjson.dumps(out + why)


_FIELD_VALUES = [b'"x"', b"0.5", b'"a\\"|b"', "text", 3, 2.5, b"\xc3\xa9".decode().encode()]


def test_encode_batch_inline_paths_are_encode_op():
    """Random batches of hash writes (text and odd field names, JSON bytes and other
    values), numeric moves of several tenants, segment bits and why records: the same JSON
    as each operation through ``encode_op``."""
    rnd = random.Random(5)
    for seed in range(200):
        ops: list[tuple] = []
        for _ in range(rnd.randint(1, 12)):
            t, uid = rnd.choice(["t", "t2"]), rnd.choice(["u1", "u2", "u3"])
            kind = rnd.random()
            if kind < 0.3:
                fields = {rnd.choice(["tag:a", "score:x", b"raw", 7]): rnd.choice(_FIELD_VALUES)
                          for _ in range(rnd.randint(1, 4))}
                ops.append(("hsetmap", keys.user_key(t, uid), fields))
            elif kind < 0.5:
                tag = rnd.choice(["lead_points", "n:2"])
                ops.append(("zadd", keys.num_key(t, tag), uid, rnd.choice([1.0, -0.0, 3, 2.5]))
                           if rnd.random() < 0.7 else ("zrem", keys.num_key(t, tag), uid))
            elif kind < 0.8:
                ops.append((rnd.choice(["sadd", "srem"]), keys.seg_key(t, "a", "x"), uid))
            elif kind < 0.9:
                ops.append(("why", keys.user_key(t, uid), t, ("a",), [b"Abcd1"], {}))
            else:
                ops.append(("delete", keys.user_key(t, uid)))
        assert encode_batch(ops, lambda: "0,1") == _encode_one_by_one(ops), seed
