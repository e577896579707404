"""``python -m bench.run [--quick]``: every benchmark phase in one run, then the report.

Phases (each on a fresh embedded broker and Redis where it matters; tansu's memory grows):

1. ceiling: confluent-kafka produce/consume of the workload records;
2. pass-through: a Faust agent that decodes and forwards (the framework's cost);
3. stream-app with 1 worker, then its latency at 50% and 80% of that rate next to the
   broker-alone latency at the same rates (by default each block on a fresh broker, the
   worker's tables restored from its copied changelogs: ``bench.fresh_broker``); stream-app
   with 2 workers;
3b. rounds: ``--ratio-rounds`` - 1 more alternating runs of the pass-through and one worker
   (``bench.rounds``), so the 1 worker / pass-through target is judged on a median;
4. the Quix Streams peer (windowed per-user counting) on the same records;
5. recovery of a worker holding ``--state-users`` users, memory per user (worker, Redis),
   and Redis memory per user by key family of the projection layout;
6. serving: profile lookup and segment query latency over ``--serving-users`` users in Redis;
7. model cost: µs per event of feature building, scoring, learning; ``evaluate`` events/s.

Results: ``bench/results/<date>.json``, ``bench/RESULTS.md``, ``bench/results/*.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import fresh_broker, report, rounds
from bench.measure import CpuProbe, two_worker_ceiling
from bench.procs import REPO
from bench.profile import Sampler, render, summarize

VAR = REPO / "var" / "bench"
HUGE_GRACE = str(100 * 365 * 86_400_000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few-minute run (smaller sizes)")
    ap.add_argument("--users", type=int, default=50_000, help="simulated users of the workload")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--events", type=int, default=None,
                    help="events fed to each throughput phase (default: quick 25k, full 300k; "
                         "0: the whole workload)")
    ap.add_argument("--state-users", type=int, default=None,
                    help="users held by the worker in the recovery/memory phase "
                         "(default: quick 10k, full 1M)")
    ap.add_argument("--state-events-per-user", type=int, default=1,
                    help="events per user that build the recovery phase's state")
    ap.add_argument("--table-store", default="rocksdb://",
                    help="comma list of users-table stores for the recovery phase, each "
                         "measured on its own fresh stack: rocksdb:// (the worker's default), "
                         "memory:// (the first one's figures go to the report)")
    ap.add_argument("--state-seed", choices=("events", "changelog"), default="events",
                    help="how the recovery phase builds its users' state: their first events "
                         "through the pipeline, or states written straight to the changelog "
                         "(fast; the restart is measured the same way)")
    ap.add_argument("--serving-users", type=int, default=None,
                    help="users in Redis for the serving phase (default: quick 200k, full 1M)")
    ap.add_argument("--latency-seconds", type=float, default=None,
                    help="seconds of paced load per latency point (quick 10, full 60)")
    ap.add_argument("--latency-blocks", type=int, default=2,
                    help="alternating blocks per stream-app latency mode (replayed event "
                         "time, event time = produce time), in ABBA order")
    ap.add_argument("--latency-modes", default="replay,realtime",
                    help="stream-app latency modes measured: replay (the simulator's event "
                         "times, far faster than wall time), realtime (event time = produce "
                         "time); one mode alone: a broker-alone block before each of its "
                         "blocks")
    ap.add_argument("--latency-pin", action="store_true",
                    help="during the latency points, run the worker on CPU 0 and the broker, "
                         "Redis and the benchmark's producer and consumer on the others (as "
                         "in production, where the broker has machines of its own)")
    ap.add_argument("--latency-broker", choices=("same", "fresh"), default="fresh",
                    help="same: the latency blocks run on the broker the 1-worker throughput "
                         "phase filled; fresh: before each stream-app block the stack moves "
                         "to a new broker, the worker's tables restored from its copied "
                         "changelogs (bench.fresh_broker: tansu's cost per record grows with "
                         "what it has taken)")
    ap.add_argument("--latency-warmup-s", type=float, default=10.0,
                    help="with --latency-broker fresh: seconds of live traffic at the point's "
                         "rate after each restart, before its blocks (reported apart as the "
                         "restart's transient)")
    ap.add_argument("--latency-broker-layout", default="inputs,one",
                    help="comma list of the broker-alone blocks' topic layouts; the first is "
                         "the target's reference, the others are measured right after it as "
                         "references: inputs (each record to a copy of its own input topic, "
                         "as the worker reads them), one (every record to one topic). tansu's "
                         "cost per fetch grows with the batches the partitions it reads hold, "
                         "so the layout moves the broker-alone p99 (docs/PERFORMANCE.md item 44)")
    ap.add_argument("--fetch-wait-ms", type=int, default=50,
                    help="consumer fetch wait of the workers and the broker-alone consumer")
    ap.add_argument("--ratio-rounds", type=int, default=3,
                    help="alternating rounds of the pass-through and one worker for the "
                         "1 worker / pass-through target, judged on their median (phase "
                         "rounds; round 1 is the passthrough and pipeline phases)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--workers", default="1,2", help="stream-app worker counts to measure")
    ap.add_argument("--phases", default="all",
                    help="comma list of: ceiling,passthrough,pipeline,rounds,latency,quix,recovery,"
                         "redis,serving,model (default all)")
    ap.add_argument("--profile", action="store_true",
                    help="sample every stream-app worker of the pipeline phase with py-spy "
                         "(summaries in <out>/profile-<date>-<n>w.txt)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args(argv)
    if args.latency_blocks < 1:
        ap.error("--latency-blocks must be at least 1")
    modes = {x.strip() for x in args.latency_modes.split(",")}
    if modes - {"replay", "realtime"}:
        ap.error("--latency-modes takes replay, realtime or both")
    args.latency_mode_list = tuple(m for m in ("replay", "realtime") if m in modes)
    layouts = [x.strip() for x in args.latency_broker_layout.split(",") if x.strip()]
    if not layouts or set(layouts) - {"inputs", "one"} or len(set(layouts)) < len(layouts):
        ap.error("--latency-broker-layout takes inputs, one or both (each once)")
    args.broker_layouts = tuple(layouts)
    args.worker_counts = [int(x) for x in args.workers.split(",") if x.strip()]
    if args.events is None:
        args.events = 25_000 if args.quick else 300_000
    if args.state_users is None:
        args.state_users = 10_000 if args.quick else 1_000_000
    if args.serving_users is None:
        args.serving_users = 200_000 if args.quick else 1_000_000
    if args.latency_seconds is None:
        args.latency_seconds = 10.0 if args.quick else 60.0
    return args


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


#: events/s one worker is assumed to reach at most when the workload is sized for the latency
#: points (each point sends 50% or 80% of the measured rate for ``--latency-seconds`` in each
#: of its two modes)
LATENCY_RATE_BOUND = 8_000


def latency_room(latency_seconds: float, warmup_s: float = 0.0,
                 rate_bound: float = LATENCY_RATE_BOUND) -> int:
    """Events the latency points may take after the throughput head of the workload: at
    each load, ``latency_seconds`` in each of the two modes, and with a fresh broker per
    block a ``warmup_s`` warm-up before each of the four blocks.

    Example:
        >>> latency_room(10.0), latency_room(60.0), latency_room(10.0, warmup_s=10.0)
        (208000, 1248000, 624000)
    """
    per_load = 2 * latency_seconds + 4 * warmup_s
    return max(200_000, int((0.5 + 0.8) * per_load * rate_bound))


def workload(args: argparse.Namespace):  # noqa: ANN201 - bench.workload.Workload
    from bench.workload import build, cached  # noqa: PLC0415

    n = args.events or None
    # the head of the run plus room for the latency phases' continuation
    warmup = args.latency_warmup_s if args.latency_broker == "fresh" else 0.0
    extra = 0 if n is None else n + latency_room(args.latency_seconds, warmup)
    path = VAR / f"workload-u{args.users}-s{args.seed}-{extra or 'all'}.pkl"
    return cached(path, lambda: build(args.users, args.seed, max_events=extra or None))


def fresh_stack(name: str, args: argparse.Namespace, env: dict[str, str] | None = None):  # noqa: ANN201
    from stream_app.services.stack import Stack  # noqa: PLC0415

    s = Stack(workdir=VAR / name, workers=0, partitions=args.partitions,
              env={"STREAM_APP_FETCH_WAIT_MS": str(args.fetch_wait_ms),
                   "STREAM_APP_LATE_GRACE_MS": HUGE_GRACE, **(env or {})})
    s.start_services()
    return s


def phase_ceiling(args, wl, res) -> None:  # noqa: ANN001
    from bench import ceiling  # noqa: PLC0415

    recs = wl.records[: args.n]
    s = fresh_stack("ceiling", args)
    try:
        res["ceiling"] = ceiling.throughput(s.bootstrap, recs, args.partitions)
    finally:
        s.stop()


def single_throughput(args, recs, system: str, stack_name: str) -> dict[str, Any]:  # noqa: ANN001
    """One throughput run of ``system`` (``passthrough`` or ``stream_app_1w``: one worker)
    on a fresh stack named ``stack_name``."""
    from bench import systems  # noqa: PLC0415

    module, name = (("bench.passthrough_app", "passthrough") if system == "passthrough"
                    else ("stream_app", "worker"))
    s = fresh_stack(stack_name, args)
    try:
        ws, ready_s = systems.start_workers(s, module, 1, name)
        r = systems.throughput(s, ws, recs)
        r["join_s"] = round(ready_s, 1)
        systems.stop_all(ws)
    finally:
        s.stop()
    return r


def profiles(args, samplers: list[Sampler], n_workers: int,  # noqa: ANN001
             r: dict) -> list[dict]:
    """Stop the workers' samplers; each one's summary, with its samples per 1,000 events
    (at the sampling rate, comparable between the 1- and 2-worker runs), written to
    ``profile-<date>-<n>w.txt``."""
    out, text = [], []
    per_worker = r.get("per_worker") or []
    for i, sampler in enumerate(samplers, 1):
        sampler.stop()
        summary = summarize(sampler.out)
        events = per_worker[i - 1] if len(per_worker) >= i else None
        if events:
            summary["samples_per_1k_events"] = round(summary["total"] / events * 1000, 2)
        out.append(summary)
        text.append(f"worker-{i} of {n_workers} ({events or '?'} events)\n" + render(summary))
    (args.out / f"profile-{args.date}-{n_workers}w.txt").write_text("\n\n".join(text) + "\n")
    log(f"profile of the {n_workers}-worker run:\n" + "\n\n".join(text))
    return out


def phase_passthrough(args, wl, res) -> None:  # noqa: ANN001
    res["passthrough"] = single_throughput(args, wl.records[: args.n], "passthrough",
                                           "passthrough")


def phase_pipeline(args, wl, res) -> None:  # noqa: ANN001
    from bench import systems  # noqa: PLC0415

    recs = wl.records[: args.n]
    for n_workers in args.worker_counts:
        s = fresh_stack(f"pipeline-{n_workers}w", args)
        try:
            ws, ready_s = systems.start_workers(s, "stream_app", n_workers, "worker")
            log(f"stream-app x{n_workers}: ready after {ready_s:.0f}s; feeding {len(recs)}")
            samplers = ([Sampler(w.process.pid,
                                 VAR / f"profile-{args.date}-{n_workers}w-{i + 1}.raw").start()
                         for i, w in enumerate(ws)] if args.profile else [])
            lag = systems.stream_app_lag(s)
            probe = CpuProbe({**{w.name: w.process.pid for w in ws},
                              "tansu": s.broker.process.pid,
                              "redis-server": s.redis.process.pid})
            r = systems.throughput(s, ws, recs, lag=lag, probe=probe)
            if samplers:
                res[f"profile_{n_workers}w"] = profiles(args, samplers, n_workers, r)
            r["join_s"] = round(ready_s, 1)
            res[f"stream_app_{n_workers}w"] = r
            cpu = r.get("cpu", {}).get("run", {})
            log(f"stream-app x{n_workers}: {r['eps']} events/s; CPU µs/event "
                f"{cpu.get('us_per_event')}, outside {cpu.get('outside_us_per_event')}, "
                f"idle share {cpu.get('idle_share')}")
            if n_workers == 1 and "latency" in args.phase_set and r["eps"] > 0:
                renewer = None
                if args.latency_broker == "fresh":
                    renewer = fresh_broker.BrokerRenewer(
                        s, ws, lag, make_lag=systems.stream_app_lag, log=log,
                        start_workers=lambda s=s: systems.start_workers(
                            s, "stream_app", 1, "worker")[0])
                res["latency"] = latency_points(args, wl, s, lag, r["eps"], probe.pids,
                                                renewer)
                if renewer is not None:
                    ws, lag = renewer.workers, renewer.lag
            lag.close()
            systems.stop_all(ws)
        finally:
            s.stop()
    if "loads" in res.get("latency", {}):
        passthrough_latency(args, wl, res["latency"])
    one, two = res.get("stream_app_1w"), res.get("stream_app_2w")
    if one and two and two.get("cpu"):
        res["two_worker_ceiling"] = ceiling_of(one, two, _cpus())


def phase_rounds(args, wl, res) -> None:  # noqa: ANN001
    """More alternating rounds of the pass-through and one worker (``bench.rounds``): round
    1 is this run's pass-through and pipeline phases, rounds 2..``--ratio-rounds`` run both
    again on fresh stacks, each round in the opposite order of the one before."""
    first = {k: res.get(k) for k in rounds.SYSTEMS}
    if not all(first.values()):
        log("rounds: needs this run's passthrough and pipeline phases; skipped")
        return
    recs = wl.records[: args.n]
    keep = ("eps", "cpu_us_per_event", "join_s")
    done = [{k: {f: v.get(f) for f in keep} for k, v in first.items()}]
    for i in range(2, args.ratio_rounds + 1):
        one: dict[str, Any] = {}
        for system in rounds.order(i):
            r = single_throughput(args, recs, system, f"round-{system}")
            one[system] = {f: r.get(f) for f in keep}
            log(f"round {i}: {system} {r['eps']} events/s")
        done.append(one)
        log(f"round {i}: 1 worker / pass-through {rounds.ratio(one)}")
    res["ratio_rounds"] = {"pairs": done, **rounds.summarize(done)}
    log(f"1 worker / pass-through over {len(done)} rounds: {res['ratio_rounds']['ratios']}, "
        f"median {res['ratio_rounds']['median']}")


def ceiling_of(one: dict[str, Any], two: dict[str, Any], cores: int) -> dict[str, Any]:
    """The 2-worker CPU-bound ceiling from the 2-worker run's CPU per event (all measured
    processes plus work outside the benchmark, steady part), and the measured ratio as a
    share of it; ``ratio_bound_machine_alone`` leaves the outside work out (the bound on a
    machine running nothing else).

    Example:
        >>> w = {"us_per_event": {"worker-1": 700.0, "worker-2": 700.0, "tansu": 400.0}}
        >>> one = {"eps": 700}
        >>> two = {"eps": 1000, "cpu": {"steady": {**w, "outside_us_per_event": 100.0,
        ...        "total_us_per_event": 1900.0, "idle_share": 0.02, "busy_cores": 1.96}}}
        >>> c = ceiling_of(one, two, 2)
        >>> c["eps"], c["ratio_bound"], c["measured_share_of_bound"], c["ratio_bound_machine_alone"]
        (1052.6, 1.504, 0.95, 1.587)
    """
    st = two["cpu"]["steady"]
    ours = sum(st["us_per_event"].values())
    with_outside = two_worker_ceiling(one["eps"], st["total_us_per_event"], cores)
    alone = two_worker_ceiling(one["eps"], ours, cores)
    measured = two["eps"] / one["eps"] if one["eps"] else 0.0
    # 2 W / (W + O) from the 1-worker run's CPU per event alone (W: worker, O: the rest of
    # the benchmark): the bound if 2 workers cost per event what 1 does, whatever else runs
    st1 = _get_path(one, "cpu", "steady", "us_per_event") or {}
    w1 = sum(v for k, v in st1.items() if k.startswith("worker"))
    o1 = sum(v for k, v in st1.items() if not k.startswith("worker"))
    formula = round(cores * w1 / (w1 + o1), 3) if w1 else None
    return {"ratio_bound_formula_1w_costs": formula,
            "workers_us_per_event_1w": round(w1, 1), "others_us_per_event_1w": round(o1, 1),
            "cores": cores, "us_per_event_all": st["total_us_per_event"],
            "us_per_event_benchmark": round(ours, 1),
            "workers_us_per_event": round(sum(v for k, v in st["us_per_event"].items()
                                              if k.startswith("worker")), 1),
            "idle_share_2w": st.get("idle_share"),
            "eps": with_outside["eps"], "ratio_bound": with_outside["ratio"],
            "ratio_bound_machine_alone": alone["ratio"],
            "measured_ratio": round(measured, 3),
            "measured_share_of_bound": round(measured / with_outside["ratio"], 3)
            if with_outside["ratio"] else None}


def _machine_load(probe: CpuProbe, broker: str = "tansu") -> dict[str, Any]:
    """Busy cores of the machine and of work outside the benchmark between the first and the
    last snapshot of ``probe`` (taken around a latency point: latency on a busy shared
    machine is not latency of the code), the broker's CPU per event of the point (the
    embedded broker shares the cores, and its cost per record grows with what it has taken)
    and the workers' (live traffic costs more per event than a backlog: compare with the
    throughput phase's figure).

    Example:
        >>> p = CpuProbe({}, self_name=None)
        >>> p.snaps = [(0.0, 0, {}, (10.0, 5.0)), (10.0, 100, {}, (25.0, 10.0))]
        >>> _machine_load(p)
        {'busy_cores': 1.5, 'idle_share': 0.25, 'outside_cores': 1.5,
         'broker_us_per_event': None, 'worker_us_per_event': None}
    """
    w = probe.window(0, len(probe.snaps) - 1)
    outside = w["outside_us_per_event"] * max(w["events"], 1) / 1e6 / max(w["seconds"], 1e-9)
    workers = [v for k, v in w["us_per_event"].items() if k.startswith("worker")]
    return {"busy_cores": w["busy_cores"], "idle_share": w["idle_share"],
            "outside_cores": round(outside, 2),
            "broker_us_per_event": w["us_per_event"].get(broker),
            "worker_us_per_event": round(sum(workers), 1) if workers else None}


def _get_path(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def settle(lag, sweep_s: float | None = None, *, quiet_ticks: int = 50,  # noqa: ANN001
           max_sweeps: int = 60, sleep: Callable[[float], None] = time.sleep) -> float:
    """Wait until the group has caught up, then sweep by sweep until a clock sweep sent at
    most ``quiet_ticks`` ticks and the group caught up again: a replayed block moves the
    worker's clock by hours, and the ticks of the users that fell due go out at the next
    sweeps, at most ``MAX_TICKS_PER_SWEEP`` (20k) each; without this they landed in the next
    block (a real-time block then measured the replay's tick burst). ``lag.ticks()``: the
    ticks topic's end offsets (a lag without it waits one sweep). Returns the seconds waited.

    Example (a fake group whose sweeps send 20k, 20k, 5k, then 10 ticks):
        >>> class Lag:
        ...     sent = iter([0, 20_000, 40_000, 45_000, 45_010, 45_020])
        ...     def wait_zero(self, timeout): pass
        ...     def ticks(self): return next(self.sent)
        >>> naps = []
        >>> _ = settle(Lag(), 5.0, sleep=naps.append)
        >>> len(naps)                       # four sweeps: the fourth sent 10 ticks
        4
    """
    from stream_app.config import get_settings  # noqa: PLC0415

    started = time.time()
    sweep = (sweep_s if sweep_s is not None else get_settings().sweep_interval_s) + 0.5
    ticks = getattr(lag, "ticks", None)
    lag.wait_zero(300)
    before = ticks() if ticks else 0
    for _ in range(max_sweeps):
        sleep(sweep)
        lag.wait_zero(300)
        if ticks is None:
            break
        now = ticks()
        if now - before <= quiet_ticks:
            break
        before = now
    return time.time() - started


def block_order(blocks: int, modes: tuple[str, ...] = ("replay", "realtime")) -> list[str]:
    """The latency modes in ABBA order over ``blocks`` pairs: a load on the shared machine
    that drifts during the point falls on both modes alike (one mode: ``blocks`` of it).

    Example:
        >>> block_order(3)
        ['replay', 'realtime', 'realtime', 'replay', 'replay', 'realtime']
        >>> block_order(2, ("realtime",))
        ['realtime', 'realtime']
    """
    if len(modes) == 1:
        return list(modes) * blocks
    out: list[str] = []
    for b in range(blocks):
        out += ["replay", "realtime"] if b % 2 == 0 else ["realtime", "replay"]
    return out


def merge_blocks(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One latency series from the blocks of a mode: percentiles over all their samples,
    counts summed, the event-time speed-up and the machine load averaged by events.

    Example:
        >>> a = {"rate": 100, "achieved_rate": 99, "events": 10, "values": [1.0, 2.0],
        ...      "event_time_speedup": 3000.0, "waited_for_idle_s": 1.0, "drained_s": 4.0,
        ...      "machine": {"busy_cores": 2.0, "idle_share": 0.0, "outside_cores": 1.0}}
        >>> b = {**a, "values": [3.0], "event_time_speedup": 1000.0,
        ...      "machine": {"busy_cores": 1.0, "idle_share": 0.5, "outside_cores": 0.0}}
        >>> m = merge_blocks([a, b])
        >>> m["matched"], m["p50"], m["event_time_speedup"], m["machine"], m["blocks"]
        (3, 2.0, 2000.0, {'busy_cores': 1.5, 'idle_share': 0.25, 'outside_cores': 0.5,
                          'broker_us_per_event': None, 'worker_us_per_event': None}, 2)
    """
    from bench.measure import percentiles  # noqa: PLC0415

    values = [v for p in parts for v in p["values"]]
    seen = [v for p in parts for v in p.get("visible_values", ())]
    events = sum(p["events"] for p in parts)

    def avg(get: Callable[[dict[str, Any]], Any]) -> float | None:
        xs = [(get(p), p["events"]) for p in parts if get(p) is not None]
        w = sum(n for _, n in xs)
        return round(sum(x * n for x, n in xs) / w, 3) if w else None

    machine = {k: avg(lambda p, k=k: _get_path(p, "machine", k))
               for k in ("busy_cores", "idle_share", "outside_cores", "broker_us_per_event",
                         "worker_us_per_event")}
    return {"rate": parts[0]["rate"], "achieved_rate": round(avg(lambda p: p["achieved_rate"])),
            "events": events, "matched": len(values), **percentiles(values),
            **({"visible": percentiles(seen)} if seen else {}),
            "event_time_speedup": avg(lambda p: p["event_time_speedup"]),
            "waited_for_idle_s": round(sum(p["waited_for_idle_s"] for p in parts), 1),
            "drained_s": round(sum(p["drained_s"] for p in parts), 1),
            "blocks": len(parts), "machine": machine,
            **({"p99_quarters": [p["p99_quarters"] for p in parts]}
               if all("p99_quarters" in p for p in parts) else {})}


def latency_points(args, wl, s, lag, eps: float,  # noqa: ANN001
                   pids: dict[str, int] | None = None,
                   renewer: fresh_broker.BrokerRenewer | None = None) -> dict[str, Any]:
    """At 50% and 80% of the 1-worker rate: broker-alone latency and stream-app in two
    modes, in alternating blocks (:func:`block_order`; a broker-alone block before each
    pair, compared with the pair's real-time block in :func:`pair_ratios`): the workload's
    event times replayed (the simulator's clock, far faster than wall time), and each event
    re-stamped at its produce time (live traffic). Each block starts once the group has caught
    up (lag 0, anomaly partials included) across one clock sweep (:func:`settle`) and reads
    outputs until it caught up again. ``--latency-pin``: the worker on a CPU of its own meanwhile
    (:func:`_pin_latency`). ``renewer`` (``--latency-broker fresh``): the stack moves to a
    fresh broker before each stream-app block, and a broker-alone block runs before each
    real-time block (:func:`_broker_block_before`, :mod:`bench.fresh_broker`). Each
    broker-alone block runs once per ``--latency-broker-layout``, the same records each time
    on topics of its own; the first layout's blocks are the target's reference."""
    pinned = _pin_latency(pids or {}) if getattr(args, "latency_pin", False) else None
    try:
        return {**_latency_points(args, wl, s, lag, eps, pids, renewer),
                **({"pinned": pinned} if pinned else {})}
    finally:
        if pinned is not None:
            _pin_latency(renewer.pids() if renewer else pids or {}, unpin=True)


def _pin_latency(pids: dict[str, int], unpin: bool = False) -> dict[str, list[int]]:
    """Workers on CPU 0, everything else of the run (broker, Redis, this process) on the
    other CPUs; ``unpin``: all of them back on every CPU. Returns the CPU sets used."""
    import os  # noqa: PLC0415

    from bench.procs import pin  # noqa: PLC0415

    every = set(range(os.cpu_count() or 1))
    rest = every - {0} or every
    used: dict[str, list[int]] = {}
    for name, pid in {**pids, "bench process": os.getpid()}.items():
        cpus = every if unpin else ({0} if name.startswith("worker") else rest)
        pin(pid, cpus)
        used[name] = sorted(cpus)
    return used


def _broker_block_before(i: int, mode: str, modes: tuple[str, ...], fresh: bool) -> bool:
    """Whether block ``i`` of the order gets a broker-alone block before it: on a fresh
    broker per block, each real-time block (each block if real time is not measured); on
    one broker, each pair of blocks (each block with one mode).

    Example:
        >>> [_broker_block_before(i, m, ("replay", "realtime"), f)
        ...  for f in (False, True) for i, m in enumerate(block_order(2))]
        [True, False, True, False, False, True, True, False]
    """
    if fresh:
        return mode == "realtime" or "realtime" not in modes
    return i % len(modes) == 0


def pair_ratios(broker: list[dict[str, Any]], live: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The real-time p99 of each block over the p99 of the broker-alone block measured just
    before it (the same broker, minutes apart at most): one verdict per block pair, beside
    the pooled one, since a single p99 swings between runs on a shared machine.

    Example:
        >>> pair_ratios([{"p99": 40.0}, {"p99": 50.0}], [{"p99": 60.0}, {"p99": 120.0}])
        [{'broker_p99': 40.0, 'realtime_p99': 60.0, 'ratio': 1.5}, \
{'broker_p99': 50.0, 'realtime_p99': 120.0, 'ratio': 2.4}]
    """
    return [{"broker_p99": b["p99"], "realtime_p99": r["p99"],
             "ratio": round(r["p99"] / b["p99"], 3) if b["p99"] else None}
            for b, r in zip(broker, live, strict=False)]


def _broker_block(b: dict[str, Any]) -> dict[str, Any]:
    """A broker-alone block in the shape :func:`merge_blocks` takes."""
    return {**b, "events": b["n"], "event_time_speedup": 1.0, "waited_for_idle_s": 0.0,
            "drained_s": 0.0}


def _latency_points(args, wl, s, lag, eps: float,  # noqa: ANN001
                    pids: dict[str, int] | None,
                    renewer: fresh_broker.BrokerRenewer | None = None) -> dict[str, Any]:
    from bench import ceiling, systems  # noqa: PLC0415
    from bench.workload import WallStamper, event_time_speedup, event_ts  # noqa: PLC0415

    lat: dict[str, Any] = {}
    pos = args.n
    # the worker's clock: the last event time it saw, then wall time since (HybridClock)
    last = (event_ts(wl.records[pos - 1]), time.time())
    modes = args.latency_mode_list
    layouts = getattr(args, "broker_layouts", ("one",))
    order = block_order(args.latency_blocks, modes)
    loads = (0.5, 0.8)
    per_block = {load: max(int(eps * load * args.latency_seconds) // args.latency_blocks, 1)
                 for load in loads}
    # each stream-app block takes fresh events (the broker blocks reuse the next ones)
    wanted = sum(per_block.values()) * len(order)
    if renewer is not None:   # a warm-up after each restart (one before each block)
        wanted += sum(int(eps * load * args.latency_warmup_s) for load in loads) * len(order)
    left = len(wl.records) - pos
    if left < len(order):
        log(f"latency: not measured: the workload has {left:,} events after the throughput "
            "head (use a larger --users or a smaller --events)")
        return {"skipped": f"{left} events left after the throughput head"}
    scale = min(1.0, left / wanted) if wanted else 1.0
    if scale < 1.0:
        log(f"latency: the workload has {left:,} events after the throughput head, the points "
            f"want {wanted:,}: every block and warm-up shortened to {scale:.0%} of its "
            "length")
    for load in loads:
        rate = eps * load
        m = max(int(per_block[load] * scale), 1)
        parts: dict[str, list[dict[str, Any]]] = {"broker": [], "replay": [], "realtime": [],
                                                  **{f"broker_{x}": [] for x in layouts[1:]}}
        for i, mode in enumerate(order):
            if renewer is not None:
                # a broker of its own for every stream-app block (a replay block leaves the
                # broker and the clock hours of event time ahead, item 36: the real-time
                # block after it measured that aftermath), then live traffic at this rate:
                # a restarted worker's first seconds are not its steady state (start-up
                # reads, the ticks of users who fell due meanwhile); that warm-up's latency
                # is kept apart as the restart's transient
                move = renewer.renew()
                lag, pids = renewer.lag, renewer.pids()
                if getattr(args, "latency_pin", False):
                    _pin_latency(pids)
                n_warm = int(rate * args.latency_warmup_s * scale)
                if n_warm:
                    settle(lag)
                    warm = wl.records[pos:pos + n_warm]
                    pos += len(warm)
                    move["warmup"], last = _warm_up(s, lag, warm, rate, last)
            if _broker_block_before(i, mode, modes, fresh=renewer is not None):
                # the broker alone next to each real-time block: the embedded broker's cost
                # per record grows with what it has taken (docs/PERFORMANCE.md), so each
                # real-time block is compared with a broker block measured just before it;
                # the same records in each layout, each on topics of its own
                for k, layout in enumerate(layouts):
                    settle(lag)
                    probe = CpuProbe(pids or {})
                    probe.snap(0)
                    b = ceiling.latency(s.bootstrap, wl.records[pos:pos + m], args.partitions,
                                        rate, args.fetch_wait_ms, block=i // len(modes),
                                        keep_values=True, layout=layout)
                    probe.snap(m)
                    b["machine"] = _machine_load(probe)
                    parts["broker" if k == 0 else f"broker_{layout}"].append(_broker_block(b))
            live = wl.records[pos:pos + m]
            pos += m
            waited = settle(lag)
            stamper = WallStamper(continue_from=last) if mode == "realtime" else None
            probe = CpuProbe(pids or {})
            probe.snap(0)
            p = systems.pipeline_latency(s, live, rate, stamp=stamper, lag=lag, drain_s=3.0,
                                         keep_values=True)
            probe.snap(m)
            p["machine"] = _machine_load(probe)
            p["waited_for_idle_s"] = round(waited, 1)
            sent = p.pop("last_sent_at", None) or time.time()
            if mode == "replay":
                p["event_time_speedup"] = event_time_speedup(live, rate)
                last = (event_ts(live[-1]), sent)
            else:
                p["event_time_speedup"] = 1.0
                last = (stamper.last, sent)
            parts[mode].append(p)
        broker = merge_blocks(parts["broker"])
        point: dict[str, Any] = {"broker": {**broker, "n": broker["matched"]}}
        for x in layouts[1:]:
            if parts[f"broker_{x}"]:
                ref = merge_blocks(parts[f"broker_{x}"])
                point[f"broker_{x}"] = {**ref, "n": ref["matched"]}
        for mode in modes:
            point[f"stream_app_{mode}"] = merge_blocks(parts[mode])
        point["pairs"] = pair_ratios(parts["broker"], parts["realtime"])
        point["block_events"] = m
        point["block_seconds"] = round(m / rate, 1)
        point["modes"] = list(modes)
        lat[f"{int(load * 100)}"] = point
        rep = point.get("stream_app_replay")
        live_p99 = (point.get("stream_app_realtime") or {}).get("p99")
        refs = "".join(f" ({x} layout: {point[f'broker_{x}']['p99']} ms)"
                       for x in layouts[1:] if f"broker_{x}" in point)
        log(f"latency at {load:.0%}: broker p99 {broker['p99']} ms ({layouts[0]} layout)"
            f"{refs}, stream-app p99 "
            + (f"replayed (x{rep['event_time_speedup']:g}) {rep['p99']} ms, " if rep else "")
            + f"real-time {live_p99} ms; per block pair (real-time / broker) "
            f"{[x['ratio'] for x in point['pairs']]}")
    return {"fetch_wait_ms": args.fetch_wait_ms, "loads": lat, "blocks": args.latency_blocks,
            "broker_layouts": list(layouts),
            "broker": "fresh" if renewer is not None else "same",
            **({"moves": renewer.moves} if renewer is not None else {}),
            "start": "send = wall time just before produce() (the input's CreateTime is "
                     "taken in the same call); end = CreateTime of the first output "
                     "(worker) / receipt by the consumer (broker alone); one machine clock",
            "broker_blocks": "the broker alone is measured in blocks too, one before each "
                             "pair of stream-app blocks; pairs: each real-time block's p99 "
                             "over the broker block's before it",
            "realtime_clock": "produce wall time, offset to continue the worker's clock"}


def _warm_up(s, lag, records, rate: float,  # noqa: ANN001
             last: tuple[int, float]) -> tuple[dict[str, Any], tuple[int, float]]:
    """Live traffic (event time = produce time, continuing the worker's clock from
    ``last``) at ``rate`` after a restart: the latency of these events is the restart's
    transient, reported apart. Returns it and the worker's clock after it."""
    from bench import systems  # noqa: PLC0415
    from bench.workload import WallStamper  # noqa: PLC0415

    stamper = WallStamper(continue_from=last)
    p = systems.pipeline_latency(s, records, rate, stamp=stamper, lag=lag, drain_s=3.0)
    sent = p.pop("last_sent_at", None) or time.time()
    log(f"warm-up after the restart: {len(records):,} events at {rate:.0f}/s, p99 {p['p99']} "
        f"ms (p99 by quarter {p.get('p99_quarters')})")
    return p, (stamper.last, sent)


def passthrough_latency(args, wl, lat: dict[str, Any]) -> None:  # noqa: ANN001
    """The Faust pass-through (an agent that decodes and forwards, on its own fresh stack) fed
    at the rates of the stream-app latency points, event time = produce time: what Faust's
    consumer path alone costs at that load (``passthrough_realtime`` of each load). Its
    broker is prepared as stream-app's was: with ``--latency-broker same`` it first takes the
    throughput backlog (a broker that has taken 25k events answers fetches differently from
    an empty one); with ``fresh`` each load has a new stack and ``--latency-warmup-s`` of
    traffic at its rate first."""
    from bench import systems  # noqa: PLC0415
    from bench.passthrough_app import OUT_TOPIC  # noqa: PLC0415
    from bench.workload import WallStamper, event_ts  # noqa: PLC0415
    from stream_app.contract import load_contract  # noqa: PLC0415

    fresh = getattr(args, "latency_broker", "same") == "fresh"
    pos = args.n
    s = lag = None

    def measure(records: list[Any], rate: float) -> dict[str, Any]:
        lag.wait_zero(300)
        stamper = WallStamper(continue_from=(event_ts(records[0]), time.time()))
        p = systems.pipeline_latency(
            s, records, rate, stamp=stamper, lag=lag, drain_s=3.0, outputs=(OUT_TOPIC,),
            trigger=lambda rec: rec.get("event_id"))
        p.pop("last_sent_at", None)
        return p

    try:
        for load, point in lat["loads"].items():
            rate = (point.get("stream_app_realtime") or point["stream_app_replay"])["rate"]
            if s is None or fresh:
                if s is not None:
                    lag.close()
                    s.stop()
                s = fresh_stack("passthrough-latency", args)
                ws, _ = systems.start_workers(s, "bench.passthrough_app", 1, "passthrough")
                lag = systems.GroupLag(s.bootstrap, "bench-passthrough",
                                       list(load_contract().input_topics()), s.partitions)
                if not fresh:
                    systems.throughput(s, ws, wl.records[: args.n])
                elif (n_warm := int(rate * args.latency_warmup_s)) > 0:
                    measure(wl.records[pos:pos + n_warm], rate)
                    pos += n_warm
            n = max(int(rate * args.latency_seconds / 2), 1)
            live = wl.records[pos:pos + n]
            pos += n
            point["passthrough_realtime"] = measure(live, rate)
            log(f"latency at {load}%: Faust pass-through p99 "
                f"{point['passthrough_realtime']['p99']} ms")
    finally:
        if lag is not None:
            lag.close()
        if s is not None:
            s.stop()


def phase_quix(args, wl, res) -> None:  # noqa: ANN001
    from bench import systems  # noqa: PLC0415

    s = fresh_stack("quix", args)
    try:
        res["quix"] = systems.quix_throughput(s, wl.records[: args.n], args.fetch_wait_ms)
    finally:
        s.stop()


def phase_recovery(args, wl, res) -> None:  # noqa: ANN001
    from bench import recovery  # noqa: PLC0415

    stores = [x.strip() for x in args.table_store.split(",") if x.strip()]
    by_store = {}
    for store in stores:
        log(f"recovery: table store {store}")
        by_store[store] = recovery.run(lambda: fresh_stack("recovery", args),
                                       args.state_users, per_user=args.state_events_per_user,
                                       log=log, table_store=store, seed=args.state_seed)
    res["recovery"] = by_store[stores[0]]
    if len(stores) > 1:
        res["recovery_by_store"] = by_store


def phase_redis(args, wl, res) -> None:  # noqa: ANN001
    from bench import redis_memory  # noqa: PLC0415

    # at least 100k events (~9k users): per-key costs (bitmaps, shape table) are shared by the
    # users, so a small run overstates the bytes per user of a real population
    res["redis_layout"] = redis_memory.run(VAR / "redis-layout", wl.records,
                                           min(len(wl.records), max(args.n, 100_000)))


def phase_serving(args, wl, res) -> None:  # noqa: ANN001
    from bench import serving  # noqa: PLC0415

    s = fresh_stack("serving", args)
    try:
        res["serving"] = serving.run(s, wl, args.serving_users, log=log)
    finally:
        s.stop()


def phase_model(args, wl, res) -> None:  # noqa: ANN001
    from bench import model_cost  # noqa: PLC0415

    res["model"] = model_cost.run(wl, VAR / "model", quick=args.quick)


PHASES: dict[str, Callable[..., None]] = {
    "ceiling": phase_ceiling, "passthrough": phase_passthrough, "pipeline": phase_pipeline,
    "rounds": phase_rounds,
    "quix": phase_quix, "recovery": phase_recovery, "redis": phase_redis,
    "serving": phase_serving,
    "model": phase_model,
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M")
    args.phase_set = set(PHASES) | {"latency"} if args.phases == "all" else set(
        args.phases.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    VAR.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    log(f"workload: {args.users} users, seed {args.seed}")
    wl = workload(args)
    args.n = args.events or len(wl.records)
    res: dict[str, Any] = {
        "date": args.date, "mode": "quick" if args.quick else "full",
        "command": "python -m bench.run" + (" --quick" if args.quick else "")
        + ("" if argv is None else " " + " ".join(argv)),
        "machine": {"cpus": _cpus(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "workload": {**wl.meta, "users_in_run": len({r[1] for r in wl.records[: args.n]}),
                     "events_per_phase": args.n, "mean_event_bytes": round(wl.mean_bytes())},
        "settings": {"fetch_wait_ms": args.fetch_wait_ms, "partitions": args.partitions,
                     "state_users": args.state_users, "serving_users": args.serving_users,
                     "latency_broker": args.latency_broker,
                     "latency_broker_layouts": list(args.broker_layouts),
                     "latency_warmup_s": args.latency_warmup_s},
        "errors": {},
    }
    for name, fn in PHASES.items():
        if name not in args.phase_set:
            continue
        log(f"phase {name}")
        t = time.monotonic()
        try:
            fn(args, wl, res)
        except Exception as exc:  # noqa: BLE001 - report it, run the other phases
            traceback.print_exc()
            res["errors"][name] = f"{type(exc).__name__}: {exc}"
        log(f"phase {name} done in {time.monotonic() - t:.0f}s")
    res["seconds"] = round(time.monotonic() - t0)
    path = args.out / f"{args.date}.json"
    path.write_text(json.dumps(res, indent=1) + "\n")
    # bench/RESULTS.md is the report of runs into bench/results; other --out dirs get their own
    default_out = (REPO / "bench" / "results").resolve()
    md_path = REPO / "bench" / "RESULTS.md" if args.out.resolve() == default_out \
        else args.out / "RESULTS.md"
    md = report.write(res, args.out, md_path)
    print(md)
    log(f"results: {path}")
    return 0


def _cpus() -> int:
    import os  # noqa: PLC0415

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    from stream_app.services.signals import terminate_as_interrupt

    with terminate_as_interrupt():   # kill / timeout: every phase's stack is stopped
        code = main()
    sys.exit(code)
