"""Each user's first event after a worker start, measured apart from the user's next events
(docs/PERFORMANCE.md item 41).

After a start a worker knows nothing of what it wrote before: its state store's write-back
cache, its parsed states and the Redis projection's memory of each user's written fields
and set memberships are empty. So a user's first event after a start reads the state from
RocksDB and writes the user's score fields and memberships to Redis again, unchanged or
not. The same happens in a worker that holds more users than the projection remembers
(100k), whenever a user comes back after the others pushed it out.

Each run: one worker on a fresh stack takes the workload's first ``--events`` as a backlog
(its users' states and Redis profiles), then, by variant:

- ``restart``: the worker stops cleanly and a new one starts on the same data directory
  (its RocksDB tables kept, nothing restored from the changelog);
- ``warm``: the same worker goes on.

Two waves then go in as backlogs, one after the other: wave 1 holds the next event of each
of up to ``--users`` users of the backlog, wave 2 the event after that (users with both).
For each wave: events/s, the worker's CPU µs per event (from the first record produced to
the last processed), and what the worker sent Redis per event (commands, counting those a
script runs, and bytes, from Redis ``INFO``). Variants alternate on fresh stacks. The
first-event cost is wave 1 of ``restart`` against wave 1 of ``warm``; wave 2 is the control
(it should not differ). The clock sweep is off (``--sweep-s``, default one hour between
sweeps): the waves skip other users' events, so their event time moves fast, and the ticks of
every user it made due would be charged to the waves (a first try: more ticks than events).
Results: ``bench/results/first-events-<date>.json``.

Usage::

    python -m bench.first_events                      # restart and warm, 2 rounds each
    python -m bench.first_events --rounds 1 --events 60000 --users 5000
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.run import REPO, fresh_stack, log, parse_args, workload

VARIANTS = ("restart", "warm")


def waves(records: Sequence[Any], held: set[bytes], users: int) -> tuple[list, list]:
    """(wave 1, wave 2): the first and second record of each held user among ``records``,
    in their order, for the first ``users`` users that have both.

    Example:
        >>> recs = [("t", b"a", b"1", ""), ("t", b"x", b"2", ""), ("t", b"b", b"3", ""),
        ...         ("t", b"a", b"4", ""), ("t", b"a", b"5", ""), ("t", b"b", b"6", "")]
        >>> w1, w2 = waves(recs, {b"a", b"b"}, 10)
        >>> [r[2] for r in w1], [r[2] for r in w2]
        ([b'1', b'3'], [b'4', b'6'])
        >>> [r[2] for r in waves(recs, {b"a", b"b"}, 1)[1]]
        [b'4']
    """
    seen: dict[bytes, list] = {}
    for r in records:
        if r[1] in held:
            got = seen.setdefault(r[1], [])
            if len(got) < 2:
                got.append(r)
    both = [k for k, v in seen.items() if len(v) == 2][:users]
    keep = set(both)
    first = [r for r in records if r[1] in keep and r is seen[r[1]][0]]
    second = [r for r in records if r[1] in keep and r is seen[r[1]][1]]
    return first, second


def redis_counts(url: str) -> dict[str, int]:
    """Bytes Redis received, script calls and all commands it ran (a script's own calls
    included; ``INFO`` itself left out)."""
    import redis  # noqa: PLC0415

    r = redis.Redis.from_url(url)
    try:
        stats = r.info("stats")
        cmds = r.info("commandstats")
    finally:
        r.close()
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in cmds.items()}
    return {"net_input_bytes": int(stats["total_net_input_bytes"]),
            "scripts": calls.get("evalsha", 0) + calls.get("eval", 0),
            "commands": sum(v for k, v in calls.items() if k not in ("info", "evalsha",
                                                                       "eval"))}


def one_wave(s: Any, w: Any, lag: Any, recs: list) -> dict[str, Any]:
    """One wave as a backlog: events/s, the worker's CPU per event, Redis traffic per event."""
    from bench import systems  # noqa: PLC0415
    from bench.measure import CpuProbe  # noqa: PLC0415

    before = redis_counts(s.redis.url)
    ticks0 = lag.ticks()
    probe = CpuProbe({"worker": w.process.pid}, self_name=None)
    t = systems.throughput(s, [w], recs, lag=lag, probe=probe, idle_s=5.0)
    time.sleep(1.0)   # the projection's last flush (every 100 ms)
    after = redis_counts(s.redis.url)
    n = max(t["processed"], 1)
    return {"events": len(recs), "processed": t["processed"], "eps": t["eps_overall"],
            "cpu_us_per_event": t["cpu"]["run"]["us_per_event"]["worker"],
            "ticks": lag.ticks() - ticks0,
            **{f"redis_{k}_per_event": round((after[k] - before[k]) / n, 2) for k in after}}


