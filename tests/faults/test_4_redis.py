"""Item 4: Redis outages. (a) Redis frozen 30 s: processing goes on, projection writes are
kept and retried, and afterwards Redis equals the tables. (b) Redis lost (a fresh, empty
server): ``stream-app redis-rebuild`` rebuilds the whole projection from the tables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from stream_app.cli.rebuild_cmd import TableReader, changelog_topic, check
from tests.faults.workload import (
    DlqWatch,
    TableWatch,
    account,
    base_ts,
    live_workers,
    make_events,
    reference,
    send_all,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.faults
OUTAGE_S = 30


def test_redis_frozen_30s_processing_continues_and_projection_catches_up(fstack, report):
    events = make_events(n_users=200, per_user=16, base=base_ts(), span_days=10, seed=14,
                         prefix="redis")
    ref, _ = reference(events)
    table = TableWatch(fstack.bootstrap, fstack.partitions)
    dlq = DlqWatch(fstack.bootstrap, fstack.partitions)
    r = redis.Redis.from_url(fstack.redis.url, socket_timeout=10)
    rp = fstack.redis.process
    try:
        rp.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        send_all(fstack.bootstrap, events)
        processed_in = table.wait_counted(ref, timeout=OUTAGE_S - 5, settle=0.5)
        assert processed_in >= 0, "processing stopped while Redis was down"
        assert all(w.alive() for w in live_workers(fstack))
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        rp.signal(signal.SIGCONT)
        resumed = time.monotonic()
        mine = {u: table.states[u] for u in ref}
        wait_until(lambda: not check(r, mine), timeout=120, interval=1.0,
                   what="Redis equal to the table after the outage")
        recovery = time.monotonic() - resumed
        acc = account(table.states, ref, len(events))
        report.add(f"Redis SIGSTOP {OUTAGE_S}s", len(events), acc.processed,
                   len(dlq.for_keys(set(ref))), acc.lost, acc.duplicated, recovery,
                   f"all events processed {processed_in:.1f}s into the outage; "
                   "Redis equal to the tables after recovery")
        assert acc.lost == 0 and acc.duplicated == 0 and not acc.mismatched, acc
    finally:
        rp.signal(signal.SIGCONT)
        table.close()
        dlq.close()


def test_redis_lost_then_redis_rebuild_restores_everything(fstack, report):
    fstack.redis.stop()
    fstack.redis.start()  # same port, empty
    r = redis.Redis.from_url(fstack.redis.url, socket_timeout=10)
    assert r.dbsize() == 0
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "stream_app", "redis-rebuild"],
                         env={**os.environ, **fstack.settings_env()}, capture_output=True,
                         text=True, timeout=180)
    took = time.monotonic() - t0
    assert out.returncode == 0, out.stderr[-2000:]
    reader = TableReader(fstack.bootstrap, changelog_topic("stream-app"), fstack.partitions)
    try:
        states = reader.read_all(60)
        problems = check(r, states, reader.tombstones)
    finally:
        reader.close()
    report.add("Redis lost + redis-rebuild", len(states), len(states), 0,
               len([p for p in problems if "missing" in p]), 0, took,
               f"rebuilt {len(states)} users from the changelog; {len(problems)} differences")
    assert len(states) > 0
    assert not problems, problems[:10]
    # the check can fail: a user removed from Redis is a difference
    some = next(iter(states.values()))
    tenant = some.get("tenant") or "default"
    from stream_app.serving import keys

    r.delete(keys.user_key(tenant, some["uid"]))
    assert check(r, {some["uid"]: some}), "check() does not see a missing user"
    # and redis-rebuild --check-only reports it
    out = subprocess.run([sys.executable, "-m", "stream_app", "redis-rebuild", "--check-only"],
                         env={**os.environ, **fstack.settings_env()}, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 1 and some["uid"] in out.stdout
