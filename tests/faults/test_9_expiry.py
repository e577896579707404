"""Item 7: bounded state, end to end. A user idle longer than ``state_ttl_days`` is expired by
the running worker: the clock sweep sends a tick, the agent publishes the removal of every tag
(reason ``expired``), deletes the table record (a changelog tombstone) and removes the user's
Redis projection (profile hash, why records, timeline, segment sets, numeric zsets, tenant set).
A user active within the TTL stays, in the table and in Redis.

The shared fault stack slows the sweep to once an hour and keeps a 400-day TTL (its tests
compare tables with the pure engine), so this module starts a stack of its own with the sweep
every second and a one-day TTL. Event time is the clock: the idle user's TTL passes because
another user's later events move the worker's stream time forward, not because of wall time.

Memory per user at 100k users is measured by ``bench/recovery.py`` and
``python -m tests.faults.measure_state`` (docs/GUARANTEES.md, item 7).

Example (the idle gap that triggers expiry, in ms)::

    >>> idle_gap_ms(ttl_days=1, margin_h=4)
    100800000
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
import redis

from stream_app.cli.rebuild_cmd import traces
from stream_app.serving import keys
from tests.faults.conftest import FAULT_ENV, ROOT
from tests.faults.workload import DAY, TableWatch, base_ts, send_all
from tests.helpers import TopicReader, running_stack, wait_until

pytestmark = pytest.mark.faults

TTL_DAYS = 1
HOUR = 3_600_000
EXPIRY_ENV = {**FAULT_ENV, "STREAM_APP_SWEEP_INTERVAL_S": "1",
              "STREAM_APP_STATE_TTL_DAYS": str(TTL_DAYS)}


def idle_gap_ms(ttl_days: int = TTL_DAYS, margin_h: int = 4) -> int:
    """How far the active user's later events are ahead of the idle user's last event."""
    return ttl_days * DAY + margin_h * HOUR


@pytest.fixture(scope="module")
def estack():
    """Broker + Redis + one worker with the clock sweep every second and a 1-day TTL."""
    yield from running_stack(ROOT / "var" / f"faults-expiry-{os.getpid()}", EXPIRY_ENV,
                             partitions=4, worker_timeout=180)


def _events(uid: str, t: int, n: int) -> list[dict]:
    """A profile, views and an order of ``uid`` from ``t`` on (tags, segments, zsets)."""
    out = [{"event_id": f"{uid}-reg", "user_id": uid, "ts": t, "type": "registered",
            "stream": "profile", "props": {"region": "sh", "age_band": "25-34"}},
           {"event_id": f"{uid}-pay", "user_id": uid, "ts": t + 60_000, "type": "order_paid",
            "stream": "order", "props": {"amount": 4999.0, "category": "python"}}]
    out += [{"event_id": f"{uid}-v{i}", "user_id": uid, "ts": t + (i + 2) * 60_000,
             "type": "course_view", "stream": "click", "props": {"course_id": "py"}}
            for i in range(n)]
    return out


def test_idle_user_expires_from_table_and_redis_active_user_stays(estack, report):
    run = uuid.uuid4().hex[:6]
    idle, active = f"exp-idle-{run}", f"exp-active-{run}"
    t = base_ts()
    first = _events(idle, t, 3) + _events(active, t + HOUR, 3)
    table = TableWatch(estack.bootstrap, estack.partitions)
    tags = TopicReader(estack.bootstrap, "tags.changes", estack.partitions)
    r = redis.Redis.from_url(estack.redis.url, socket_timeout=10)
    try:
        send_all(estack.bootstrap, first)
        wait_until(lambda: table.reader.poll() is not None and all(
            sum(table.states.get(u, {}).get("n", {}).values()) == 5 for u in (idle, active)),
            timeout=90, what="both users' events in the table")
        wait_until(lambda: r.exists(keys.user_key("default", idle))
                   and len(traces(r, idle)) > 1, timeout=30,
                   what="the idle user's profile and segments in Redis")
        held = dict(table.states[idle]["tags"])
        before = traces(r, idle)
        assert held, "the idle user has no tags"
        # control: with the stream time within the TTL, sweeps (every second) expire nobody
        time.sleep(4)
        table.reader.poll()
        assert idle in table.states and idle not in table.reader.tombstones, (
            "the user was expired before the TTL passed")
        assert traces(r, idle) == before
        # the active user's later events move the stream time past the idle user's TTL
        later = t + 2 * HOUR + 3 * 60_000 + idle_gap_ms()
        send_all(estack.bootstrap, [
            {"event_id": f"{active}-late{i}", "user_id": active, "ts": later + i * 60_000,
             "type": "course_view", "stream": "click", "props": {"course_id": "java"}}
            for i in range(2)])
        t0 = time.monotonic()
        wait_until(lambda: table.reader.poll() is not None and idle in table.reader.tombstones,
                   timeout=60, what="a tombstone for the idle user in the users changelog")
        in_table_s = time.monotonic() - t0
        wait_until(lambda: not traces(r, idle), timeout=30,
                   what=f"no Redis key or set member for the idle user (had {before})")
        took = time.monotonic() - t0
        removed = wait_until(lambda: (lambda got: got if len(got) >= len(held) else None)(
            [c for c in tags.poll() if c["user_id"] == idle and c["reason"] == "expired"]),
            timeout=30, what="tag removals with reason 'expired'")
        table.reader.poll()
        active_state = table.states.get(active)
        report.add(f"idle user expiry (TTL {TTL_DAYS}d)", len(first) + 2, len(first) + 2, 0,
                   0, 0, took,
                   f"tombstone {in_table_s:.1f}s and 0 Redis traces {took:.1f}s after the "
                   f"stream time passed the TTL; {len(before)} Redis keys/sets before; "
                   f"{len(removed)} 'expired' removals; active user kept")
        assert idle not in table.states
        assert {c["tag_id"] for c in removed} == set(held)
        assert all(c["new"] is None for c in removed)
        assert not r.exists(keys.user_key("default", idle))
        # the active user is untouched: still in the table with all its events, and in Redis
        assert active_state is not None and active not in table.reader.tombstones
        assert sum(active_state["n"].values()) == 7
        assert r.exists(keys.user_key("default", active))
        assert len(traces(r, active)) > 1
        assert not [c for c in tags.poll() if c["user_id"] == active
                    and c["reason"] == "expired"]
    finally:
        table.close()
        tags.close()