def one_run(args: argparse.Namespace, head: list, w1: list, w2: list, variant: str
            ) -> dict[str, Any]:
    """Backlog, then (``restart``) a clean restart or (``warm``) nothing, then the waves."""
    from bench import systems  # noqa: PLC0415
    from bench.recovery import start_worker  # noqa: PLC0415

    s = fresh_stack(f"first-events-{variant}", args,
                    env={"STREAM_APP_SWEEP_INTERVAL_S": str(args.sweep_s)})
    try:
        datadir = (s.workdir / "worker-data").resolve()
        w = start_worker(s, "worker-a", {}, datadir)
        systems.wait_all_ready([w])
        lag = systems.stream_app_lag(s)
        backlog = systems.throughput(s, [w], head, lag=lag)
        restart_s = None
        if variant == "restart":
            t0 = time.monotonic()
            w.stop(60)
            w = start_worker(s, "worker-b", {}, datadir)
            systems.wait_all_ready([w])
            lag.wait_zero(300)
            restart_s = round(time.monotonic() - t0, 1)
        out = {"variant": variant, "backlog_eps": backlog.get("eps"), "restart_s": restart_s,
               "wave1": one_wave(s, w, lag, w1), "wave2": one_wave(s, w, lag, w2)}
        lag.close()
        systems.stop_all([w])
    finally:
        s.stop()
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median per variant and wave of each measure, and restart / warm of wave 1 and 2.

    Example:
        >>> r = [{"variant": v, "wave1": {"eps": e}, "wave2": {"eps": 100}}
        ...      for v, e in (("restart", 50), ("warm", 100))]
        >>> summary(r)["restart_over_warm"]
        {'wave1': {'eps': 0.5}, 'wave2': {'eps': 1.0}}
    """
    med: dict[str, dict[str, dict[str, float]]] = {}
    for v in VARIANTS:
        mine = [r for r in runs if r["variant"] == v]
        if not mine:
            continue
        med[v] = {wave: {k: round(statistics.median(r[wave][k] for r in mine), 2)
                         for k, x in mine[0][wave].items() if isinstance(x, (int, float))}
                  for wave in ("wave1", "wave2")}
    ratio = {}
    if len(med) == 2:
        ratio = {wave: {k: round(med["restart"][wave][k] / med["warm"][wave][k], 3)
                        for k in med["restart"][wave] if med["warm"][wave].get(k)}
                 for wave in ("wave1", "wave2")}
    return {"median": med, "restart_over_warm": ratio}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.first_events",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="restart (a clean restart before the waves) and/or warm (none)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--events", type=int, default=100_000,
                    help="backlog before the waves (its users are the waves' users)")
    ap.add_argument("--users", type=int, default=10_000, help="users per wave, at most")
    ap.add_argument("--sweep-s", type=float, default=3600.0,
                    help="seconds between clock sweeps (STREAM_APP_SWEEP_INTERVAL_S); the "
                         "default keeps ticks out of the runs")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v.strip()]
    if not variants or set(variants) - set(VARIANTS):
        ap.error(f"--variants takes {', '.join(VARIANTS)}")
    base = parse_args(["--quick"])   # the quick run's workload file (704k events) is reused
    for k in ("fetch_wait_ms", "partitions"):
        setattr(args, k, getattr(base, k))
    wl = workload(base)
    if len(wl.records) <= args.events:
        ap.error(f"the workload has {len(wl.records):,} events: --events must be fewer")
    head = wl.records[: args.events]
    w1, w2 = waves(wl.records[args.events:], {r[1] for r in head}, args.users)
    if not w1:
        ap.error("no user of the backlog has two more events in the workload")
    log(f"first events: backlog {len(head):,} events; waves of {len(w1):,} users")
    runs: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for v in (variants if r % 2 == 0 else variants[::-1]):
            res = one_run(args, head, w1, w2, v)
            runs.append({"round": r + 1, **res})
            log(f"round {r + 1} {v}: wave 1 {res['wave1']}; wave 2 {res['wave2']}")
    date = time.strftime("%Y-%m-%dT%H%M", time.gmtime())
    out = args.out / f"first-events-{date}.json"
    result = {"date": date, "settings": {k: getattr(args, k) for k in
                                         ("variants", "rounds", "events", "users",
                                          "sweep_s")},
              "users": len(w1), "runs": runs, **summary(runs)}
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    log(f"restart / warm: {result['restart_over_warm']}")
    log(f"results: {out}")


if __name__ == "__main__":
    main()
