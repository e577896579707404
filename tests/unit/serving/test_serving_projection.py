"""The live projection writer (merged per-event writes, LRU skips, score fields on change),
the compact why/timeline layout, and the segment runner's size cache, small first pages and
bitmap layout (integer ids, forget, lean storage) against a real redis-server."""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.serving import keys, reader
from stream_app.serving.projection import (
    RedisProjection,
    Seen,
    _apply,
    change_ops,
    event_ops,
    forget_ops,
)
from stream_app.serving.segment_runner import SegmentRunner
from stream_app.serving.segments import parse
from tests.unit.serving import fixtures
from tests.unit.serving.conftest import fresh_client

run = fixtures.run


def _write(r: Any, ops: list[tuple]) -> None:
    async def go() -> None:
        pipe = r.pipeline(transaction=False)
        for op in ops:
            _apply(pipe, op)
        await pipe.execute()

    run(go())


def _dump(r: Any) -> dict[str, Any]:
    """Every key's content (type-aware), for comparing two Redis states."""
    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async for k in r.scan_iter(count=1000):
            t = (await r.type(k)).decode()
            if t == "set":
                out[k] = sorted(await r.smembers(k))
            elif t == "zset":
                out[k] = await r.zrange(k, 0, -1, withscores=True)
            elif t == "hash":
                out[k] = dict(sorted((await r.hgetall(k)).items()))
            elif t == "list":
                out[k] = await r.lrange(k, 0, -1)
            else:
                out[k] = await r.get(k)
        return out

    return run(go())


def _events(seed: int, users: int = 40, steps: int = 6) -> list[tuple[list[dict], dict]]:
    """Random events of tag changes: (changes of one user, why by tag), old values chained."""
    rnd = random.Random(seed)
    current: dict[str, dict[str, Any]] = {}
    seq = 0
    out = []
    choices = {"activity": ["high", "low", "churned", None],
               "lifecycle": ["growth", "mature", None], "lead_points": [1, 2.5, 8, None],
               "categories_bought": [["java"], ["java", "pmp"], None],
               "refunded": [True, False, None]}
    for _ in range(steps):
        for i in range(users):
            uid, tenant = f"u{i}", "t" if i % 3 else "t2"
            tags = current.setdefault(uid, {})
            changes, why = [], {}
            for tag in rnd.sample(sorted(choices), rnd.randint(1, 4)):
                new, old = rnd.choice(choices[tag]), tags.get(tag)
                if new == old:
                    continue
                seq += 1
                changes.append({"user_id": uid, "tenant": tenant, "tag_id": tag, "old": old,
                                "new": new, "seq": seq, "ts": seq, "trigger": f"e{seq}",
                                "evidence": {"big": "x" * 200}})
                if new is not None:
                    why[tag] = {"rule": tag, "rule_version": 1, "values": {"n": seq},
                                "trigger": f"e{seq}", "recent_events": [f"e{seq}"]}
                tags[tag] = new
            if changes:
                out.append((changes, why))
    return out


def test_merged_event_writes_leave_the_same_redis_as_one_change_at_a_time(redis_url):
    a = fresh_client(redis_url)
    b = fresh_client(redis_url)
    seen = Seen(1000)
    merged = single = changes = 0
    for chs, why in _events(seed=3):
        one = [op for ch in chs for op in change_ops(ch, why.get(ch["tag_id"]))]
        ev = event_ops(chs, why, seen)
        _write(a, one)
        _write(b, ev)
        single, merged, changes = single + len(one), merged + len(ev), changes + len(chs)
    assert _dump(a) == _dump(b)
    assert merged < 0.6 * single, (merged, single, changes)


