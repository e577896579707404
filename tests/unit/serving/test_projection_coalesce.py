"""The coalescing live writer (:class:`RedisProjection`: per-user net result built at flush
time) leaves Redis as the per-call writer (:class:`PerCallProjection`, the writer before it)
does, for any sequence of calls, flushed anywhere, on a real redis-server; and it writes
fewer operations and why records when a user changes several times between flushes."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from stream_app.serving import keys
from stream_app.serving.projection import PerCallProjection, RedisProjection
from tests.unit.serving import fixtures
from tests.unit.serving.conftest import fresh_client

run = fixtures.run

CHOICES: dict[str, list[Any]] = {
    "activity": ["high", "low", "churned", None],
    "lifecycle": ["growth", "mature", None],
    "lead_points": [0, 1, 2.5, 8, 30, None],
    "mixed": [1, "x", 2.5, "y", None],            # numeric <-> text moves
    "categories_bought": [["java"], ["java", "pmp"], None],
    "refunded": [True, False, None],
}
TAGS = sorted(CHOICES)
USERS = [("t", "u1"), ("t", "u2"), ("t", "u3"), ("t2", "u1"), ("t2", "u4")]


def _db_url(redis_url: str, client: Any) -> str:
    return f"{redis_url}/{client.connection_pool.connection_kwargs['db']}"


def _canon(r: Any) -> tuple[dict[Any, Any], dict[Any, Any], set[tuple[str, str]]]:
    """Redis content with integer ids replaced by the user ids they map to (bitmaps as sets
    of users, an all-zero bitmap as no key; zset members as users; ``_id`` as a marker; the
    ``ids``/``nextid`` keys checked, then left out); apart: what may be written once and
    then shared (why shapes, numeric bucket edges), and which of those the content uses."""
    async def go() -> dict[bytes, tuple[bytes, Any]]:
        out: dict[bytes, tuple[bytes, Any]] = {}
        async for k in r.scan_iter(count=1000):
            t = await r.type(k)
            if t == b"set":
                v: Any = sorted(await r.smembers(k))
            elif t == b"zset":
                v = await r.zrange(k, 0, -1, withscores=True)
            elif t == b"hash":
                v = await r.hgetall(k)
            elif t == b"list":
                v = await r.lrange(k, 0, -1)
            else:
                v = await r.get(k)
            out[k] = (t, v)
        return out

    raw = run(go())
    ids: dict[str, dict[int, bytes]] = {}
    for k, (_, v) in raw.items():
        parts = k.decode().split(":") + ["", ""]
        if parts[2] == "ids":
            for f, uid in v.items():
                ids.setdefault(parts[1], {})[int(parts[3]) * 128 + int(f)] = uid
    out: dict[Any, Any] = {}
    wd: dict[Any, Any] = {}
    codes: set[tuple[str, str]] = set()
    for k, (t, v) in raw.items():
        parts = k.decode().split(":") + ["", ""]
        ten, fam = parts[1], parts[2] if len(parts) > 2 else ""
        who = ids.get(ten, {})
        if fam in ("ids", "nextid"):
            continue
        if fam == "wd":
            wd.update({(ten, c.decode()): shape for c, shape in v.items()})
        elif fam == "nbe":  # written with a numeric tag's first bucket move
            wd[(ten, "nbe", parts[3])] = v
        elif t == b"string" and fam in ("seg", "nb", "users"):
            bits = {i * 8 + j for i, byte in enumerate(v) for j in range(8)
                    if byte & (0x80 >> j)}
            members = sorted(who.get(b, b"?%d" % b) for b in bits)
            if members:
                out[k] = members
        elif t == b"zset":
            out[k] = sorted((who.get(int(float(m)), b"?" + m), s) for m, s in v)
            codes.add((ten, "nbe", parts[3]))
        elif t == b"hash" and fam == "user":
            if keys.ID_FIELD.encode() in v:  # the id maps back to this user
                assert who[int(v[keys.ID_FIELD.encode()])] == parts[3].encode(), k
                v = {**v, keys.ID_FIELD.encode(): b"<id>"}
            codes |= {(ten, c) for c, _ in keys.unpack_why(v.get(keys.WHY_FIELD.encode()))}
            out[k] = dict(sorted(v.items()))
        else:
            out[k] = v
    for ten, m in ids.items():
        assert len(set(m.values())) == len(m), ten  # one id per user
    return out, wd, codes


def _same_redis(a: Any, b: Any) -> None:
    """``b`` (coalescing writer) holds what ``a`` (per-call writer) holds."""
    want, want_wd, _ = _canon(a)
    got, got_wd, used = _canon(b)
    assert got == want
    # shapes and edges: those in use, as the per-call writer wrote them (it also wrote
    # those of values and why records replaced before a flush)
    assert used <= set(got_wd)
    assert got_wd.items() <= want_wd.items()


class _Driver:
    """Random calls, the same on both writers; old values chained as the engine does."""

    def __init__(self) -> None:
        self.tags: dict[tuple[str, str], dict[str, Any]] = {}
        self.seq = 0

    def event(self, data: Any, user: tuple[str, str], two_users: bool) -> tuple[list, Any]:
        users = [user, data.draw(st.sampled_from(USERS))] if two_users else [user]
        changes: list[dict[str, Any]] = []
        why: dict[str, Any] = {}
        for t, uid in users:
            cur = self.tags.setdefault((t, uid), {})
            for tag in data.draw(st.lists(st.sampled_from(TAGS), min_size=1, max_size=4)):
                new, old = data.draw(st.sampled_from(CHOICES[tag])), cur.get(tag)
                if new == old:
                    continue
                self.seq += 1
                changes.append({"user_id": uid, "tenant": t, "tag_id": tag, "old": old,
                                "new": new, "seq": self.seq, "ts": self.seq,
                                "trigger": f"e{self.seq}", "evidence": {"x": 1}})
                cur[tag] = new
                if new is not None and data.draw(st.integers(0, 5)):
                    why[tag] = {"rule": tag, "rule_version": 1, "values": {"n": self.seq},
                                "case": data.draw(st.sampled_from(["a", "b", None])),
                                "trigger": f"e{self.seq}", "recent_events": ["e1"]}
        return changes, (None if data.draw(st.integers(0, 6)) == 0 else why)


def _drain(*projs: RedisProjection) -> None:
    """Flush until nothing is held or pending, in batches of 53 operations (split anywhere);
    a failed write (a connect timeout on a loaded machine) keeps the operations: retried."""
    async def go() -> None:
        for p in projs:
            while p.pending or p.held:
                if not await p.flush(max_ops=53) and p.pending:
                    assert p.errors < 5, "Redis writes keep failing"
                    await asyncio.sleep(0.5)

    run(go())


@settings(max_examples=40, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), timeline=st.sampled_from([0, 3]),
       why_mode=st.sampled_from(["compact", "compact", "off"]),
       max_held=st.sampled_from([4, 50_000]), lru=st.sampled_from([0, 2, 1000]))
def test_property_coalesced_writes_leave_the_same_redis_as_per_call_writes(
        redis_url, data, timeline, why_mode, max_held, lru):
    """Random events (several tags, chained old values, the same tag twice, two users in a
    call, with or without why records), score fields, forgets, cache resets and flushes at
    random points: after every flush both writers' Redis hold the same content."""
    a, b = fresh_client(redis_url), fresh_client(redis_url)
    ref = PerCallProjection(_db_url(redis_url, a), why=why_mode, timeline=timeline,
                            lru_users=lru)
    new = RedisProjection(_db_url(redis_url, b), why=why_mode, timeline=timeline,
                          lru_users=lru, max_held=max_held)
    drv = _Driver()
    for _ in range(data.draw(st.integers(1, 40))):
        kind = data.draw(st.sampled_from(["event"] * 5 + ["fields", "forget", "flush",
                                                          "reset"]))
        user = data.draw(st.sampled_from(USERS))
        if kind == "event":
            chs, why = drv.event(data, user, two_users=data.draw(st.integers(0, 9)) == 0)
            for p in (ref, new):
                p.apply_changes(chs, why)
        elif kind == "fields":
            f = {"score:convert": data.draw(st.sampled_from([0.1, 0.5])),
                 "layer:convert": data.draw(st.sampled_from(["low", "high"])),
                 "tag:activity": "from-fields"} if data.draw(st.booleans()) else {
                "score:at_risk": data.draw(st.sampled_from([0.2, 0.3]))}
            for p in (ref, new):
                p.set_fields(*user, f)
        elif kind == "forget":
            tags = {k: v for k, v in drv.tags.pop(user, {}).items() if v is not None}
            for p in (ref, new):
                p.forget(*user, tags)
        elif kind == "reset":
            for p in (ref, new):
                p.reset_caches()
        else:
            _drain(ref, new)
            _same_redis(a, b)
    _drain(ref, new)
    _same_redis(a, b)
    assert ref.rejected == new.rejected == 0 and ref.dropped == new.dropped == 0
    for c in (a, b, ref.client, new.client):
        run(c.aclose())


