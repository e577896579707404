"""One-off measurements behind docs/PERFORMANCE.md, on the Faust pass-through app:

``python -m bench.experiments logging``: CPU per event with the root logger left at DEBUG by
Faust's spinner (``BENCH_SPINNER_DEBUG=1``) against put back (stream-app's fix), twice each.

``python -m bench.experiments join``: first consumer-group join and the join after a graceful
restart on tansu, with Faust's default group timeouts and with 10 s and 5 s session/rebalance
timeouts (``BENCH_SESSION_TIMEOUT``).

``python -m bench.experiments join_plain``: the same group join with a bare librdkafka consumer
(no Faust): seconds from ``subscribe`` to the assignment callback, three times on one broker
(each consumer closed, i.e. left the group, before the next joins).

``python -m bench.experiments startup``: the worker's Python start-up (``import
stream_app.app.main``, what every restart pays before it joins the group), three times in
fresh interpreters: wall and CPU seconds, and the heaviest imports by cumulative time from
``python -X importtime`` (river and scipy.stats, pulled in by ``stream_app.scoring.models``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
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


def join_plain(runs: int = 3) -> dict[str, Any]:
    """Subscribe-to-assignment seconds of a plain confluent-kafka consumer on tansu."""
    from pathlib import Path  # noqa: PLC0415

    from confluent_kafka import Consumer  # noqa: PLC0415

    from stream_app.kafka_io import make_producer  # noqa: PLC0415
    from stream_app.services.broker import EmbeddedBroker  # noqa: PLC0415

    workdir = Path("var/exp-join-plain")
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(workdir=workdir).start()
    out: dict[str, Any] = {"assigned_after_s": []}
    try:
        p = make_producer(broker.bootstrap)
        p.produce("exp.join", b"x")
        p.flush(10)
        for _ in range(runs):
            got: list[float] = []
            c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "exp-join",
                          "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
            t = time.monotonic()
            c.subscribe(["exp.join"], on_assign=lambda *_, got=got, t=t: got.append(
                time.monotonic() - t))
            while not got and time.monotonic() - t < 60:
                c.poll(0.1)
            c.close()
            out["assigned_after_s"].append(round(got[0], 2) if got else None)
            log(f"join_plain: {out['assigned_after_s'][-1]}")
    finally:
        broker.stop()
    return out


def parse_importtime(stderr: str) -> dict[str, int]:
    """Cumulative microseconds per module from ``python -X importtime`` output.

    Example:
        >>> parse_importtime("import time: self [us] | cumulative | imported package\\n"
        ...                  "import time:       410 |    6957790 |   river.forest\\n")
        {'river.forest': 6957790}
    """
    out: dict[str, int] = {}
    for line in stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        out[parts[2].strip()] = int(parts[1])
    return out


def startup_times(runs: int = 3, top: int = 8) -> dict[str, Any]:
    """Wall/CPU seconds of ``import stream_app.app.main`` in fresh interpreters, and the
    heaviest imports (cumulative seconds) of the last run."""
    out: dict[str, Any] = {"runs": []}
    env = {**os.environ, "STREAM_APP_DATADIR": "var/exp-startup"}
    cum: dict[str, int] = {}
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.monotonic()
        p = subprocess.run([sys.executable, "-X", "importtime", "-c",
                            "import stream_app.app.main"], env=env, capture_output=True,
                           text=True, check=True)
        wall = time.monotonic() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        out["runs"].append({"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)})
        cum = parse_importtime(p.stderr)
        log(f"startup: {out['runs'][-1]}")
    for name in ("stream_app.app.main", "river", "scipy.stats", "stream_app.scoring.models",
                 "stream_app.app.business", "faust", "confluent_kafka"):
        if name in cum:
            out.setdefault("cumulative_s", {})[name] = round(cum[name] / 1e6, 2)
    heavy = sorted(((v, k) for k, v in cum.items() if not k.startswith("stream_app")),
                   reverse=True)[:top]
    out["heaviest_third_party_s"] = {k: round(v / 1e6, 2) for v, k in heavy}
    return out


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "join"
    result = {"logging": logging_cost, "join": join_times, "startup": startup_times,
              "join_plain": join_plain}[which]()
    print(json.dumps(result, indent=1))
