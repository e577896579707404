"""Projection cost: CPU µs per event of the worker's Redis writer (``RedisProjection``: the
agent's ``apply_changes`` / ``set_fields`` / ``forget`` calls, then each flush's building,
encoding and one Lua call through redis-py), in-process against real redis-servers.

The calls are the ones the worker makes for the workload's events (:func:`record_calls`:
the tag engine, the sweep's ticks and the scorer run in-process as ``agents.handle_event``
and ``handle_tick`` run them), recorded once to ``var/bench/projection-calls-*-sim*.pkl``.

Two comparisons, each in lockstep in one process (every flush interval's calls go through
both sides back to back, who goes first alternating; CPU time by ``time.process_time``, so
Redis's own work and the wait for its reply are left out):

* ``--against DIR``: this tree's writer against the one of another revision (``git archive
  <rev> stream_app bench config topics | tar -x -C DIR``), each into its own redis-server;
  at the end every key of the two servers is compared (type, TTL, ``DUMP`` bytes), so the
  run proves the same Redis contents as well as timing both.
* ``--hiredis``: this tree's writer with redis-py's pure-Python reply parser against the
  ``hiredis`` one (``parser_class`` per connection; the asyncio client packs commands in
  Python either way). ``--hiredis-path`` adds a directory holding the ``hiredis`` package to
  ``sys.path`` first (e.g. ``pip install --target /tmp/hd-site hiredis``), so the project's
  virtualenv need not have it.

Measured on 2026-12-02 (session 10, 60k events, 5 alternating rounds, ~470 events per
flush in the worker): the writer costs ~10 µs of CPU per event in-process (calls ~2.5, flush
~7.5, of which redis-py's script call ~0.8); hiredis saves nothing measurable there (one
small reply per flush: ~8 µs per call of ~80-170). On 2026-12-03 (bcb00df + the
``JsonFields`` hash write, 225k events): ~8.2 µs per event (calls ~2.4, flush ~5.8, redis-py
~0.8); by py-spy over the calls, building and encoding (no Redis), the why records' packing
(``keys.pack_why``, half of it ``why_shape``) is ~28%, ``set_fields`` and ``apply_changes``
~15% each, replaying the tag moves (``_moves``) ~8%, the segment bits' operations and
entries ~7%: what is left is spread over small steps, much of it first touches of records
made long before the flush.

Usage::

    python -m bench.projection_cost --against /tmp/base --events 60000 --rounds 3
    python -m bench.projection_cost --hiredis --hiredis-path /tmp/hd-site --rounds 3

Example (a tiny run; starts two redis-servers):
    >>> from bench.workload import build
    >>> calls, n = record_calls(build(users=30, seed=3, days=2).records, 300)
    >>> n > 0 and {c[0] for c in calls} <= {"c", "f", "g", "e"}
    True
    >>> from stream_app.config import REPO_ROOT
    >>> res = lockstep(calls, other=REPO_ROOT, flush_every=50, rounds=1)
    >>> res["same_redis"], res["keys"] > 0
    (True, True)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

VAR = Path(__file__).resolve().parent.parent / "var" / "bench"
Call = tuple[Any, ...]
"""``("c", changes, why)`` apply_changes, ``("f", tenant, uid, fields)`` set_fields, ``("g",
tenant, uid, tags)`` forget, ``("e",)`` the end of one input event."""


# -- the calls the worker makes ---------------------------------------------------------------

def _score(eng: Any, scorer: Any, state: dict[str, Any], ev: Any, res: Any,
           calls: list[Call]) -> None:
    """``agents.score_event`` + ``publish_scoring``'s projection call."""
    step = scorer.on_event(state.get("sc"), ev, rule_tags=state.get("tags"))
    state["sc"] = step.sc_state
    if not step.scores:
        return
    rounded = {t: round(v, 2) for t, v in step.scores.items()}
    if rounded != state.get("scores"):
        extra = eng.on_scores(state, rounded, ev.ts)
        res.changes.extend(extra.changes)
        res.why.update(extra.why)
    from stream_app.serving import keys  # noqa: PLC0415

    calls.append(("f", ev.tenant, ev.user_id,
                  keys.score_fields(rounded, step.layers, step.source)))