def _lead_changes(uid: str, n: int) -> list[tuple[list[dict], dict]]:
    out = []
    for i in range(n):
        ch = {"user_id": uid, "tenant": "t", "tag_id": "lead_points", "old": i or None,
              "new": i + 1, "seq": i, "ts": i, "trigger": f"e{i}"}
        act = {**ch, "tag_id": "activity", "old": "low" if i % 2 else "high" if i else None,
               "new": "high" if i % 2 else "low"}
        why = {t: {"rule": t, "rule_version": 1, "values": {"n": i}, "case": str(i % 2)}
               for t in ("lead_points", "activity")}
        out.append(([ch, act], why))
    return out


def test_a_user_changing_often_between_flushes_costs_one_write_of_the_end_state(redis_url):
    a, b = fresh_client(redis_url), fresh_client(redis_url)
    ref = PerCallProjection(_db_url(redis_url, a), timeline=0)
    new = RedisProjection(_db_url(redis_url, b), timeline=0)
    for chs, why in _lead_changes("u1", 20):
        for p in (ref, new):
            p.apply_changes(chs, why)
            p.set_fields("t", "u1", {"score:convert": len(chs[0]["trigger"]) / 10})
    assert new.held == 40 + 2 and not new.pending   # recorded, nothing built yet
    new.materialize()
    assert not new.held
    got, want = list(new.pending), list(ref.pending)
    assert [op[0] for op in got].count("why") == 1 < [op[0] for op in want].count("why") == 20
    assert len(got) <= 10 < len(want) // 5, (got, len(want))
    _drain(ref, new)
    _same_redis(a, b)
    assert run(b.hget(keys.user_key("t", "u1"), "tag:lead_points")) == b"20"


