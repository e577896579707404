"""Probe for the records-lost-around-recovery issue (docs/GUARANTEES.md, item 1-3 notes).

Starts a fault stack whose worker is wrapped to log, for input records:

* ``EARLY topic/partition@offset`` for every record the agent gets while
  ``app.tables.recovery.completed`` is not set;
* ``YIELD`` for every record the consumer hands on (``Consumer.getmany``) and ``HANDLED`` for
  every record the agent processes, so records handed on but never processed show up;
* the recovery guard's counters (``stream_app.app.recovery_guard``) when it is installed.

It feeds events, kills and restarts the worker once, waits until the table has caught up,
then prints the events missing from the table with their offsets next to the committed
offsets, and the records yielded after the restart but never handled. Before the fix the
record at a partition's committed offset was yielded during the post-recovery seek, dropped
when Faust's flow control cleared the stream queues, and committed past (see
``recovery_guard``); with the guard every count is 0. Run:
``.venv/bin/python -m tests.faults.probe_recovery`` (about 2-4 minutes).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict

import orjson

from stream_app.kafka_io import make_producer
from stream_app.services.process import ManagedProcess
from stream_app.services.stack import Stack
from stream_app.services.worker import WorkerProcess
from tests.faults.conftest import FAULT_ENV, ROOT
from tests.faults.workload import INPUTS, TableWatch, account, base_ts, make_events, reference

WRAPPER = """
import sys
from stream_app.app.main import app
from stream_app.app import agents
orig = agents.handle_event
async def logged(msg, stream):
    rec = app.tables.recovery
    done = rec.completed.is_set() if getattr(rec, "completed", None) is not None else None
    if not done:
        print(f"EARLY {msg.topic}/{msg.partition}@{msg.offset}", flush=True)
    return await orig(msg, stream)
agents.handle_event = logged
from stream_app.app.transport import TunedConsumer
_getmany = TunedConsumer.getmany
async def getmany(self, timeout):
    async for tp, m in _getmany(self, timeout):
        if tp.topic.startswith("events."):
            print(f"YIELD {tp.topic}/{tp.partition}@{m.offset}", flush=True)
        yield tp, m
TunedConsumer.getmany = getmany
orig_handled = agents.handle_event
async def handled(msg, stream):
    print(f"HANDLED {msg.topic}/{msg.partition}@{msg.offset}", flush=True)
    return await orig_handled(msg, stream)
agents.handle_event = handled
@app.timer(interval=2.0)
async def guard_counters():
    c = app.consumer
    print(f"GUARD held_back={getattr(c, 'held_back', None)} rewinds={getattr(c, 'rewinds', None)} "
          f"stale_acks={getattr(c, 'stale_acks', None)}",
          flush=True)
from stream_app.cli import main
main(sys.argv[1:])
"""


class ProbedWorker(WorkerProcess):
    def start(self) -> ProbedWorker:
        (self.workdir / self.name).mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            self.name, [sys.executable, "-c", WRAPPER, "worker", "-l", "warn", "--web-port",
                        str(self.web_port)],
            self.workdir / "logs" / f"{self.name}.log", env=self.env, cwd=ROOT)
        return self


def committed(bootstrap: str) -> dict:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "stream-app", "log_level": 2})
    try:
        return {(tp.topic, tp.partition): tp.offset for tp in c.committed(
            [TopicPartition(t, p) for t in INPUTS for p in range(4)], timeout=10)}
    finally:
        c.close()


def main() -> None:
    s = Stack(workdir=ROOT / "var" / "probe-recovery", workers=0, partitions=4, env=FAULT_ENV)
    s.start_services()
    w = ProbedWorker(s.settings_env(), s.workdir, name="worker-1")
    s.workers.append(w.start())
    try:
        w.wait_ready(120)
        events = make_events(150, 16, base_ts(), seed=11, prefix="probe")
        ref, _ = reference(events)
        where: dict[str, tuple] = {}
        producer = make_producer(s.bootstrap)

        def feed() -> None:
            t0 = time.monotonic()
            for i, e in enumerate(events):
                wait = t0 + i / 60 - time.monotonic()
                if wait > 0:
                    producer.poll(0)
                    time.sleep(wait)
                eid = e["event_id"]
                producer.produce(
                    f"events.{e['stream']}", key=e["user_id"],
                    value=orjson.dumps({k: v for k, v in e.items() if k != "stream"}),
                    on_delivery=lambda err, m, eid=eid: where.__setitem__(
                        eid, (m.topic(), m.partition(), m.offset())))
            producer.flush(60)

        th = threading.Thread(target=feed)
        th.start()
        time.sleep(3.5)
        before = committed(s.bootstrap)
        w.kill()
        w.start()
        w.wait_ready(120)
        th.join()
        table = TableWatch(s.bootstrap, 4)
        table.wait_counted(ref, timeout=240)
        acc = account(table.states, ref, len(events))
        table.close()
        log = (s.workdir / "logs" / "worker-1.log").read_text(errors="replace")
        early = [line.split("EARLY ", 1)[1].strip() for line in log.splitlines()
                 if "EARLY " in line]
        restarted = log[log.rfind("| pid"):]  # the restarted worker's part of the log
        marks = {k: {line.split(k + " ", 1)[1].split()[0] for line in restarted.splitlines()
                     if k + " " in line} for k in ("YIELD", "HANDLED")}
        guard = [line.split("GUARD ", 1)[1].strip() for line in restarted.splitlines()
                 if "GUARD " in line]
        print(f"lost {acc.lost} of {len(events)}; records handled during recovery: {len(early)}")
        missing = defaultdict(list)
        for eid in acc.missing_ids:
            if eid in where:
                t, p, o = where[eid]
                missing[(t, p)].append(o)
        for tp, offs in sorted(missing.items()):
            print(f"{tp[0]}/{tp[1]}: missing offsets {sorted(offs)}; committed before the kill "
                  f"{before.get(tp)}")
        print("first records handled during recovery:", early[:10])
        unhandled = sorted(marks["YIELD"] - marks["HANDLED"])
        print(f"records yielded by the restarted worker's consumer but never handled: "
              f"{len(unhandled)} {unhandled[:10]}")
        print("recovery guard (restarted worker):", guard[-1] if guard else "not installed")
    finally:
        s.stop()


if __name__ == "__main__":
    main()