def _tick(eng: Any, states: dict[str, Any], now: int, calls: list[Call]) -> None:
    """The sweep at ``now``: ``agents.handle_tick`` for every due user."""
    for uid, st in list(states.items()):
        if not eng.due(st, now):
            continue
        tags = dict(st.get("tags") or {})
        r = eng.on_tick(st, now)
        if r.changes:
            calls.append(("c", r.changes, r.why))
        if r.state is None:
            calls.append(("g", st.get("tenant", "default"), uid, tags))
            del states[uid]
        else:
            states[uid] = r.state


def record_calls(records: list, limit: int, sweep_min: float = 60.0
                 ) -> tuple[list[Call], int]:
    """The projection calls the worker makes for ``records[:limit]`` (events in order, a
    sweep of due users every ``sweep_min`` minutes of event time), and the events handled."""
    from stream_app.app.runtime import build_engine  # noqa: PLC0415
    from stream_app.config import Settings  # noqa: PLC0415
    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.events import parse_event  # noqa: PLC0415
    from stream_app.scoring.config import load_scoring_config  # noqa: PLC0415
    from stream_app.scoring.registry import ModelRegistry  # noqa: PLC0415
    from stream_app.scoring.scorer import Scorer  # noqa: PLC0415

    contract = load_contract()
    eng = build_engine(Settings())
    cfg = load_scoring_config()
    scorer = Scorer(cfg, ModelRegistry(cfg))
    states: dict[str, Any] = {}
    calls: list[Call] = []
    events = 0
    sweep_ms = int(sweep_min * 60_000)
    next_sweep: int | None = None
    for topic, _, value, _ in records[:limit]:
        ev = parse_event(value, contract.stream_of(topic))
        if next_sweep is None:
            next_sweep = ev.ts + sweep_ms
        elif ev.ts >= next_sweep:
            _tick(eng, states, ev.ts, calls)
            next_sweep = ev.ts + sweep_ms
        state = states.get(ev.user_id)
        events += 1
        if ev.type == "deletion_requested":
            if state is not None:
                tags = dict(state.get("tags") or {})
                r = eng.forget(state, ev.ts)
                if r.changes:
                    calls.append(("c", r.changes, r.why))
                calls.append(("g", ev.tenant, ev.user_id, tags))
                del states[ev.user_id]
            calls.append(("e",))
            continue
        r = eng.on_event(state, ev)
        if r.duplicate:
            calls.append(("e",))
            continue
        if r.state is not None:
            _score(eng, scorer, r.state, ev, r, calls)
            states[ev.user_id] = r.state
        else:
            states.pop(ev.user_id, None)
        if r.changes:
            calls.append(("c", r.changes, r.why))
        calls.append(("e",))
    return calls, events


def cached_calls(events: int, users: int = 50_000, seed: int = 42) -> bytes:
    """The pickled calls for the first ``events`` records of the bench workload (recorded
    once to ``var/bench``); unpickle once per writer so the two never share an object."""
    from bench.workload import build, cached, load, sim_fingerprint  # noqa: PLC0415

    # keyed by the simulator too: calls recorded from an older simulator's events are stale
    path = VAR / f"projection-calls-u{users}-s{seed}-{events}-sim{sim_fingerprint()}.pkl"
    if path.exists():
        return path.read_bytes()
    wl = None
    for n in (225_000, 260_000):  # the bench's cached workloads: their head is the same
        if n >= events and (wl := load(VAR / f"workload-u{users}-s{seed}-{n}.pkl")):
            break
    if wl is None:
        wl = cached(VAR / f"workload-u{users}-s{seed}-{events}.pkl",
                    lambda: build(users, seed, max_events=events))
    calls, n = record_calls(wl.records, events)
    data = pickle.dumps((calls, n), protocol=pickle.HIGHEST_PROTOCOL)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def intervals(calls: list[Call], flush_every: int) -> Iterator[list[Call]]:
    """The calls in runs of ``flush_every`` events (one flush after each run).

    >>> [len(x) for x in intervals([("e",), ("f",), ("e",), ("e",)], 2)]
    [3, 1]
    """
    run: list[Call] = []
    n = 0
    for c in calls:
        run.append(c)
        if c[0] == "e":
            n += 1
            if n % flush_every == 0:
                yield run
                run = []
    if run:
        yield run