def test_forget_drops_the_held_writes_and_wins_over_them(redis_url):
    b = fresh_client(redis_url)
    new = RedisProjection(_db_url(redis_url, b), timeline=5)
    for chs, why in _lead_changes("u1", 3):
        new.apply_changes(chs, why)
    new.set_fields("t", "u1", {"score:convert": 0.5})
    new.forget("t", "u1", {"lead_points": 3, "activity": "low"})
    new.materialize()
    ops = list(new.pending)
    assert not [op for op in ops if op[0] in ("hsetmap", "why", "lpush", "zadd")], ops
    assert ("sadd", keys.values_key("t", "activity"), "low") in ops   # the index outlives
    _drain(new)
    assert not [k for k in run(b.keys("*")) if b"u1" in k]
    # a later event opens a new entry: written after the deletion
    chs, why = _lead_changes("u1", 1)[0]
    new.apply_changes(chs, why)
    _drain(new)
    assert run(b.hget(keys.user_key("t", "u1"), "tag:lead_points")) == b"1"
    assert run(b.llen(keys.timeline_key("t", "u1"))) == 2
    run(new.client.aclose())


def test_held_changes_past_the_bound_are_built_at_once(redis_url):
    b = fresh_client(redis_url)
    new = RedisProjection(_db_url(redis_url, b), timeline=0, max_held=10)
    for i in range(12):
        new.apply_changes([{"user_id": f"u{i}", "tenant": "t", "tag_id": "activity",
                            "old": None, "new": "low", "seq": 1}], {})
    assert new.held == 1 and len(new.pending) > 11 * 3  # 11 users' ops built at the 11th
    _drain(new)
    assert run(b.bitcount(keys.seg_key("t", "activity", "low"))) == 12
    run(new.client.aclose())


