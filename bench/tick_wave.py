"""A wave of clock ticks under live traffic: what live events wait while one worker's sweeps
tick every user it holds (a business day rolled), at each sweep pacing share, alternating
(docs/PERFORMANCE.md item 40).

Each run: one worker on a fresh stack (``STREAM_APP_SWEEP_TICK_SHARE`` = the share) takes the
workload's first ``--events`` as a backlog (its users' states) and goes idle; then
``--seconds`` of live traffic at ``--rate`` arrive, stamped at their send (event time =
produce time) and continuing the worker's clock plus ``--jump-h`` hours. The first live
event moves the clock past the day roll of every user held, so the sweeps tick them all while
the live events flow. Reported per run: the live events' latency (send -> first tag change
or alert, as in the latency phase: p50, p99, p99 of each eighth of the events in send order)
and the ticks the sweeps sent, second by second (the ticks topic's end offsets). Results:
``bench/results/tick-wave-<date>.json``.

Usage::

    python -m bench.tick_wave                               # shares 0.25 and 1, 2 rounds
    python -m bench.tick_wave --shares 0.25,0.5,1 --rounds 1 --events 60000 --rate 1500
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from bench.measure import p99_over_time, percentiles
from bench.run import REPO, fresh_stack, log, parse_args, settle, workload

HOUR_MS = 3_600_000


def one_run(args: argparse.Namespace, wl: Any, share: float, name: str,
            burst: int | None = None) -> dict[str, Any]:
    """One worker, its backlog, then the live traffic past the day roll (module docstring)."""
    from bench import systems  # noqa: PLC0415
    from bench.workload import WallStamper, event_ts  # noqa: PLC0415

    head = wl.records[: args.events]
    live = wl.records[args.events: args.events + int(args.rate * args.seconds)]
    env = {"STREAM_APP_SWEEP_TICK_SHARE": str(share)}
    if burst:
        env["STREAM_APP_SWEEP_TICK_BURST"] = str(burst)
    s = fresh_stack(name, args, env=env)
    try:
        ws, _ = systems.start_workers(s, "stream_app", 1, "worker")
        lag = systems.stream_app_lag(s)
        backlog = systems.throughput(s, ws, head, lag=lag)
        settle(lag)
        before = lag.ticks()
        ticks: list[tuple[float, int]] = []
        stop = threading.Event()
        t0 = time.time()

        def watch() -> None:
            while not stop.is_set():
                ticks.append((round(time.time() - t0, 1), lag.ticks() - before))
                stop.wait(1.0)

        watcher = threading.Thread(target=watch, daemon=True)
        # the worker's clock: the backlog's last event time, then wall time since; jumped
        jumped = (event_ts(head[-1]) + int(args.jump_h * HOUR_MS), time.time())
        stamper = WallStamper(continue_from=jumped)
        watcher.start()
        p = systems.pipeline_latency(s, live, args.rate, stamp=stamper, lag=lag, drain_s=3.0,
                                     keep_values=True)
        stop.set()
        watcher.join(5)
        values = p["values"]
        lag.close()
        systems.stop_all(ws)
    finally:
        s.stop()
    return {"share": share, "burst": burst, "backlog_eps": backlog.get("eps"),
            "users": len({r[1] for r in head}),
            **{k: p[k] for k in ("rate", "achieved_rate", "events", "matched")},
            **percentiles(values), "p99_eighths": p99_over_time(values, parts=8),
            "ticks_sent": ticks[-1][1] if ticks else None, "ticks_by_second": ticks}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.tick_wave",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--shares", default="0.25,1",
                    help="STREAM_APP_SWEEP_TICK_SHARE values, alternated (1 = no pauses)")
    ap.add_argument("--bursts", default="",
                    help="STREAM_APP_SWEEP_TICK_BURST values, each run with every share "
                         "(default: the worker's)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--events", type=int, default=60_000,
                    help="backlog before the live traffic (its users are the wave)")
    ap.add_argument("--rate", type=float, default=1_500.0, help="live events per second")
    ap.add_argument("--seconds", type=float, default=30.0, help="live traffic per run")
    ap.add_argument("--jump-h", type=float, default=24.0,
                    help="hours the live traffic's event time starts after the backlog's")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args(argv)
    shares = [float(x) for x in args.shares.split(",") if x.strip()]
    if not shares or any(not 0 < x <= 1 for x in shares):
        ap.error("--shares takes values in (0, 1]")
    base = parse_args(["--quick"])   # the quick run's workload file (704k events) is reused
    for k in ("fetch_wait_ms", "partitions"):
        setattr(args, k, getattr(base, k))
    wl = workload(base)
    need = args.events + int(args.rate * args.seconds)
    if len(wl.records) < need:
        ap.error(f"the workload has {len(wl.records):,} events, the runs need {need:,}")
    bursts = [int(x) for x in args.bursts.split(",") if x.strip()] or [None]
    variants = [(sh, b) for sh in shares for b in bursts]
    runs: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for share, burst in (variants if r % 2 == 0 else variants[::-1]):
            res = one_run(args, wl, share, f"tick-wave-{share:g}", burst)
            runs.append({"round": r + 1, **res})
            log(f"round {r + 1} share {share:g} burst {burst or 'default'}: "
                f"{res['users']:,} users, {res['ticks_sent']} "
                f"ticks; live p50 {res['p50']} p99 {res['p99']} ms; p99 by eighth "
                f"{res['p99_eighths']}")
    date = time.strftime("%Y-%m-%dT%H%M", time.gmtime())
    out = args.out / f"tick-wave-{date}.json"
    out.write_bytes(orjson.dumps({"date": date, "settings": {
        k: getattr(args, k) for k in ("shares", "bursts", "rounds", "events", "rate", "seconds",
                                      "jump_h")}, "runs": runs}, option=orjson.OPT_INDENT_2))
    log(f"results: {out}")


if __name__ == "__main__":
    main()