# -- one writer and its timing ----------------------------------------------------------------

class Side:
    """One writer (a ``RedisProjection`` of some tree) into one Redis, with its own event
    loop; accumulates CPU seconds of the calls and of the flushes."""

    def __init__(self, name: str, proj: Any) -> None:
        self.name = name
        self.proj = proj
        self.loop = asyncio.new_event_loop()
        self.call_s = 0.0
        self.flush_s = 0.0
        self.redis_s = 0.0   # of flush_s: inside redis-py's script call (packing, I/O, reply)
        batch = proj._batch

        async def timed_batch(*args: Any, **kw: Any) -> Any:
            t0 = time.process_time()
            try:
                return await batch(*args, **kw)
            finally:
                self.redis_s += time.process_time() - t0
        proj._batch = timed_batch

    def run(self, calls: list[Call]) -> None:
        """The calls of one interval, then a flush until nothing is pending."""
        p = self.proj
        apply, fields, forget = p.apply_changes, p.set_fields, p.forget
        clock = time.process_time
        t0 = clock()
        for c in calls:
            kind = c[0]
            if kind == "c":
                apply(c[1], c[2])
            elif kind == "f":
                fields(c[1], c[2], c[3])
            elif kind == "g":
                forget(c[1], c[2], c[3])
        t1 = clock()
        run = self.loop.run_until_complete
        while True:
            run(p.flush())
            if not p.pending:
                break
        self.call_s += t1 - t0
        self.flush_s += clock() - t1

    def close(self) -> None:
        self.loop.run_until_complete(self.proj.client.aclose())
        self.loop.close()


def _projection_module(root: Path | None) -> Any:
    """``stream_app.serving.projection`` of this tree (None) or of the tree under ``root``."""
    if root is None:
        return importlib.import_module("stream_app.serving.projection")
    from bench.trees import other_tree  # noqa: PLC0415

    with other_tree(root):
        return importlib.import_module("stream_app.serving.projection")


def _writer(module: Any, url: str, parser: Any = None) -> Any:
    """A live writer of ``module`` into ``url`` (why records compact, no timeline: the
    settings' defaults), optionally with redis-py's reply parser ``parser``."""
    proj = module.RedisProjection(url, why="compact", timeline=0)
    if parser is not None:
        import redis.asyncio as aioredis  # noqa: PLC0415

        proj.client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2,
                                              parser_class=parser)
        proj._batch = proj.client.register_script(module.BATCH_SCRIPT)
    return proj


# -- Redis contents ---------------------------------------------------------------------------

_BY_CONTENT = {(b"set", b"hashtable"), (b"hash", b"hashtable")}
"""Encodings whose ``DUMP`` order follows the server's random hash seed: compared by
content (sorted members / fields) instead."""


def redis_snapshot(url: str) -> dict[bytes, tuple[Any, ...]]:
    """Every key of ``url``: ``(type, TTL, encoding, DUMP bytes)``; for a hashtable-encoded
    set or hash (whose ``DUMP`` order depends on the server's hash seed) its sorted members
    or fields instead of the ``DUMP``."""
    import redis  # noqa: PLC0415

    r = redis.Redis.from_url(url)
    try:
        names = sorted(r.scan_iter(count=1000))
        out: dict[bytes, tuple[Any, ...]] = {}
        for i in range(0, len(names), 500):
            chunk = names[i:i + 500]
            pipe = r.pipeline(transaction=False)
            for k in chunk:
                pipe.type(k)
                pipe.pttl(k)
                pipe.object("encoding", k)
                pipe.dump(k)
            res = pipe.execute()
            for j, k in enumerate(chunk):
                typ, ttl, enc, dump = res[4 * j:4 * j + 4]
                if (typ, enc) in _BY_CONTENT:
                    dump = (sorted(r.smembers(k)) if typ == b"set"
                            else sorted(r.hgetall(k).items()))
                out[k] = (typ, ttl, enc, dump)
        return out
    finally:
        r.close()


