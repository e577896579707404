"""A producer whose clock is hours ahead, on a live worker with the default far-future guard.

An event dated +8 h (Beijing time labelled UTC) is within ``STREAM_APP_MAX_FUTURE_MS`` (a
day): it is processed at its own time. It must not bring the clock sweep's time forward for
every other user of the worker: the worker's clocks move at most
``STREAM_APP_CLOCK_MAX_AHEAD_MS`` (a minute) past the wall clock. QA30 F3: one such page view
made the sweep run 8 h ahead (a learner idle 13.85 days alerted as "no study event for over
14 days", users inside the 30-day window tagged churned, changes stamped 8 h ahead).

The observable here is the state TTL: a canary whose last event is 4 h short of the TTL
would be expired by the next sweep if the skewed event had moved the clock 8 h on; a control
user already past the TTL is expired (the sweep runs, at the wall clock's time once a live
event brought the worker's event-time clock there).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from stream_app.kafka_io import partition_of
from tests.helpers import DAY, Harness, TopicReader, event, running_stack, uid

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
PARTITIONS = 2
HOUR = 3_600_000
#: STREAM_APP_STATE_TTL_DAYS's default
TTL_MS = 400 * DAY


@pytest.fixture(scope="module")
def skew_stack():
    # old events are accepted (a long late grace), so users near their TTL can be made;
    # the far-future guard and the clocks' cap keep their defaults
    yield from running_stack(ROOT / "var" / f"test-skew-{os.getpid()}",
                             partitions=PARTITIONS, worker_timeout=240,
                             env={"STREAM_APP_SWEEP_INTERVAL_S": "1",
                                  "STREAM_APP_LATE_GRACE_MS": str(10 * 365 * DAY)})


def same_partition_users(n: int) -> list[str]:
    """``n`` new user ids that land on one partition (of every input topic)."""
    first = uid("skew")
    part = partition_of(first, PARTITIONS)
    out = [first]
    while len(out) < n:
        u = uid("skew")
        if partition_of(u, PARTITIONS) == part:
            out.append(u)
    return out


def test_an_event_hours_ahead_does_not_move_the_sweep_for_other_users(skew_stack):
    h = Harness(skew_stack)
    tags = TopicReader(skew_stack.bootstrap, "tags.changes", PARTITIONS)
    try:
        control, canary, live, skewed = same_partition_users(4)
        now = int(time.time() * 1000)
        h.send("click", event(canary, "course_view", now - TTL_MS + 4 * HOUR))
        h.send("click", event(control, "course_view", now - TTL_MS - HOUR))
        tags.wait_for(user_id=canary, tag_id="activity", timeout=90)
        # a live event brings the worker's clock (event time) to the wall clock: the sweep
        # then expires the control, past its TTL, and not the canary
        h.send("click", event(live, "course_view", int(time.time() * 1000)))
        tags.wait_for(user_id=control, reason="expired", timeout=60)

        skewed_ts = int(time.time() * 1000) + 8 * HOUR
        h.send("click", orjson.dumps(event(skewed, "course_view", skewed_ts)), key=skewed)
        [rec, *_] = tags.wait_for(user_id=skewed, tag_id="activity", timeout=60)
        assert rec["new"] == "low" and rec["ts"] == skewed_ts   # processed at its own time
        time.sleep(4)   # several sweeps (every second)
        tags.poll()
        assert tags.where(user_id=canary, reason="expired") == [], \
            "one event 8 h ahead moved every user's clock: the canary expired 4 h early"
        assert {r["user_id"] for r in tags.where(reason="expired")} == {control}
    finally:
        tags.close()
        h.close()