def test_users_and_tenants_sadd_only_for_users_not_projected_yet():
    seen = Seen(10)
    ch = {"user_id": "u1", "tenant": "t", "tag_id": "activity", "old": None, "new": "low",
          "seq": 1}
    first = event_ops([ch], {}, seen)
    again = event_ops([{**ch, "old": "low", "new": "high", "seq": 2}], {}, seen)
    assert ("sadd", keys.users_key("t"), "u1") in first
    assert ("sadd", keys.TENANTS_KEY, "t") in first
    assert not [op for op in again if op[1] in (keys.users_key("t"), keys.TENANTS_KEY)]
    assert ("sadd", keys.values_key("t", "activity"), "high") in again
    assert ("sadd", keys.values_key("t", "activity"), "low") not in again  # seen already
    assert ("srem", keys.seg_key("t", "activity", "low"), "u1") in again
    # without an LRU (redis-rebuild) everything is written
    assert ("sadd", keys.users_key("t"), "u1") in event_ops([ch], {}, None)


def test_projection_forgets_its_caches_with_the_user():
    proj = RedisProjection("redis://127.0.0.1:1/0", lru_users=100)
    ch = {"user_id": "u1", "tenant": "t", "tag_id": "activity", "old": None, "new": "low",
          "seq": 1}
    proj.apply_changes([ch])
    proj.materialize()
    assert ("sadd", keys.users_key("t"), "u1") in list(proj.pending)
    proj.pending.clear()
    proj.apply_changes([{**ch, "old": "low", "new": "high", "seq": 2}])
    proj.materialize()
    assert ("sadd", keys.users_key("t"), "u1") not in list(proj.pending)  # indexed already
    proj.forget("t", "u1", {"activity": "high"})
    proj.materialize()
    proj.pending.clear()
    proj.apply_changes([{**ch, "seq": 3}])
    proj.materialize()
    assert ("sadd", keys.users_key("t"), "u1") in list(proj.pending)
    proj.pending.clear()
    proj.reset_caches()
    proj.apply_changes([{**ch, "old": "low", "new": "high", "seq": 4}])
    proj.materialize()
    assert ("sadd", keys.users_key("t"), "u1") in list(proj.pending)


def test_set_fields_writes_only_changed_fields():
    proj = RedisProjection("redis://127.0.0.1:1/0", lru_users=2)
    proj.set_fields("t", "u1", {"score:convert": 0.5, "layer:convert": "mid"})
    proj.set_fields("t", "u1", {"score:convert": 0.5, "layer:convert": "mid"})
    proj.set_fields("t", "u1", {"score:convert": 0.7, "layer:convert": "mid"})
    assert proj.skipped_fields == 3 and proj.held == 2
    proj.materialize()  # one write of the last values
    assert list(proj.pending) == [("hsetmap", keys.user_key("t", "u1"),
                                   {"score:convert": b"0.7", "layer:convert": b'"mid"'})]
    proj.set_fields("t", "u1", {"score:convert": 0.7, "layer:convert": "mid"})
    assert proj.skipped_fields == 5 and proj.held == 0
    for uid in ("u2", "u3"):  # evicts u1 (LRU of 2): written again in full
        proj.set_fields("t", uid, {"score:convert": 0.1})
    proj.set_fields("t", "u1", {"score:convert": 0.7, "layer:convert": "mid"})
    proj.materialize()
    assert len(proj.pending[-1][2]) == 2


