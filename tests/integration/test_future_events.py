"""Far-future events on a live worker (its clock on the wall time, default settings).

One event dated a year ahead used to move its partition's stream time (every later event
there dead-lettered as ``late``) and the clock sweep's (every idle user expired at once). The
worker now refuses an event dated more than ``STREAM_APP_MAX_FUTURE_MS`` (default one day)
after its wall clock: it goes to the dead-letter topic as ``ts_in_future`` with its bytes,
and the clocks do not move.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import orjson
import pytest

from stream_app.kafka_io import partition_of
from tests.helpers import DAY, Harness, TopicReader, event, running_stack, uid, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
PARTITIONS = 2


@pytest.fixture(scope="module")
def live_stack():
    yield from running_stack(ROOT / "var" / f"test-future-{os.getpid()}",
                             partitions=PARTITIONS, worker_timeout=240,
                             env={"STREAM_APP_SWEEP_INTERVAL_S": "1"})


def same_partition_users(n: int) -> list[str]:
    """``n`` new user ids that land on one partition (of every input topic)."""
    first = uid("fut")
    part = partition_of(first, PARTITIONS)
    out = [first]
    while len(out) < n:
        u = uid("fut")
        if partition_of(u, PARTITIONS) == part:
            out.append(u)
    return out


def test_a_far_future_event_is_refused_and_moves_no_clock(live_stack):
    h = Harness(live_stack)
    tags = TopicReader(live_stack.bootstrap, "tags.changes", PARTITIONS)
    dlq = TopicReader(live_stack.bootstrap, "events.dlq", PARTITIONS)
    try:
        early, victim, later = same_partition_users(3)
        now = int(time.time() * 1000)
        h.send("click", event(early, "course_view", now))
        tags.wait_for(user_id=early, tag_id="activity", timeout=90)
        ahead = orjson.dumps(event(victim, "course_view", now + 401 * DAY))
        h.send("click", ahead, key=victim)
        rec = wait_until(lambda: [r for r in dlq.poll() if r.get("reason") == "ts_in_future"
                                  and base64.b64decode(r["value_b64"]) == ahead],
                         60, what="the far-future event dead-lettered")[0]
        assert "STREAM_APP_MAX_FUTURE_MS" in rec["detail"]
        # an on-time event on the same partition after it is processed, not "late"
        h.send("click", event(later, "course_view", int(time.time() * 1000)))
        assert tags.wait_for(user_id=later, tag_id="activity", timeout=60)[0]["new"] == "low"
        time.sleep(4)   # several sweeps (every second): nobody expired, nothing else refused
        tags.poll()
        expired = [c for c in tags.where() if c.get("reason") == "expired"]
        assert expired == []
        assert not tags.where(user_id=victim)
        late = [r for r in dlq.poll() if r.get("reason") == "late"]
        assert late == []
    finally:
        tags.close()
        dlq.close()
        h.close()
