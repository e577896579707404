"""Throughput and latency of the stream processors on a stack: stream-app, the Faust
pass-through, the Quix Streams peer. Each starts its processes, feeds the records, and
measures from counters the processes expose (``/healthz`` ``processed``)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from bench.ceiling import Pacer
from bench.measure import (
    CpuProbe,
    cpu_seconds,
    disk_write_bytes,
    p99_over_time,
    percentiles,
    rate_between,
    sample_until_idle,
)
from bench.procs import REPO, ModuleWorker
from bench.workload import Record, produce_records
from stream_app.services.stack import Stack

OUTPUTS = ("tags.changes", "alerts.hot_lead", "alerts.at_risk")
#: the clock sweep's ticks topic (stream_app/app/topics.py: TICKS; not imported: it loads faust)
TICKS_TOPIC = "internal.ticks"


def wait_all_ready(workers: Sequence[ModuleWorker], timeout: float = 300.0,
                   stable: int = 4) -> float:
    """Wait until every worker reports ready ``stable`` polls in a row; seconds waited."""
    t0 = time.monotonic()
    ok = 0
    while time.monotonic() - t0 < timeout:
        for w in workers:
            if not w.alive():
                raise RuntimeError(f"{w.name} exited; see {w.process.log}")
        ok = ok + 1 if all(w.ready() for w in workers) else 0
        if ok >= stable:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise TimeoutError(f"workers not ready after {timeout:.0f}s")


def start_workers(stack: Stack, module: str, n: int, name: str,
                  env: dict[str, str] | None = None,
                  log_level: str = "warn") -> tuple[list[ModuleWorker], float]:
    """Start ``n`` workers of ``module`` at once; return them and the seconds until ready."""
    ws = [ModuleWorker(stack, module, f"{name}-{i + 1}", env=env, log_level=log_level).start()
          for i in range(n)]
    # the stack stops them with its services, also when a phase fails half-way (a failed
    # phase of T0711 left a worker running for two hours, retrying its broker)
    stack.workers.extend(ws)
    return ws, wait_all_ready(ws)


def total_processed(workers: Sequence[ModuleWorker]) -> int:
    return sum(w.processed() for w in workers)


def throughput(stack: Stack, workers: Sequence[ModuleWorker], records: Sequence[Record],
               timeout: float = 900.0, idle_s: float = 10.0,
               lag: GroupLag | None = None, probe: CpuProbe | None = None,
               idle_probe_s: float = 5.0) -> dict[str, Any]:
    """Produce ``records`` as a backlog to ready workers; events/s from their counters.

    With ``lag``, also the time until the group has committed everything it was sent
    (clock ticks the run caused included): ``eps_to_caught_up``. With ``probe``, the CPU of
    its processes per processed event (``cpu``): over the whole run (from the first record
    produced to the last one processed, the idle wait after it left out) and over the
    steady part the rate is measured on (5% to 95% of the events); with ``lag`` too, until
    the group caught up (``to_caught_up``) and the cores each process keeps busy with no
    input for ``idle_probe_s`` after that (``idle_cores``)."""
    base = total_processed(workers)

    def read() -> int:
        c = total_processed(workers) - base
        if probe is not None:
            probe.snap(c)
        return c

    if probe is not None:
        probe.snap(0)
    cpu0 = sum(cpu_seconds(w.process.pid) for w in workers)
    disk0 = sum(disk_write_bytes(w.process.pid) for w in workers)
    done = threading.Event()
    produced: dict[str, float] = {}

    def feed() -> None:
        produced["s"] = produce_records(stack.bootstrap, records)
        done.set()

    th = threading.Thread(target=feed, daemon=True)
    t0 = time.monotonic()
    th.start()
    samples = sample_until_idle(read, len(records), timeout, idle_s=idle_s, interval=0.2,
                                alive=lambda: all(w.alive() for w in workers))
    cpu = sum(cpu_seconds(w.process.pid) for w in workers) - cpu0
    th.join(60)
    final = samples[-1][1]
    disk = sum(disk_write_bytes(w.process.pid) for w in workers) - disk0
    extra: dict[str, Any] = {"cpu_us_per_event": round(cpu / max(final, 1) * 1e6, 1),
                             # the workers' RocksDB files and logs (the changelog is on the
                             # broker): bytes written to storage per processed event
                             "disk_bytes_per_event": round(disk / max(final, 1), 1)}
    if probe is not None and final > 0:
        extra["cpu"] = {
            "run": probe.window(0, probe.index_at(final)),
            "steady": probe.window(probe.index_at(final * 0.05), probe.index_at(final * 0.95)),
        }
    if lag is not None:
        lag.wait_zero(timeout)
        extra["eps_to_caught_up"] = round(final / (time.monotonic() - t0))
        extra["caught_up_s"] = round(time.monotonic() - t0, 2)
        if probe is not None and final > 0:
            # the work the events left behind (ticks, the anomaly agent's closed windows)
            probe.snap(final)
            extra["cpu"]["to_caught_up"] = probe.window(0, len(probe.snaps) - 1)
            # then no input: what the processes burn per second (timers, fetch long-polls)
            time.sleep(idle_probe_s)
            probe.snap(final)
            extra["cpu"]["idle_cores"] = _cores(probe.window(len(probe.snaps) - 2,
                                                             len(probe.snaps) - 1))
    return {**extra,
        "events": len(records), "processed": final,
        "eps": round(rate_between(samples)),
        "eps_overall": round(final / max(samples[-1][0] - t0, 1e-9)),
        "seconds": round(samples[-1][0] - t0, 2),
        "per_worker": [w.processed() for w in workers],
        "produce_s": round(produced.get("s", float("nan")), 2),
    }


def _cores(window: dict[str, Any]) -> dict[str, float]:
    """Cores each process kept busy over a :func:`bench.measure.cpu_window` window.

    Example:
        >>> _cores({"events": 0, "seconds": 2.0, "us_per_event": {"w": 500000.0}})
        {'w': 0.25, 'seconds': 2.0}
    """
    n, sec = max(window["events"], 1), max(window["seconds"], 1e-9)
    out = {k: round(v * n / 1e6 / sec, 3) for k, v in window["us_per_event"].items()}
    out["seconds"] = window["seconds"]
    return out


class GroupLag:
    """Records not yet committed by a consumer group over some topics (OffsetFetch only:
    it never joins the group)."""

    def __init__(self, bootstrap: str, group: str, topics: Sequence[str], partitions: int,
                 extra: Sequence[tuple[str, int]] = ()):
        from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                           "enable.auto.commit": False, "log_level": 2})
        self.tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        self.tps += [TopicPartition(t, p) for t, p in extra]

    def __call__(self) -> int:
        from confluent_kafka import TopicPartition  # noqa: PLC0415

        lag = 0
        for tp in self.c.committed(self.tps, timeout=10):
            lo, hi = self.c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                  timeout=5, cached=False)
            lag += max(hi - (tp.offset if tp.offset >= 0 else lo), 0)
        return lag

    def ticks(self) -> int:
        """Records in the clock's ticks topic so far (its end offsets summed; 0 if this lag
        does not cover it): how many ticks the worker's sweeps have sent."""
        from confluent_kafka import TopicPartition  # noqa: PLC0415

        return sum(self.c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition),
                                                timeout=5, cached=False)[1]
                   for tp in self.tps if tp.topic == TICKS_TOPIC)

    def wait_zero(self, timeout: float = 300.0, tolerance: int = 0) -> float:
        """Block until the lag is at most ``tolerance`` twice in a row; seconds waited."""
        t0 = time.monotonic()
        ok = 0
        while time.monotonic() - t0 < timeout:
            ok = ok + 1 if self() <= tolerance else 0
            if ok >= 2:
                break
            time.sleep(0.5)
        return time.monotonic() - t0

    def close(self) -> None:
        self.c.close()


