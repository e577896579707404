"""One-off measurements behind docs/PERFORMANCE.md, on the Faust pass-through app:

``python -m bench.experiments logging``: CPU per event with the root logger left at DEBUG by
Faust's spinner (``BENCH_SPINNER_DEBUG=1``) against put back (stream-app's fix), twice each.

``python -m bench.experiments join``: first consumer-group join and the join after a graceful
restart on tansu, with Faust's default group timeouts and with 10 s and 5 s session/rebalance
timeouts (``BENCH_SESSION_TIMEOUT``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from bench import systems
from bench.run import fresh_stack, log, parse_args, workload


def logging_cost(events: int = 40_000) -> dict[str, Any]:
    args = parse_args(["--quick", "--events", str(events)])
    wl = workload(args)
    out: dict[str, Any] = {}
    for label, env in (("root_debug", {"BENCH_SPINNER_DEBUG": "1"}), ("fixed", {}),
                       ("root_debug_2", {"BENCH_SPINNER_DEBUG": "1"}), ("fixed_2", {})):
        s = fresh_stack("exp-logging", args)
        try:
            ws, _ = systems.start_workers(s, "bench.passthrough_app", 1, "pt", env=env)
            r = systems.throughput(s, ws, wl.records[:events])
            out[label] = {"eps": r["eps"], "cpu_us_per_event": r["cpu_us_per_event"]}
            log(f"{label}: {out[label]}")
            systems.stop_all(ws)
        finally:
            s.stop()
    return out


def join_times() -> dict[str, Any]:
    args = parse_args(["--quick"])
    out: dict[str, Any] = {}
    for label, env in (("faust_default", {}), ("timeouts_10s", {"BENCH_SESSION_TIMEOUT": "10"}),
                       ("timeouts_5s", {"BENCH_SESSION_TIMEOUT": "5"})):
        s = fresh_stack("exp-join", args)
        try:
            ws, first = systems.start_workers(s, "bench.passthrough_app", 1, "a", env=env)
            t = time.monotonic()
            systems.stop_all(ws)
            stop_s = time.monotonic() - t
            ws, again = systems.start_workers(s, "bench.passthrough_app", 1, "b", env=env)
            systems.stop_all(ws)
            out[label] = {"first_join_s": round(first, 1), "stop_s": round(stop_s, 1),
                          "restart_join_s": round(again, 1)}
            log(f"{label}: {out[label]}")
        finally:
            s.stop()
    return out


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "join"
    result = {"logging": logging_cost, "join": join_times}[which]()
    print(json.dumps(result, indent=1))
