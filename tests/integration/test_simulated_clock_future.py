"""The far-future guard of a worker on ``stream-app dev``'s simulated clock, on a live stack.

``stream-app dev`` runs its workers with ``STREAM_APP_CLOCK_SPEED`` (the simulator's speed,
a simulated day per 30 wall seconds) and ``STREAM_APP_CLOCK_ORIGIN_MS`` (when the stack
started): its events are dated days ahead of the wall clock, so the guard
(``STREAM_APP_MAX_FUTURE_MS``, a day) is judged against that simulated clock
(``stream_app.clock.reference_ms``, ``agents.NOW_MS``). QA29 F2: dev had the guard off, and
one event dated 2028 moved the worker's clock and expired every user of the demo stack.

Here a worker runs with dev's settings, its origin ten minutes in the past (a dev stack that
has run for ten minutes: the simulated clock is ~20 days ahead of the wall clock):

- an event dated at the simulated clock (days ahead of the wall clock) is processed: a guard
  on the wall clock would refuse it;
- an event dated two years ahead of the simulated clock goes to ``events.dlq`` as
  ``ts_in_future``, its detail naming the simulated clock and its reading;
- it has not moved the worker's clock: a canary user whose state is just past the TTL is
  expired by the next sweep, and that change is stamped with the worker's clock, which is
  still at the processed event's time (it would be two years on had the event moved it);
  the first user is not expired;
- an event 12 h ahead of the simulated clock (within the allowance) is processed too.
"""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path

import orjson
import pytest

from stream_app.clock import reference_ms
from stream_app.kafka_io import partition_of
from tests.helpers import DAY, Harness, TopicReader, event, running_stack, uid, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
PARTITIONS = 2
#: ``stream-app dev``'s default speed (config/simulator.yaml live.speed)
SPEED = 2880.0
#: the stack "started" ten minutes ago: the simulated clock is 10 min x 2879 ~ 20 days ahead
ORIGIN_MS = int(time.time() * 1000) - 10 * 60_000
#: STREAM_APP_MAX_FUTURE_MS's default, which dev keeps
ALLOWANCE_MS = DAY
#: STREAM_APP_STATE_TTL_DAYS's default, which dev keeps
TTL_MS = 400 * DAY
HOUR = 3_600_000


@pytest.fixture(scope="module")
def dev_clock_stack():
    # the settings `stream-app dev` gives its workers (stream_app/cli/dev_cmd.py)
    yield from running_stack(ROOT / "var" / f"test-devclock-{os.getpid()}",
                             partitions=PARTITIONS, worker_timeout=240,
                             env={"STREAM_APP_CLOCK_SPEED": repr(SPEED),
                                  "STREAM_APP_CLOCK_ORIGIN_MS": str(ORIGIN_MS),
                                  "STREAM_APP_LATE_GRACE_MS": str(10 * 365 * DAY),
                                  "STREAM_APP_SWEEP_INTERVAL_S": "1"})


def same_partition_users(n: int) -> list[str]:
    """``n`` new user ids that land on one partition (of every input topic)."""
    first = uid("simclk")
    part = partition_of(first, PARTITIONS)
    out = [first]
    while len(out) < n:
        u = uid("simclk")
        if partition_of(u, PARTITIONS) == part:
            out.append(u)
    return out


def outcome(tags: TopicReader, dlq: TopicReader, user: str, raw: bytes) -> tuple[str, list]:
    """Wait until ``user``'s event was either tagged or dead-lettered; which one, and the
    records (so a wrong outcome fails at once instead of after a timeout)."""
    def seen():
        dead = [r for r in dlq.poll() if base64.b64decode(r["value_b64"]) == raw]
        if dead:
            return "dlq", dead
        tagged = tags.where(user_id=user)
        return ("tagged", tagged) if tagged else None
    return wait_until(seen, 90, what=f"{user}'s event tagged or dead-lettered")


def test_dev_clock_refuses_far_future_events_and_keeps_its_time(dev_clock_stack):
    h = Harness(dev_clock_stack)
    tags = TopicReader(dev_clock_stack.bootstrap, "tags.changes", PARTITIONS)
    dlq = TopicReader(dev_clock_stack.bootstrap, "events.dlq", PARTITIONS)
    simulated = reference_ms(SPEED, ORIGIN_MS)   # the worker's clock, read here
    try:
        first, victim, canary = same_partition_users(3)

        # dated at the simulated clock, days past the wall clock's (an event further ahead
        # moves the worker's clock at most STREAM_APP_CLOCK_MAX_AHEAD_MS past it: below)
        ts_first = simulated()
        assert ts_first > time.time() * 1000 + ALLOWANCE_MS + 10 * DAY   # (the premise)
        raw = orjson.dumps(event(first, "course_view", ts_first))
        h.send("click", raw, key=first)
        kind, recs = outcome(tags, dlq, first, raw)
        assert kind == "tagged", f"an event at the simulated clock: {recs}"
        assert {"activity": "low"}.items() <= {r["tag_id"]: r["new"] for r in recs}.items()

        # two years ahead of the simulated clock (the 2028 click of QA29 F2)
        before = simulated()
        ahead = orjson.dumps(event(victim, "course_view", before + 730 * DAY))
        h.send("click", ahead, key=victim)
        kind, recs = outcome(tags, dlq, victim, ahead)
        after = simulated()
        assert kind == "dlq", f"a far-future event was processed: {recs}"
        [rec] = recs
        assert rec["reason"] == "ts_in_future", rec
        assert "simulated clock" in rec["detail"], rec["detail"]
        # the guard's reading of its clock, in the detail, is the simulated time then
        judged = int(re.search(r"STREAM_APP_CLOCK_SPEED\) (\d+)", rec["detail"])[1])
        assert before - 5_000 <= judged <= after + 5_000, (before, judged, after)

        # the worker's clock did not move: a canary whose last event is exactly one TTL
        # before the first user's is expired by the next sweep, stamped with the clock's
        # time, which is just past ts_first (730 days on if the refused event had moved it)
        h.send("click", event(canary, "course_view", ts_first - TTL_MS))
        [gone, *_] = tags.wait_for(timeout=60, user_id=canary, reason="expired")
        assert ts_first < gone["ts"] < ts_first + HOUR, (gone["ts"] - ts_first) / DAY
        # several sweeps ran since the refusal: nobody else expired, nothing was late
        assert {r["user_id"] for r in tags.where(reason="expired")} == {canary}
        assert tags.where(user_id=first, tag_id="activity")[-1]["new"] == "low"
        assert h.store.tags("default", first).get("activity") == "low"
        assert not tags.where(user_id=victim)
        assert [r for r in dlq.poll() if r.get("reason") == "late"] == []

        # 12 h ahead of the simulated clock: within the allowance, processed
        later = uid("simclk")
        raw = orjson.dumps(event(later, "course_view", simulated() + 12 * HOUR))
        h.send("click", raw, key=later)
        kind, recs = outcome(tags, dlq, later, raw)
        assert kind == "tagged", f"an event within the simulated clock's allowance: {recs}"
    finally:
        tags.close()
        dlq.close()
        h.close()
