"""Business-path cost: CPU µs per event of what the worker does for business metrics
(``stream_app/app/business.py``), this tree against another stream_app tree, in lockstep in
one process over the seeded simulator workload.

Per event, as ``handle_event`` does after the engine: ``channel_from_tags`` and
``count_event`` (funnel counters, the partition's aggregator), and ``send_partials`` when it
returns points; every 5 s of simulated wall time the idle timer (``close_idle_windows``);
every second the anomaly agent's batch: the partials messages sent since (decoded as Faust
does), ``Merger.add_rows`` and ``observe_ready`` (merged points, gauges, detectors, alarms),
and every 30 s the detector snapshot. Wall time is simulated (``--rate`` events per second,
as the worker reads a backlog), so sends and timers fall on the same events in both trees.

The events are the workload's, in order, partitioned as the producer does (murmur2 of the
key over ``--partitions``); a pre-pass runs this tree's tag engine once for the
``first_channel`` tags the business path reads and drops duplicates, deletions and late
events as the worker does (not timed). Both trees then see every event back to back (who
goes first alternates), each part timed in CPU time (``time.process_time``); the run ends
with a check that both sent the same partials messages (bytes, in order), merged the same
points, published the same alert records, kept the same detector state and exposed the
same Prometheus values (``stream_app_biz_*``, anomaly gauges, alert counter).

Usage::

    git archive <rev> stream_app bench config topics | tar -x -C /tmp/base
    python -m bench.business_cost --against /tmp/base              # first 60k events
    python -m bench.business_cost --against /tmp/base --events 225000 --rounds 3 --no-gc

Example (a tiny run, this tree against itself):
    >>> from bench.workload import build
    >>> from stream_app.config import REPO_ROOT
    >>> res = compare(build(users=30, seed=3, days=2), REPO_ROOT, events=300, rounds=1)
    >>> res["same_result"], res["this"]["messages"] == res["other"]["messages"] > 0
    (True, True)
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import inspect
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.trees import no_registry, other_tree
from stream_app.clock import HybridClock
from stream_app.config import get_settings
from stream_app.contract import load_contract
from stream_app.errors import EventError
from stream_app.events import parse_event
from stream_app.kafka_io import partition_of
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset

VAR = Path(__file__).resolve().parent.parent / "var" / "bench"
PARTS = ("count", "send", "timer", "merge", "observe", "save")
#: Prometheus collectors of the business path whose values must match
COLLECTORS = ("BIZ_EVENTS", "BIZ_REVENUE", "BIZ_RATE", "METRIC_ANOMALY", "ANOMALY_SCORE",
              "ALERTS")
TIMER_S, BATCH_S, SAVE_S = 5.0, 1.0, 30.0


@dataclass(slots=True)
class Item:
    """One event as the business path sees it: the event, its source (topic, partition) and
    the tags of the user's state after the engine (None without state)."""

    ev: Any
    source: tuple[str, int]
    tags: dict[str, Any] | None


def prepare(records: list[Any], events: int, partitions: int = 4,
            rate: float = 4700.0) -> list[Item]:
    """The first ``events`` records as :class:`Item` s the business path gets: parsed,
    not late, not a duplicate or a deletion, with the user's tags after this tree's engine."""
    contract = load_contract()
    engine = TagEngine(load_ruleset(DEFAULT_RULES))
    grace = get_settings().late_grace_ms
    wall = [0.0]
    clock = HybridClock(wall=lambda: wall[0])
    states: dict[str, Any] = {}
    tag = "first_channel"
    out: list[Item] = []
    for i, (topic, key, value, _) in enumerate(records[:events]):
        wall[0] = i / rate
        try:
            ev = parse_event(value, contract.stream_of(topic))
        except EventError:
            continue
        source = (topic, partition_of(key, partitions))
        now = clock.now(source)
        if now is not None and ev.ts < now - grace:
            continue
        clock.observe(ev.ts, source)
        if ev.type == "deletion_requested":
            states.pop(ev.user_id, None)
            continue
        r = engine.on_event(states.get(ev.user_id), ev)
        if r.duplicate:
            continue
        if r.state is None:
            states.pop(ev.user_id, None)
            tags = None
        else:
            states[ev.user_id] = r.state
            value_ = (r.state.get("tags") or {}).get(tag)
            tags = {tag: value_} if value_ else {}
        out.append(Item(ev, source, tags))
    return out


def _import_tree(root: Path | None) -> tuple[Any, Any]:
    """``(stream_app.app.business, stream_app.metrics)`` of the tree under ``root`` (None:
    this process's own)."""
    if root is None:
        return (importlib.import_module("stream_app.app.business"),
                importlib.import_module("stream_app.metrics"))
    with other_tree(root), no_registry():
        return (importlib.import_module("stream_app.app.business"),
                importlib.import_module("stream_app.metrics"))