def compare_redis(url_a: str, url_b: str) -> dict[str, Any]:
    """Whether two Redis servers hold the same keys with the same type, TTL and ``DUMP``
    bytes; the key count and the first few differing keys."""
    a, b = redis_snapshot(url_a), redis_snapshot(url_b)
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return {"same_redis": not diff, "keys": len(a), "keys_other": len(b),
            "differing": [k.decode(errors="replace") for k in diff[:10]],
            "differing_count": len(diff)}


@contextmanager
def _servers(n: int) -> Iterator[list[str]]:
    """``n`` fresh embedded redis-servers (their URLs)."""
    from stream_app.services.redis_server import EmbeddedRedis  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="projcost-") as tmp, ExitStack() as stack:
        yield [stack.enter_context(EmbeddedRedis(workdir=Path(tmp) / str(i))).url
               for i in range(n)]


def _flushall(url: str) -> None:
    import redis  # noqa: PLC0415

    r = redis.Redis.from_url(url)
    r.flushall()
    r.close()


# -- the comparisons --------------------------------------------------------------------------

def _race(sides: list[Side], copies: list[list[Call]], flush_every: int) -> None:
    """Every interval through both sides back to back, who goes first alternating."""
    its = [intervals(c, flush_every) for c in copies]
    for i, pair in enumerate(zip(*its, strict=True)):
        order = (0, 1) if i % 2 else (1, 0)
        for j in order:
            sides[j].run(pair[j])


def _summary(per: dict[str, list[tuple[float, float, float]]], events: int) -> dict[str, Any]:
    """µs per event of each side: calls + flush per round, and the medians of the calls,
    the flush and the flush's redis-py part."""
    out: dict[str, Any] = {}

    def med(i: int, runs: list[tuple[float, float, float]]) -> float:
        return round(statistics.median(r[i] / events * 1e6 for r in runs), 2)

    for name, runs in per.items():
        tot = [(c + f) / events * 1e6 for c, f, _ in runs]
        out[name] = {"us_per_event": [round(x, 2) for x in tot],
                     "us_per_event_median": round(statistics.median(tot), 2),
                     "calls_us_median": med(0, runs), "flush_us_median": med(1, runs),
                     "redis_py_us_median": med(2, runs)}
    return out


def lockstep(calls: list[Call] | bytes, other: Path, flush_every: int = 400,
             rounds: int = 3, events: int | None = None) -> dict[str, Any]:
    """This tree's writer against the one under ``other``, each into its own redis-server,
    ``rounds`` times (servers emptied between rounds); then every key of the two servers
    compared. ``calls``: a list (copied by pickling) or pickled ``(calls, events)``."""
    data = calls if isinstance(calls, bytes) else pickle.dumps((calls, events or sum(
        1 for c in calls if c[0] == "e")))
    mods = [_projection_module(other), _projection_module(None)]
    for m in mods:
        m.num_edges()   # the first reads (imports) the settings: not inside a timed flush
    names = ("other", "this")
    per: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    with _servers(2) as urls:
        for _ in range(rounds):
            for u in urls:
                _flushall(u)
            copies = [pickle.loads(data)[0] for _ in names]  # noqa: S301 - our own pickle
            n_events = pickle.loads(data)[1]  # noqa: S301
            sides = [Side(n, _writer(m, u)) for n, m, u in zip(names, mods, urls, strict=True)]
            gc.collect()
            _race(sides, copies, flush_every)
            for s in sides:
                per[s.name].append((s.call_s, s.flush_s, s.redis_s))
                s.close()
        cmp = compare_redis(urls[0], urls[1])
    out: dict[str, Any] = {"events": n_events, "flush_every": flush_every, "rounds": rounds,
                           **cmp, **_summary(per, n_events)}
    out["ratio_other_over_this"] = round(
        out["other"]["us_per_event_median"] / out["this"]["us_per_event_median"], 3)
    return out