def test_a_rejected_write_is_counted_and_the_other_users_are_written(redis_url):
    b = fresh_client(redis_url)
    run(b.set(keys.user_key("t", "bad"), "a string, not a hash"))
    new = RedisProjection(_db_url(redis_url, b), timeline=0)
    for uid in ("bad", "ok"):
        new.apply_changes([{"user_id": uid, "tenant": "t", "tag_id": "activity",
                            "old": None, "new": "low", "seq": 1}], {})
    _drain(new)
    assert new.rejected >= 1 and not new.pending and not new.held
    assert run(b.hget(keys.user_key("t", "ok"), "tag:activity")) == b'"low"'
    run(new.client.aclose())


def _pack_reference(tag: str, why: dict[str, Any]) -> bytes:
    """The packed record as written before the shape cache and the one-dump fast path (with
    the code-alone record of a single value equal to the tag's)."""
    import base64
    import hashlib

    import orjson

    extra = {k: v for k, v in why.items() if k not in keys._WHY_KNOWN}
    if why.get("rule") not in (None, tag):
        extra["rule"] = why["rule"]
    shape = orjson.dumps([tag, why.get("rule_version"), why.get("ruleset"), why.get("case"),
                          list(why.get("values") or {}), extra], option=orjson.OPT_SORT_KEYS)
    code = base64.urlsafe_b64encode(hashlib.sha1(shape).digest())[:keys.WHY_CODE_LEN]
    same = orjson.dumps(why.get("value"))
    only = list((why.get("values") or {}).values())
    if len(only) == 1 and why.get("value") is not None and orjson.dumps(only[0]) == same:
        return code + b"|" + shape + b"|" + code  # one value, the tag's: the code alone
    vals = []
    for v in (why.get("values") or {}).values():
        j = orjson.dumps(v)
        vals.append(keys.SAME if j == same and len(j) > 2 else j.replace(b"|", b"\\u007c"))
    return code + b"|" + shape + b"|" + orjson.dumps((code + b",".join(vals)).decode())[1:-1]


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 3)
                     | st.sampled_from([0.0, 1.0, -0.0, 2.5]) | st.sampled_from(["a", "|", "x|"]),
                     lambda inner: st.lists(inner, max_size=2)
                     | st.dictionaries(st.sampled_from(["k", "j"]), inner, max_size=2),
                     max_leaves=4)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_JSON, max_size=4), value=_JSON, pick=st.integers(0, 4),
       version=st.sampled_from([1, True, 1.0, "1"]), case=st.sampled_from([None, "a"]),
       extra=st.sampled_from([{}, {"rule": "other"}, {"note": [1]}]))
def test_property_packed_why_is_the_same_as_before_the_cache_and_fast_path(
        values, value, pick, version, case, extra):
    """Same shape code, shape and record for any values (JSON-equal pairs that Python calls
    different or the same, ``|`` inside strings, a value equal to the tag's), twice (the
    second from the shape cache), whatever the rule version's type."""
    if values and pick < len(values):
        value = values[pick]
    why = {"rule_version": version, "case": case, "value": value, "trigger": "e1",
           "values": {f"v{i}": v for i, v in enumerate(values)}, **extra}
    for _ in range(2):
        code, shape, rec = keys.pack_why("tag", why)
        assert code.encode() + b"|" + shape + b"|" + rec == _pack_reference("tag", why)