def test_why_records_are_packed_in_the_user_hash_and_read_back_whole(redis_url):
    r = fresh_client(redis_url)
    big = {f"count(x{i})": i * 1.5 for i in range(20)}
    chs = [{"user_id": "u1", "tenant": "t", "tag_id": tag, "old": None, "new": "v",
            "seq": i, "ts": i, "trigger": "e1", "event_id": "u1:1", "family": "f",
            "evidence": {"values": big}} for i, tag in enumerate(("activity", "intent"))]
    why = {"activity": {"rule": "activity", "rule_version": 2, "values": {"n": 1},
                        "value": "v", "trigger": "e1", "recent_events": ["e0", "e1"]},
           "intent": {"rule": "intent", "rule_version": 1, "values": big, "trigger": "e1",
                      "case": "count(x0) >= 0", "ruleset": "r9", "value": "v"}}
    _write(r, event_ops(chs, why, Seen(10)))
    for i in range(keys.TIMELINE_MAX + 3):
        w = {"rule": "activity", "rule_version": 2, "values": {"n": i, "s": f"w{i}|x"},
             "value": f"w{i}"}
        _write(r, event_ops([{**chs[0], "seq": 10 + i, "old": "v", "new": f"w{i}"}],
                            {"activity": w}))
    assert run(r.exists(keys.why_key("t", "u1"))) == 0  # no key per user for the why records
    # the compact encoding (Redis 7 calls it listpack, 6.2 ziplist)
    assert run(r.object("encoding", keys.user_key("t", "u1"))) in (b"listpack", b"ziplist")
    last = keys.TIMELINE_MAX + 2
    got = run(reader.read_why(r, "t", "u1"))
    assert got == {"activity": {"rule": "activity", "rule_version": 2,
                                "values": {"n": last, "s": f"w{last}|x"}},
                   "intent": {"rule": "intent", "rule_version": 1, "ruleset": "r9",
                              "case": "count(x0) >= 0", "values": big}}
    assert run(reader.read_why_one(r, "t", "u1", "intent")) == got["intent"]
    assert len(run(r.hgetall(keys.why_dict_key("t")))) == 3  # shapes: one per names/case
    tl = run(reader.read_timeline(r, "t", "u1", limit=100))
    assert len(tl) == keys.TIMELINE_MAX and tl[0]["new"] == f"w{last}"
    assert all(set(c) <= set(keys.TIMELINE_FIELDS) for c in tl)
    # a removed tag loses its record, the other tag's stays; the last one empties the field
    _write(r, event_ops([{**chs[1], "old": "v", "new": None}], {}))
    assert set(run(reader.read_why(r, "t", "u1"))) == {"activity"}
    _write(r, event_ops([{**chs[0], "old": "v", "new": None}], {}))
    assert run(r.hexists(keys.user_key("t", "u1"), keys.WHY_FIELD)) == 0


def test_packed_why_round_trips_any_values():
    values = {"a": 0, "b": -1.25, "c": "x|y,z\"q\\", "d": None, "e": True, "f": [1, "|"],
              "g": {"k": "v"}, "h": "北京", "i": "same", "j": 10**15}
    why = {"rule_version": 7, "case": "default", "values": values, "value": "same"}
    code, shape, rec = keys.pack_why("t1", why)
    recs = keys.unpack_why(keys.join_packed([rec, rec]))
    assert [c for c, _ in recs] == [code, code]
    tag, out = keys.expand_packed(shape, recs[0][1], "same")
    assert tag == "t1" and out["values"] == values and out["case"] == "default"
    assert b"|" not in rec and len(code) == keys.WHY_CODE_LEN
    assert keys.why_shape("t1", why)[0] != keys.why_shape("t1", {**why, "case": "x"})[0]
    assert keys.why_shape("t1", why)[0] != keys.why_shape("t2", why)[0]
    assert orjson.loads(keys.join_packed([rec]))  # the field stays a JSON document


def test_the_old_why_hash_is_still_read(redis_url):
    r = fresh_client(redis_url)
    run(r.hset(keys.user_key("t", "u1"), "tag:activity", b'"high"'))
    run(r.hset(keys.why_key("t", "u1"), "activity", orjson.dumps({"v": 1, "t": "e9"})))
    assert run(reader.read_why(r, "t", "u1")) == {
        "activity": {"rule": "activity", "rule_version": 1, "trigger": "e9"}}
    assert run(reader.read_why_one(r, "t", "u1", "activity"))["trigger"] == "e9"