def hiredis_ab(data: bytes, flush_every: int = 400, rounds: int = 3) -> dict[str, Any]:
    """This tree's writer with redis-py's Python reply parser against hiredis's, in
    lockstep (each into its own redis-server); the contents compared at the end."""
    from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser  # noqa: PLC0415
    from redis.utils import HIREDIS_AVAILABLE  # noqa: PLC0415

    if not HIREDIS_AVAILABLE:
        raise SystemExit("hiredis is not importable (see --hiredis-path)")
    mod = _projection_module(None)
    mod.num_edges()
    names, parsers = ("python", "hiredis"), (_AsyncRESP2Parser, _AsyncHiredisParser)
    per: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    with _servers(2) as urls:
        for _ in range(rounds):
            for u in urls:
                _flushall(u)
            copies = [pickle.loads(data)[0] for _ in names]  # noqa: S301 - our own pickle
            n_events = pickle.loads(data)[1]  # noqa: S301
            sides = [Side(n, _writer(mod, u, p))
                     for n, u, p in zip(names, urls, parsers, strict=True)]
            gc.collect()
            _race(sides, copies, flush_every)
            for s in sides:
                per[s.name].append((s.call_s, s.flush_s, s.redis_s))
                s.close()
        cmp = compare_redis(urls[0], urls[1])
    out: dict[str, Any] = {"events": n_events, "flush_every": flush_every, "rounds": rounds,
                           **cmp, **_summary(per, n_events)}
    out["saved_us_per_event"] = round(out["python"]["us_per_event_median"]
                                      - out["hiredis"]["us_per_event_median"], 2)
    return out


def parser_calls(url: str, payload: int = 120_000, calls: int = 300, rounds: int = 5
                 ) -> dict[str, Any]:
    """redis-py's cost of one flush's script call alone, by reply parser: ``calls`` calls of
    a script that returns what the batch script returns (``{0, ''}``) with an argument of
    ``payload`` bytes (a flush's size), Python parser and hiredis alternating per round;
    µs of CPU per call (median of ``rounds``)."""
    import redis.asyncio as aioredis  # noqa: PLC0415
    from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser  # noqa: PLC0415

    arg = b"[" + b"x" * (payload - 2) + b"]"
    per: dict[str, list[float]] = {"python": [], "hiredis": []}
    loop = asyncio.new_event_loop()
    clients = {name: aioredis.Redis.from_url(url, parser_class=cls) for name, cls in
               (("python", _AsyncRESP2Parser), ("hiredis", _AsyncHiredisParser))}
    scripts = {n: c.register_script("return {0, ''}") for n, c in clients.items()}

    async def burst(script: Any) -> float:
        t0 = time.process_time()
        for _ in range(calls):
            await script(args=[arg])
        return time.process_time() - t0

    for name in per:
        loop.run_until_complete(burst(scripts[name]))   # load the script, warm up
    for i in range(rounds):
        for name in (("python", "hiredis") if i % 2 else ("hiredis", "python")):
            per[name].append(loop.run_until_complete(burst(scripts[name])) / calls * 1e6)
    for c in clients.values():
        loop.run_until_complete(c.aclose())
    loop.close()
    return {"payload_bytes": payload, "calls": calls, "rounds": rounds,
            **{f"{n}_us_per_call": round(statistics.median(v), 1) for n, v in per.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.projection_cost",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--flush-every", type=int, default=400,
                   help="events per flush (the worker flushes every 100 ms: ~470 events at "
                        "its backlog rate)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--against", type=Path, metavar="DIR",
                   help="compare with the stream_app tree under DIR (timing and contents)")
    p.add_argument("--hiredis", action="store_true",
                   help="compare redis-py's Python reply parser with hiredis's")
    p.add_argument("--hiredis-path", type=Path, help="a directory holding hiredis")
    p.add_argument("--gc", action="store_true", help="keep the cyclic collector on")
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args(argv)
    if args.hiredis_path:
        sys.path.insert(0, str(args.hiredis_path))
    data = cached_calls(args.events)
    if not args.gc:
        gc.disable()
    if args.hiredis:
        res = hiredis_ab(data, args.flush_every, args.rounds)
        with _servers(1) as urls:
            res["script_call_alone"] = parser_calls(urls[0])
    elif args.against:
        res = lockstep(data, args.against, args.flush_every, args.rounds)
    else:
        p.error("give --against DIR or --hiredis")
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