def _drive(coro: Any) -> Any:
    """Run a coroutine that never suspends (every await here returns at once)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the business path suspended")


async def _no_pause(seconds: float) -> None:
    return None


class _Runtime:
    def __init__(self, clock: HybridClock) -> None:
        self.clock = clock


class Side:
    """One tree's business path with a simulated wall clock; outputs folded into digests."""

    def __init__(self, mod: Any, metrics: Any, wall: Callable[[], float],
                 clock: HybridClock) -> None:
        self.mod, self.metrics = mod, metrics
        self._saved = {name: getattr(mod, name) for name in ("_wall", "_emit", "runtime")}
        mod._wall = wall
        mod._emit = self._emit
        mod.runtime = _Runtime(clock)
        self._clear()
        self.merger = mod.Merger(wall=wall)
        self.monitor = mod.AnomalyMonitor(spec=mod.spec)
        self.outbox: list[bytes] = []
        self.cpu = dict.fromkeys(PARTS, 0.0)
        self.digests = {k: hashlib.blake2b() for k in ("messages", "points", "alerts")}
        self.counts = dict.fromkeys(("messages", "points", "alerts"), 0)
        ready = self.merger.ready_windows

        def recorded() -> Iterator[Any]:   # the merged points, one list per window
            for pts in ready():
                self.counts["points"] += len(pts)
                self.digests["points"].update(orjson.dumps(
                    [(p.metric, p.tenant, p.channel, p.window, p.start_ms, p.end_ms, p.num,
                      p.den, p.kind) for p in pts]))
                yield pts
        self.merger.ready_windows = recorded

    def _clear(self) -> None:
        """No per-partition state, and the business collectors without children (so an
        earlier run in this process does not show in :meth:`final`)."""
        for name in ("aggregators", "_pending", "_last_sent", "_sent_wm", "_late_seen"):
            getattr(self.mod, name, {}).clear()     # (a tree may lack the later ones)
        for name in COLLECTORS:
            getattr(self.metrics, name).clear()
        # the module's caches of children: they would point at the removed ones
        self.metrics._CHILDREN.clear()
        for cache in getattr(self.metrics, "_BY_RAW", ()):
            cache.clear()

    def close(self) -> None:
        """Give the module back its clock, producer and runtime, without this run's state."""
        for name, value in self._saved.items():
            setattr(self.mod, name, value)
        self._clear()

    async def _emit(self, value: dict[str, Any]) -> None:
        self.outbox.append(orjson.dumps(value))

    async def _alert(self, metric: str, record: dict[str, Any]) -> None:
        self.counts["alerts"] += 1
        self.digests["alerts"].update(orjson.dumps([metric, record]))

    def event(self, item: Item, clock: Callable[[], float]) -> None:
        mod = self.mod
        t0 = clock()
        closed = mod.count_event(item.ev, item.source, mod.channel_from_tags(item.ev, item.tags))
        t1 = clock()
        self.cpu["count"] += t1 - t0
        if closed:
            _drive(mod.send_partials(closed, item.source))
            self.cpu["send"] += clock() - t1

    def timer(self, clock: Callable[[], float]) -> None:
        t0 = clock()
        timer = self.mod.close_idle_windows   # Faust's periodic wrapper around it
        _drive(inspect.unwrap(timer)())
        self.cpu["timer"] += clock() - t0

    def batch(self, clock: Callable[[], float]) -> None:
        """The anomaly agent's turn: the messages sent since its last one."""
        msgs, self.outbox = self.outbox, []
        for m in msgs:
            self.digests["messages"].update(m)
        self.counts["messages"] += len(msgs)
        t0 = clock()
        for raw in msgs:
            doc = orjson.loads(raw)
            self.merger.add_rows(str(doc["p"]), doc.get("wm"), doc["points"])
        t1 = clock()
        _drive(self.mod.observe_ready(self.merger, self.monitor, self._alert,
                                      clock=lambda: 0.0, pause=_no_pause))
        self.cpu["observe"] += clock() - t1
        self.cpu["merge"] += t1 - t0

    def save(self, clock: Callable[[], float]) -> None:
        t0 = clock()
        orjson.dumps(self.monitor.snapshot())
        self.cpu["save"] += clock() - t0

    def final(self) -> dict[str, Any]:
        """Outputs to compare: digests, counts, detector state and Prometheus values."""
        samples = []
        for name in COLLECTORS:
            for metric in getattr(self.metrics, name).collect():
                samples.extend((s.name, sorted(s.labels.items()), s.value)
                               for s in metric.samples if not s.name.endswith("_created"))
        return {"digests": {k: h.hexdigest() for k, h in self.digests.items()},
                "counts": dict(self.counts),
                "monitor": orjson.dumps(self.monitor.snapshot(), option=orjson.OPT_SORT_KEYS),
                "prometheus": sorted(samples, key=repr)}


