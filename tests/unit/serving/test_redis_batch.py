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
