"""Glue cost: CPU µs per event of the worker's own per-event code (``handle_event`` with
``parse_event``, ``load_state``/``store_state``, ``publish``, ``emit``, the Prometheus calls,
the clock, ``count_event``), this tree against another stream_app tree, in one process over
the seeded simulator workload; no Kafka, no Redis.

Each side is one tree's ``stream_app.app.agents`` (its Faust app is imported, never started)
with a recording fake producer (every ``produce``/``produce_tracked`` record kept), the users
table's real write-back cache and clean-stop ledger over an empty fake RocksDB (a deleted
user's tombstone, which goes through Faust's table path, is recorded), a recording
fake Redis projection, a simulated wall clock (the same for both sides) and fresh tag engine
and scorer instances. The engine and scorer are the *other* tree's on both sides by default
(``--core this`` for this tree's), so that only the glue differs; their calls are timed apart
and the report gives the whole step and the glue alone (the whole step minus engine and
scorer calls).

Lockstep proof: both sides see every record, and must give the same output records (topic,
key, value, partition, in order), Redis projection calls, final store contents, due index,
business partials and ``/metrics`` exposition (``_created`` lines aside). Then whole passes
alternate between the sides in stretches of ``CHUNK`` events (who goes first alternates),
each timed in CPU time; each round starts both sides from nothing.

Usage::

    git archive bcb00df stream_app bench config topics | tar -x -C /tmp/base-glue
    python -m bench.glue_cost --against /tmp/base-glue                 # 60k events, 3 rounds
    python -m bench.glue_cost --against /tmp/base-glue --events 225000 --rounds 5 --no-gc
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import os
import statistics
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest

from bench.trees import no_registry, other_tree

VAR = Path(__file__).resolve().parent.parent / "var" / "bench"
#: simulated arrival rate (events per second of the fake wall clock)
RATE = 5000.0
#: the fake ``time.time()`` of the metrics module (end-to-end latency), and broker timestamps
NOW_S = 1_900_000_000.0
#: events per timed stretch of one side (the sides alternate stretch by stretch)
CHUNK = 500


MODS = ("stream_app.app.agents", "stream_app.app.business", "stream_app.metrics",
        "stream_app.clock", "stream_app.due_index", "stream_app.app.runtime",
        "stream_app.app.context", "stream_app.app.state_cache", "stream_app.app.store_marker")


def import_tree(root: Path | None) -> dict[str, Any]:
    """The modules of :data:`MODS` of the tree under ``root`` (None: this process's own)."""
    os.environ.setdefault("STREAM_APP_DATADIR", "/tmp/glue-cost-data")
    if root is None:
        return {m: importlib.import_module(m) for m in MODS}
    with other_tree(root), no_registry():
        return {m: importlib.import_module(m) for m in MODS}


class FakeProducer:
    """Records every output and changelog record (no futures, no Kafka)."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []
        self.after_flush: list[Any] = []
        self.delivered: dict[tuple[str, int], int] = {}

    def produce(self, topic: str, key: Any, value: Any, partition: int | None = None,
                headers: Any = None) -> None:
        self.records.append((topic, key, value, partition))

    def produce_tracked(self, topic: str, key: Any, value: Any, partition: int,
                        on_delivered: Any = None) -> None:
        self.records.append((topic, key, value, partition, "tracked"))


class FakeProjection:
    """Records the Redis projection calls (serialized at call time)."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def apply_changes(self, changes: list[dict[str, Any]], why: dict[str, Any]) -> None:
        self.calls.append(orjson.dumps(["apply", changes, why], default=repr))

    def set_fields(self, tenant: str, uid: str, fields: dict[str, Any]) -> None:
        self.calls.append(orjson.dumps(["set", tenant, uid, fields], default=repr))

    def forget(self, tenant: str, uid: str, tags: dict[str, Any]) -> None:
        self.calls.append(orjson.dumps(["forget", tenant, uid, tags], default=repr))

    def reset_caches(self) -> None:
        pass


class Msg:
    """The parts of a Faust message the agent reads."""

    __slots__ = ("topic", "partition", "offset", "key", "value", "timestamp", "headers")

    def __init__(self, topic: str, partition: int, offset: int, key: bytes, value: bytes,
                 timestamp: float) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.key, self.value, self.timestamp = key, value, timestamp
        self.headers = None


class Timed:
    """Wrap a callable so its CPU time adds to ``acc[0]``."""

    def __init__(self, fn: Callable[..., Any], acc: list[float]) -> None:
        self.fn, self.acc = fn, acc

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        clock = time.process_time
        t0 = clock()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.acc[0] += clock() - t0


def _drive(coro: Any) -> None:
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("handle_event suspended")


class Side:
    """One tree's worker glue, wired to fakes (module docstring)."""

    def __init__(self, mods: dict[str, Any], core: dict[str, Any], split: bool = False) -> None:
        self.mods = mods
        self.split = split
        self.agents = agents = mods["stream_app.app.agents"]
        self.business = mods["stream_app.app.business"]
        self.metrics = mods["stream_app.metrics"]
        self.core_mods = core
        self.wall = [0.0]
        self.core_cpu = [0.0]
        self.metrics.time = types.SimpleNamespace(time=lambda: NOW_S)
        self.registry = CollectorRegistry(auto_describe=False)
        for obj in vars(self.metrics).values():
            if isinstance(obj, prometheus_client.metrics.MetricWrapperBase):
                self.registry.register(obj)
        self.store = agents.users.data
        self.store._db_for_partition = lambda partition: {}
        # a deleted user's tombstone goes through Faust's table path, which needs a stream
        # context: recorded instead
        agents.users.on_key_del = self._tombstone
        self.store._del = self.store.cache.discard   # the cache's part of a delete
        self.reset()

    def _tombstone(self, key: str) -> None:
        self.producer.records.append(("tombstone", key))

    def reset(self) -> None:
        """Fresh state, outputs, metrics and runtime parts (a pass starts from nothing)."""
        agents, runtime = self.agents, self.agents.runtime
        self.producer = FakeProducer()
        agents.app.producer = self.producer
        self.store.cache = self.mods["stream_app.app.state_cache"].WriteBack(
            self.store.cache.max_users)
        self.store._del = self.store.cache.discard
        self.store.ledger = self.mods["stream_app.app.store_marker"].ChangelogLedger()
        agents.STATE_WRITER._hooked = None
        wall = self.wall
        wall[0] = 0.0
        runtime.clock = self.mods["stream_app.clock"].HybridClock(wall=lambda: wall[0])
        runtime.due = self.mods["stream_app.due_index"].DueIndex()
        runtime.projection = FakeProjection()
        runtime.processed = 0
        decoded = getattr(agents, "DECODED", None)   # (a tree before item 38 has none)
        if decoded is not None:
            decoded.clear()
        fresh = self.core_mods["stream_app.app.runtime"].Runtime.create(
            self.core_mods["stream_app.app.context"].get_settings())
        self.core_cpu[0] = 0.0
        if self.split:
            runtime.engine = _TimedEngine(fresh.engine, self.core_cpu)
            runtime.scorer = _TimedScorer(fresh.scorer, self.core_cpu)
        else:
            runtime.engine, runtime.scorer = fresh.engine, fresh.scorer
        biz = self.business
        biz._wall = lambda: wall[0]
        for name in ("aggregators", "_pending", "_last_sent", "_sent_wm", "_late_seen"):
            getattr(biz, name, {}).clear()      # (a tree may lack the later ones)
        met = self.metrics
        for obj in vars(met).values():
            if isinstance(obj, prometheus_client.metrics.MetricWrapperBase) and obj._labelnames:
                obj.clear()
        for name in ("_CHILDREN",):
            getattr(met, name).clear()
        for cache in getattr(met, "_BY_RAW", ()):
            cache.clear()
        for hook in getattr(met, "_RESET_HOOKS", ()):
            hook()

    def run(self, msgs: list[tuple[Msg, str]], start: int = 0) -> float:
        """Feed ``msgs`` (the workload's from index ``start`` on); CPU seconds taken."""
        handle, wall = self.agents.handle_event, self.wall
        clock = time.process_time
        t0 = clock()
        for i, (msg, stream) in enumerate(msgs, start):
            wall[0] = i / RATE
            _drive(handle(msg, stream))
        return clock() - t0

    def outputs(self) -> dict[str, str]:
        """Digests of everything the pass produced."""
        body = b"\n".join(line for line in generate_latest(self.registry).splitlines()
                          if b"_created" not in line)
        cache = self.store.cache
        due = self.agents.runtime.due
        parts = {
            "records": orjson.dumps([[str(x) if not isinstance(x, bytes) else x.decode(
                "utf-8", "replace") for x in r] for r in self.producer.records]),
            "redis": b"\n".join(self.agents.runtime.projection.calls),
            "store": orjson.dumps(sorted((k.decode(), v.decode(), cache.part[k])
                                         for k, v in cache.vals.items())),
            "dirty": orjson.dumps(sorted((p, sorted(k.decode() for k in d))
                                         for p, d in cache.dirty.items())),
            "due": orjson.dumps(sorted(due._due.items())),
            "pending": orjson.dumps(sorted((str(k), len(v))
                                           for k, v in self.business._pending.items())),
            "metrics": body,
            "processed": str(self.agents.runtime.processed).encode(),
        }
        return {k: hashlib.blake2b(v).hexdigest()[:16] for k, v in parts.items()}


class _TimedEngine:
    def __init__(self, engine: Any, acc: list[float]) -> None:
        self._e = engine
        self.on_event = Timed(engine.on_event, acc)
        self.on_scores = Timed(engine.on_scores, acc)
        self.forget = Timed(engine.forget, acc)
        self.on_tick = Timed(engine.on_tick, acc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._e, name)


class _TimedScorer:
    def __init__(self, scorer: Any, acc: list[float]) -> None:
        self._s = scorer
        self.on_event = Timed(scorer.on_event, acc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s, name)


def messages(wl: Any, events: int, partitions: int) -> list[tuple[Msg, str]]:
    """The first ``events`` records as the agent gets them (partition by key, murmur2)."""
    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.kafka_io import partition_of  # noqa: PLC0415

    contract = load_contract()
    out = []
    offsets: dict[tuple[str, int], int] = {}
    for i, (topic, key, value, _) in enumerate(wl.records[:events]):
        part = partition_of(key, partitions)
        off = offsets.get((topic, part), 0)
        offsets[(topic, part)] = off + 1
        out.append((Msg(topic, part, off, key, value, NOW_S - 0.02 - (i % 7) * 0.01),
                    contract.stream_of(topic)))
    return out


def compare(wl: Any, other: Path, events: int = 60_000, rounds: int = 3,
            core: str = "other", no_gc: bool = False, split: bool = False) -> dict[str, Any]:
    """This tree against the one under ``other``: same outputs, then alternating passes."""
    mods = {"other": import_tree(other), "this": import_tree(None)}
    core_mods = mods["other"] if core == "other" else mods["this"]
    sides = {k: Side(m, core_mods, split) for k, m in mods.items()}
    parts = sides["this"].agents.settings.partitions
    msgs = messages(wl, events, parts)
    # each round: both sides from fresh state, in alternating chunks of CHUNK events (who
    # goes first alternates), so the machine's load changes hit both alike; after the first
    # round every output is compared
    total: dict[str, list[float]] = {"other": [], "this": []}
    glue: dict[str, list[float]] = {"other": [], "this": []}
    outs: dict[str, dict[str, str]] = {}
    for r in range(rounds):
        cpu = dict.fromkeys(sides, 0.0)
        for side in sides.values():
            side.reset()
        gc.collect()
        if no_gc:
            gc.disable()
        for n, start in enumerate(range(0, len(msgs), CHUNK)):
            chunk = msgs[start:start + CHUNK]
            for name in (("other", "this") if (n + r) % 2 == 0 else ("this", "other")):
                cpu[name] += sides[name].run(chunk, start)
        gc.enable()
        for name, side in sides.items():
            total[name].append(round(cpu[name] / len(msgs) * 1e6, 2))
            glue[name].append(round((cpu[name] - side.core_cpu[0]) / len(msgs) * 1e6, 2))
        if r == 0:
            outs = {name: side.outputs() for name, side in sides.items()}
    same = outs["this"] == outs["other"]
    diff = [k for k in outs["this"] if outs["this"][k] != outs["other"][k]]
    med = {k: {"total": statistics.median(total[k]), "glue": statistics.median(glue[k])}
           for k in total}
    return {"events": len(msgs), "same_result": same, "differences": diff,
            "digests": outs["this"], "rounds": rounds, "total_us": total, "glue_us": glue,
            "median": med}


def main(argv: list[str] | None = None) -> None:
    from bench.workload import build, cached  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m bench.glue_cost",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--against", type=Path, required=True, metavar="DIR")
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--core", choices=("other", "this"), default="other",
                   help="whose engine and scorer both sides run")
    p.add_argument("--no-gc", action="store_true", help="collector off during timed passes")
    p.add_argument("--split", action="store_true",
                   help="also time engine and scorer calls (adds a CPU clock read per call "
                        "to both sides) and report the glue alone")
    args = p.parse_args(argv)
    path = VAR / f"workload-u{args.users}-s{args.seed}-225000.pkl"
    wl = cached(path, lambda: build(args.users, args.seed, max_events=225_000))
    res = compare(wl, args.against, events=args.events, rounds=args.rounds, core=args.core,
                  no_gc=args.no_gc, split=args.split)
    print(f"worker glue over {res['events']:,} events, same outputs: {res['same_result']} "
          f"{res['differences'] or ''}")
    print(f"  digests {res['digests']}")
    for name in ("other", "this"):
        glue = " ".join(f"{x:6.2f}" for x in res["glue_us"][name])
        print(f"  {name:<5} total µs/event {' '.join(f'{x:7.2f}' for x in res['total_us'][name])}"
              + (f"   glue µs/event {glue}" if args.split else ""))
    m = res["median"]
    ratios = [o - t for o, t in zip(res["total_us"]["other"], res["total_us"]["this"],
                                    strict=True)]
    print(f"  medians: total {m['other']['total']:.2f} -> {m['this']['total']:.2f} µs/event "
          f"(per round other - this: {' '.join(f'{x:.2f}' for x in ratios)})"
          + (f", glue {m['other']['glue']:.2f} -> {m['this']['glue']:.2f}" if args.split
             else ""))


if __name__ == "__main__":
    main()