def test_size_cache_serves_a_recent_size_and_expires(catalog, redis_url):
    r = fresh_client(redis_url)
    users = fixtures.random_users(seed=5, n=60)
    fixtures.fill(r, "t", users)
    expr = "activity = high AND lifecycle = growth"
    want = len(fixtures.reference(users, parse(expr)))
    cached = SegmentRunner(r, catalog, size_cache_s=60)
    fresh = SegmentRunner(r, catalog, size_cache_s=0)
    assert run(cached.size("t", expr)) == want == run(fresh.size("t", expr))
    _write(r, change_ops({"user_id": "new1", "tenant": "t", "tag_id": "activity",
                          "old": None, "new": "high", "seq": 1}, None)
           + change_ops({"user_id": "new1", "tenant": "t", "tag_id": "lifecycle",
                         "old": None, "new": "growth", "seq": 2}, None))
    assert run(cached.size("t", "activity = high  AND lifecycle = growth")) == want
    assert run(fresh.size("t", expr)) == want + 1
    assert run(cached.size("other", expr)) == 0  # per tenant
    cached._sizes = {k: (0.0, n) for k, (_, n) in cached._sizes.items()}  # expire all
    assert run(cached.size("t", expr)) == want + 1


def _snapshots(r: Any) -> list[bytes]:
    async def go() -> list[bytes]:
        return [k async for k in r.scan_iter(match="sa:*:tmp:*")]

    return run(go())


def test_small_first_pages_need_no_snapshot(catalog, redis_url):
    r = fresh_client(redis_url)
    users = fixtures.random_users(seed=9, n=120)
    fixtures.fill(r, "t", users)
    runner = SegmentRunner(r, catalog, size_cache_s=0)
    for expr in ("activity = high AND lifecycle = growth", "lead_points >= 8",
                 "activity = low", "(activity = high OR refunded = true) AND NOT at_risk = true"):
        want = fixtures.reference(users, parse(expr))
        page = run(runner.page("t", expr, None, limit=len(want) + 1))
        assert sorted(page.members) == sorted(want) and page.next_cursor is None, expr
        assert page.total == len(want) and not _snapshots(r), expr
        big = run(runner.page("t", expr, None, limit=max(1, len(want) - 1)))
        if len(want) > 1:  # does not fit: a snapshot and a cursor
            assert big.next_cursor is not None and big.total == len(want), expr
            rest = run(runner.page("t", expr, big.next_cursor, limit=1000))
            assert sorted(big.members + rest.members) == sorted(want), expr
            assert not _snapshots(r), expr  # deleted after the last page


def test_numeric_bucket_edges_come_from_redis_once_written(catalog, redis_url, monkeypatch):
    from stream_app.serving import projection

    r = fresh_client(redis_url)
    monkeypatch.setattr(projection, "num_edges", lambda: "2,8")
    users = fixtures.random_users(seed=11, n=200)
    fixtures.fill(r, "t", users)
    monkeypatch.setattr(projection, "num_edges", lambda: "1,3")  # ignored: edges are kept
    fixtures.fill(r, "t", fixtures.random_users(seed=12, n=50, prefix="x"))
    users.update(fixtures.random_users(seed=12, n=50, prefix="x"))
    assert run(r.get(keys.edges_key("t", "lead_points"))) == b"2,8"
    runner = SegmentRunner(r, catalog, size_cache_s=0)
    for expr in ("lead_points >= 8 AND activity = high", "lead_points > 0 AND activity = low",
                 "lead_points < 2", "lead_points >= 2 AND lead_points < 8", "tag:lead_points",
                 "lead_points = 2.5", "lead_points > 100 AND activity = high"):
        want = fixtures.reference(users, parse(expr))
        assert run(runner.size("t", expr)) == len(want), expr
        assert run(runner.members("t", expr)) == want, expr
    assert not _snapshots(r)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n=st.integers(0, 40),
       exprs=st.lists(st.integers(0, 10_000), min_size=1, max_size=5))
def test_property_bitmap_segments_equal_the_reference_sets(catalog, redis_url, seed, n, exprs):
    """Any users (random values, written through the projection's operations with earlier
    values first) and any expression: the bitmap answer is the reference set evaluation."""
    r = fresh_client(redis_url)
    users = fixtures.random_users(seed=seed, n=n)
    fixtures.fill(r, "t", users)
    runner = SegmentRunner(r, catalog, size_cache_s=0)
    for e in exprs:
        expr = fixtures.random_expr(random.Random(e))
        want = fixtures.reference(users, parse(expr))
        assert run(runner.members("t", expr)) == want, expr
        assert run(runner.size("t", expr)) == len(want), expr
    run(r.aclose())


