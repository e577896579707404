"""Item 3: freeze the broker (SIGSTOP 30 s, SIGCONT) while ``stream-app replay`` produces:
workers survive and catch up, the replay tool's producer retries, nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.faults.workload import (
    DAY,
    DlqWatch,
    TableWatch,
    account,
    base_ts,
    explain_missing,
    live_workers,
    make_events,
    reference,
    write_jsonl,
)
from tests.helpers import TopicReader

pytestmark = pytest.mark.faults
STALL_S = 30


def test_broker_frozen_30s_workers_and_producers_recover(fstack, report):
    span_days = 10
    events = make_events(n_users=150, per_user=14, base=base_ts(), span_days=span_days,
                         seed=13, prefix="stall")
    ref, _ = reference(events)
    path = fstack.workdir / "stall.jsonl"
    write_jsonl(path, events)
    table = TableWatch(fstack.bootstrap, fstack.partitions)
    tags = TopicReader(fstack.bootstrap, "tags.changes", fstack.partitions)
    dlq = DlqWatch(fstack.bootstrap, fstack.partitions)
    workers = live_workers(fstack)
    pids = {w.name: w.process.pid for w in workers}
    speed = span_days * DAY / 1000 / 25  # the file takes ~25 s of wall time
    replay = subprocess.Popen(
        [sys.executable, "-m", "stream_app", "replay", str(path), "--speed", str(speed),
         "--quiet"], env={**os.environ, **fstack.settings_env()},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    broker = fstack.broker.process
    try:
        time.sleep(5)
        broker.signal(signal.SIGSTOP)
        time.sleep(STALL_S)
        broker.signal(signal.SIGCONT)
        resumed = time.monotonic()
        out, _ = replay.communicate(timeout=150)
        assert replay.returncode == 0, out
        table.wait_counted(ref, timeout=90)
        recovery = time.monotonic() - resumed
        acc = account(table.states, ref, len(events))
        in_dlq = len(dlq.for_keys(set(ref)))
        survived = [w for w in workers if w.alive() and w.process.pid == pids[w.name]]
        report.add(f"broker SIGSTOP {STALL_S}s", len(events), acc.processed, in_dlq,
                   acc.lost, acc.duplicated, recovery,
                   f"{len(survived)}/{len(workers)} workers survived without restart; "
                   "replay producer retried: " + out.strip().splitlines()[-1][:80])
        assert len(survived) == len(workers), "a worker died during the broker stall"
        assert acc.lost == 0 and acc.duplicated == 0, (
            f"{acc}; missing: "
            f"{explain_missing(acc, events, table.reader.partition_of, tags.poll())}")
        assert not acc.mismatched, acc.mismatched[:5]
        assert in_dlq == 0
    finally:
        broker.signal(signal.SIGCONT)
        if replay.poll() is None:
            replay.kill()
        table.close()
        tags.close()
        dlq.close()