def stream_app_lag(stack: Stack) -> GroupLag:
    """Lag of the stream-app group over its source topics (inputs and clock ticks) and the
    anomaly agent's ``metrics.partials`` (one partition): after a backlog whose event time
    spans days the anomaly agent still merges closed windows for a while, on the same event
    loop, and a latency measurement must not start before it is done."""
    from stream_app.contract import load_contract  # noqa: PLC0415

    return GroupLag(stack.bootstrap, "stream-app",
                    [*load_contract().input_topics(), TICKS_TOPIC], stack.partitions,
                    extra=[("metrics.partials", 0)])


def stop_all(workers: Sequence[ModuleWorker]) -> None:
    for w in workers:
        w.stop(30)


def quix_throughput(stack: Stack, records: Sequence[Record], fetch_wait_ms: int,
                    timeout: float = 900.0) -> dict[str, Any]:
    """Preload ``records``, then run the Quix Streams peer over them (its own process)."""
    produce_records(stack.bootstrap, records)
    out = stack.workdir / "quix-result.json"
    log = stack.workdir / "logs" / "quix.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with log.open("ab") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.quix_peer", "--bootstrap", stack.bootstrap,
             "--expect", str(len(records)), "--out", str(out), "--timeout", str(timeout),
             "--state-dir", str(stack.workdir / "quix-state"),
             "--fetch-wait-ms", str(fetch_wait_ms)],
            cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout + 120, check=False)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"quix peer failed (exit {proc.returncode}); see {log}")
    res = orjson.loads(out.read_bytes())
    samples = [tuple(s) for s in res["samples"]] or [(time.monotonic(), 0)]
    return {"events": len(records), "processed": res["processed"],
            "eps": round(rate_between(samples)),
            "cpu_us_per_event": round(res["cpu_s"] / max(res["processed"], 1) * 1e6, 1),
            "seconds_incl_start": round(time.monotonic() - t0, 2)}