def test_forget_ops_still_remove_the_compact_keys(redis_url):
    r = fresh_client(redis_url)
    ch = {"user_id": "u1", "tenant": "t", "tag_id": "activity", "old": None, "new": "low",
          "seq": 1}
    _write(r, event_ops([ch], {"activity": {"rule": "activity"}}, Seen(5)))
    assert run(r.getbit(keys.users_key("t"), 0)) == 1
    assert run(r.hget(keys.ids_key("t", 0), "0")) == b"u1"
    _write(r, forget_ops("t", "u1", {"activity": "low"}))
    assert not [k for k in _dump(r) if b"u1" in k]
    assert not [v for v in _dump(r).values() if isinstance(v, dict) and b"u1" in v.values()]
    assert run(r.getbit(keys.users_key("t"), 0)) == 0
    assert run(r.getbit(keys.seg_key("t", "activity", "low"), 0)) == 0
    assert run(r.exists(keys.ids_key("t", 0))) == 0


def test_integer_ids_are_unique_and_mapped_back(redis_url, catalog):
    r = fresh_client(redis_url)
    users = fixtures.random_users(seed=21, n=300)
    fixtures.fill(r, "t", users)
    ids = {u: int(run(r.hget(keys.user_key("t", u), keys.ID_FIELD))) for u in users}
    assert sorted(ids.values()) == list(range(len(users)))
    runner = SegmentRunner(r, catalog)
    assert run(runner.user_ids("t", sorted(ids.values()))) == sorted(ids, key=ids.get)
    prof = run(reader.read_profile(r, "t", "u0001"))
    assert keys.ID_FIELD not in prof["fields"]


def test_lean_storage_writes_no_why_and_no_timeline(redis_url):
    r = fresh_client(redis_url)
    proj = RedisProjection(redis_url + "/0", why="off", timeline=0)
    ch = {"user_id": "u1", "tenant": "t", "tag_id": "activity", "old": None, "new": "low",
          "seq": 1}
    proj.apply_changes([ch], {"activity": {"rule": "activity", "trigger": "e1"}})
    proj.materialize()
    ops = list(proj.pending)
    assert not [op for op in ops if op[0] in ("lpush", "ltrim")]
    assert not [op for op in ops if op[0] == "why"]
    _write(r, ops)
    assert run(r.hexists(keys.user_key("t", "u1"), keys.WHY_FIELD)) == 0
    assert run(r.exists(keys.why_key("t", "u1"), keys.timeline_key("t", "u1"))) == 0
    assert run(r.getbit(keys.seg_key("t", "activity", "low"), 0)) == 1


def test_the_sync_reader_reads_both_layouts(redis_url):
    import redis as sync_redis

    r = fresh_client(redis_url)
    db = r.get_connection_kwargs()["db"]
    why = {"rule": "goal", "rule_version": 4, "case": "profile.goal in ['a']",
           "values": {"profile.goal": "a"}, "value": "a", "trigger": "e1"}
    ch = {"user_id": "u1", "tenant": "t", "tag_id": "goal", "old": None, "new": "a", "seq": 1}
    _write(r, change_ops(ch, why, timeline=0))
    run(r.hset(keys.why_key("t", "u2"), "goal", orjson.dumps({"v": 1, "t": "e2"})))
    s = sync_redis.Redis.from_url(f"{redis_url}/{db}")
    assert reader.read_why_sync(s, "t", "u1") == {"goal": {
        "rule": "goal", "rule_version": 4, "case": "profile.goal in ['a']",
        "values": {"profile.goal": "a"}}}
    assert reader.read_why_sync(s, "t", "u2")["goal"]["trigger"] == "e2"
    assert reader.read_why_sync(s, "t", "nobody") == {}
    s.close()