def one_pass(sides: list[Side], items: list[Item], rate: float) -> None:
    """Every item through every side back to back (who goes first alternates), with the
    timer, the anomaly agent's batches and the snapshots on the simulated wall clock."""
    wall = _WALL
    clock = time.process_time
    next_timer, next_batch, next_save = TIMER_S, BATCH_S, SAVE_S
    shared = sides[0].mod.runtime.clock
    order = (sides, sides[::-1])
    for i, item in enumerate(items):
        wall[0] = now = i / rate
        shared.observe(item.ev.ts, item.source)
        for side in order[i & 1]:
            side.event(item, clock)
        if now >= next_timer:
            next_timer += TIMER_S
            for side in order[int(now / TIMER_S) & 1]:
                side.timer(clock)
        if now >= next_batch:
            next_batch += BATCH_S
            for side in order[int(now / BATCH_S) & 1]:
                side.batch(clock)
        if now >= next_save:
            next_save += SAVE_S
            for side in order[int(now / SAVE_S) & 1]:
                side.save(clock)
    for side in sides:
        side.timer(clock)
        side.batch(clock)


_WALL = [0.0]


def compare(wl: Any, other: Path, events: int = 60_000, rounds: int = 1,
            partitions: int = 4, rate: float = 4700.0) -> dict[str, Any]:
    """The business path of this tree against the one under ``other`` in lockstep: CPU µs
    per event of each part (median over ``rounds`` passes) and whether every output is the
    same."""
    items = prepare(wl.records, events, partitions, rate)
    trees = [_import_tree(other), _import_tree(None)]
    per: list[list[dict[str, float]]] = [[], []]
    finals: list[dict[str, Any]] = []
    same = True
    for _ in range(rounds):
        _WALL[0] = 0.0
        clock = HybridClock(wall=lambda: _WALL[0])
        sides = [Side(mod, met, lambda: _WALL[0], clock) for mod, met in trees]
        try:
            one_pass(sides, items, rate)
            finals = [s.final() for s in sides]
        finally:
            for s in sides:
                s.close()
        same = same and finals[0] == finals[1]
        for i, s in enumerate(sides):
            per[i].append(dict(s.cpu))
    n = len(items)
    out: dict[str, Any] = {"events": n, "rounds": rounds, "same_result": same,
                           "partitions": partitions, "rate": rate}
    for i, name in enumerate(("other", "this")):
        parts = {k: round(statistics.median(r[k] for r in per[i]) / n * 1e6, 2) for k in PARTS}
        totals = [sum(r.values()) / n * 1e6 for r in per[i]]
        out[name] = {"us_per_event": round(statistics.median(totals), 2),
                     "rounds": [round(t, 2) for t in totals], "parts": parts,
                     **finals[i]["counts"]}
    out["ratio_other_over_this"] = round(out["other"]["us_per_event"]
                                         / out["this"]["us_per_event"], 3)
    if not same:
        out["differs"] = [k for k in finals[0] if finals[0][k] != finals[1][k]]
    return out


def main(argv: list[str] | None = None) -> None:
    from bench.workload import cached  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m bench.business_cost",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--against", type=Path, required=True, metavar="DIR",
                   help="the stream_app tree to compare with (e.g. an older revision)")
    p.add_argument("--workload", type=Path,
                   default=VAR / "workload-u50000-s42-225000.pkl")
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--rate", type=float, default=4700.0,
                   help="events per second of simulated wall time (the worker's backlog rate)")
    p.add_argument("--no-gc", action="store_true", help="measure with the collector off")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args(argv)
    wl = cached(args.workload, lambda: None)
    if args.no_gc:
        gc.collect()
        gc.disable()
    res = compare(wl, args.against, events=args.events, rounds=args.rounds,
                  partitions=args.partitions, rate=args.rate)
    print(f"business path, lockstep over {res['events']:,} events, {res['rounds']} rounds: "
          f"{args.against} {res['other']['us_per_event']} CPU µs/event, this tree "
          f"{res['this']['us_per_event']} ({res['ratio_other_over_this']}x); "
          f"same outputs: {res['same_result']}" + (f" (differs: {res['differs']})"
                                                   if not res["same_result"] else ""))
    for name in ("other", "this"):
        r = res[name]
        print(f"  {name:<5} rounds {r['rounds']}; parts " + ", ".join(
            f"{k} {v}" for k, v in r["parts"].items())
            + f"; {r['messages']:,} messages, {r['points']:,} merged points, "
              f"{r['alerts']} alerts")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