def output_trigger(rec: dict[str, Any]) -> str | None:
    """The ``event_id`` of the input that caused a tag change or alert record.

    Example:
        >>> output_trigger({"trigger": "e1"}), output_trigger({"alert_id": "hot_lead:u1:e2"})
        ('e1', 'e2')
    """
    trig = rec.get("trigger")
    if not trig and rec.get("alert_id"):  # kind:user_id:event_id
        trig = str(rec["alert_id"]).split(":", 2)[-1]
    return trig


def pipeline_latency(stack: Stack, records: Sequence[Record], rate: float,
                     drain_s: float = 10.0,
                     stamp: Callable[[bytes, float], bytes] | None = None,
                     lag: GroupLag | None = None, drain_timeout: float = 300.0,
                     keep_values: bool = False, outputs: Sequence[str] = OUTPUTS,
                     trigger: Callable[[dict[str, Any]], str | None] = output_trigger
                     ) -> dict[str, Any]:
    """Produce ``records`` at ``rate`` to running workers; latency from each event's send
    (the wall time just before ``produce``; the input's CreateTime is taken in the same call)
    to the publish time (CreateTime, the worker's producer, same machine clock) of the first
    tag change or alert it triggered; ``visible``: the same to its receipt by a consumer of
    the outputs (what a downstream system sees: the producer's linger and the broker's fetch
    hold included, like the broker-alone figure). ``stamp`` rewrites each value at its send
    (event time = produce time); ``last_sent_at`` is the wall time of the last send. With
    ``lag`` the collector keeps reading until the group has caught up (then ``drain_s``
    more), so a worker that fell behind has its slow outputs counted instead of cut off at a
    fixed drain time (which would make its p99 look better than it is). ``keep_values``: the
    latencies themselves too (``values``, ``visible_values``), to merge blocks. ``outputs``
    and ``trigger``: the topics read and how a record names its input (the Faust
    pass-through forwards the event, so there it is the record's own ``event_id``)."""
    from stream_app.kafka_io import make_producer, read_assigned  # noqa: PLC0415

    # one consumer over every output partition: poll() returns at the first record of any,
    # so its receipt time is when the output became visible to a downstream consumer
    reader = read_assigned(stack.bootstrap, list(outputs), stack.partitions,
                           from_beginning=False)
    reader.consume(num_messages=1, timeout=1.0)  # settle the assignment at the current end
    first_out: dict[str, tuple[float, float]] = {}
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            m = reader.poll(0.05)
            if m is None or m.error() or not m.value():
                continue
            received = time.time()
            try:
                rec = orjson.loads(m.value())
            except orjson.JSONDecodeError:
                continue
            trig = trigger(rec)
            if trig and trig not in first_out:
                first_out[trig] = (m.timestamp()[1] / 1000.0, received)

    th = threading.Thread(target=collect, daemon=True)
    th.start()
    pacer = Pacer(make_producer(stack.bootstrap), rate, stamp=stamp)
    achieved = pacer.run(records)
    last_sent_at = pacer.sent_at.get(records[-1][3]) if records else None
    t_sent = time.monotonic()
    if lag is not None:
        lag.wait_zero(drain_timeout)
    time.sleep(drain_s)
    drained_s = time.monotonic() - t_sent
    stop.set()
    th.join(10)
    reader.close()
    pairs = [(first_out[e][0] - t, first_out[e][1] - t) for e, t in pacer.sent_at.items()
             if e in first_out]
    lat = [p * 1000 for p, _ in pairs]
    seen = [v * 1000 for _, v in pairs]
    return {"rate": round(rate), "achieved_rate": round(achieved), "events": len(records),
            "matched": len(lat), **percentiles(lat),
            "visible": percentiles(seen), "p99_quarters": p99_over_time(lat),
            "last_sent_at": last_sent_at,
            "drained_s": round(drained_s, 1),
            **({"values": lat, "visible_values": seen} if keep_values else {})}