def _reference_pack_why(tag_id, why):
    """``keys.pack_why`` as first written: each value's JSON compared with the tag value's,
    the record escaped by dumping it as a JSON string; a record whose one value is the tag's is
    the code alone."""
    import orjson  # noqa: PLC0415

    code, shape = keys.why_shape(tag_id, why)
    values = list((why.get("values") or {}).values())
    value = why.get("value")
    if len(values) == 1 and value is not None and orjson.dumps(values[0]) == orjson.dumps(value):
        return code, shape, code.encode()  # (session 27) one value, the tag's: the code alone
    if value is not None and value not in values:
        body = orjson.dumps(values)[1:-1].replace(b"|", b"\\u007c")
    else:
        same = orjson.dumps(value)
        body = b",".join(keys.SAME if (j := orjson.dumps(v)) == same and len(j) > len(keys.SAME)
                         else j.replace(b"|", b"\\u007c") for v in values)
    return code, shape, orjson.dumps((code.encode() + body).decode())[1:-1]


def test_pack_why_matches_the_reference_on_odd_values():
    import datetime  # noqa: PLC0415
    import enum  # noqa: PLC0415
    import random  # noqa: PLC0415

    class Text(enum.Enum):
        X = "x"

    odd = ["x", "", 'a"b', "a\\b", "a|b", "é中", "\n\t\x01", "\u2028", 0, 1, 100, 1.0, 100.0,
           -0.0, 0.0, float("nan"), float("inf"), True, False, None, [1, "x"], {"a": "x|"},
           Text.X, datetime.date(2024, 1, 1), "2024-01-01", 2**40]
    rnd = random.Random(7)
    for _ in range(3000):
        vals = {f"k{j}": rnd.choice(odd) for j in range(rnd.randint(0, 5))}
        why = {"rule_version": 1, "values": vals}
        if rnd.random() < 0.9:
            why["value"] = rnd.choice(odd + list(vals.values()))
        assert keys.pack_why("t", why) == _reference_pack_why("t", why), why


def test_pack_why_one_text_value_equal_to_the_tag_is_the_reference():
    """The one-text-value fast path (session 10) against the reference, at its edges: empty
    text, a str subclass on either side, escapes, a second value, a value of another text."""
    class Sub(str):
        pass

    cases = [("x", "x"), ("", ""), (Sub("x"), "x"), ("x", Sub("x")), ("x|y", "x|y"),
             ('q"\\', 'q"\\'), ("é中", "é中"), ("x", "y"), ("1", 1), (1, "1")]
    for v, value in cases:
        for values in ({"a": v}, {"a": v, "b": v}, {"a": v, "b": 2}):
            why = {"rule_version": 1, "values": values, "value": value}
            assert keys.pack_why("t", why) == _reference_pack_why("t", why), why


def test_one_value_equal_to_the_tag_is_the_code_alone_and_reads_back_as_before():
    """A record whose one value is the tag's is stored as its shape code (2 bytes less than
    ``code{}``, 13 of a typical user's 16 records); both forms read back as the tag's value,
    and a value other than the tag's is still stored."""
    for tag_value in ("wechat_oa", 12, 2.5, ["a", "b"], True):
        why = {"rule_version": 3, "value": tag_value, "values": {"x": tag_value}}
        code, shape, rec = keys.pack_why("t", why)
        assert rec == code.encode()
        for stored in (rec, rec + keys.SAME):  # new form, form written before session 27
            raw = {b"tag:t": orjson.dumps(tag_value),
                   keys.WHY_FIELD.encode(): keys.join_packed([stored])}
            got = reader.decode_why(raw, {code: shape})
            assert got["t"]["values"] == {"x": tag_value}, (tag_value, stored)
    code, shape, rec = keys.pack_why("t", {"rule_version": 3, "value": 12,
                                            "values": {"x": 11}})
    assert rec == code.encode() + b"11"
    raw = {b"tag:t": b"12", keys.WHY_FIELD.encode(): keys.join_packed([rec])}
    assert reader.decode_why(raw, {code: shape})["t"]["values"] == {"x": 11}
