"""A worker stopped while Redis is down: the Redis writes it still queues are not lost
without a word (QA31 F7: a SIGTERM during an outage dropped 16,279 queued writes; the API
then answered "no profile" for users the table held, and nothing said so).

At the stop the worker writes its queue for at most ``unwritten.DRAIN_S``; what is left is
logged as an error and recorded in ``redis-unwritten.json`` in its data directory. The next
start exports ``stream_app_redis_unwritten_ops`` (alert StreamAppRedisProjectionIncomplete)
until ``stream-app redis-rebuild --live`` re-projects the users, which clears it and brings
the missing users back; a rebuild run while the worker is down clears it at the next start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stream_app.app.unwritten import FILE, OPEN_FILE
from tests.faults.workload import scrape
from tests.helpers import (
    TIMELESS_ENV,
    Harness,
    TopicReader,
    event,
    running_stack,
    uid,
    wait_until,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
PARTITIONS = 2
USERS = 15


@pytest.fixture(scope="module")
def outage_stack():
    # a stop tries its queued writes for 2 s (10 by default): Redis is frozen through it
    yield from running_stack(ROOT / "var" / f"test-redis-stop-{os.getpid()}",
                             env={**TIMELESS_ENV, "STREAM_APP_REDIS_STOP_DRAIN_S": "2"},
                             partitions=PARTITIONS, worker_timeout=240)


def cli(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream_app", *args],
                          env={**os.environ, **stack.settings_env()},
                          capture_output=True, text=True, timeout=300)


def during_outage(redis_pid: int, h, tags, users: list[str], t: int, stop) -> None:
    """Freeze Redis, send a click of each user, wait for their tag changes (the Redis
    writes are then queued in the worker), call ``stop`` (SIGTERM or kill -9 the worker),
    thaw Redis."""
    os.kill(redis_pid, signal.SIGSTOP)        # Redis stops answering
    try:
        for u in users:
            h.send("click", event(u, "course_view", t))
        for u in users:
            tags.wait_for(timeout=90, user_id=u, tag_id="activity")
        stop()
    finally:
        os.kill(redis_pid, signal.SIGCONT)


def test_writes_left_at_a_stop_during_an_outage_are_reported_until_a_live_rebuild(
        outage_stack):
    s = outage_stack
    worker = s.workers[0]
    h = Harness(s)
    tags = TopicReader(s.bootstrap, "tags.changes", PARTITIONS)
    redis_pid = s.redis.process.proc.pid
    marker = Path(worker.env["STREAM_APP_DATADIR"]) / FILE
    try:
        t = h.base_ts()
        users = [uid("rstop") for _ in range(USERS)]
        # SIGTERM while the writes are queued
        during_outage(redis_pid, h, tags, users, t, lambda: worker.stop(timeout=60))
        assert marker.exists(), "the unwritten writes were not recorded"
        assert "not written at stop" in worker.log.read_text()
        assert all(not h.store.tags("default", u) for u in users)   # the loss is real

        s.restart_worker(worker)
        worker.wait_ready(240)
        lost = wait_until(lambda: scrape(worker.url, "stream_app_redis_unwritten_ops"),
                          60, what="the unwritten writes exported after the restart")
        assert lost > 0

        out = cli(s, "redis-rebuild", "--live")
        assert out.returncode == 0, out.stdout + out.stderr
        wait_until(lambda: all(h.store.tags("default", u).get("activity") for u in users),
                   120, what="the users re-projected")
        wait_until(lambda: scrape(worker.url, "stream_app_redis_unwritten_ops") == 0
                   and not marker.exists(), 60, what="the record cleared by the rebuild")

        # again, and this time the repair runs while the worker is down (QA32 F1): the
        # rebuild records when it started, and the restarted worker drops the record
        later = [uid("rstop2") for _ in range(5)]
        during_outage(redis_pid, h, tags, later, t, lambda: worker.stop(timeout=60))
        assert marker.exists()
        out = cli(s, "redis-rebuild")             # the workers stopped: it writes Redis itself
        assert out.returncode == 0, out.stdout + out.stderr
        assert all(h.store.tags("default", u).get("activity") for u in later)
        s.restart_worker(worker)
        worker.wait_ready(240)
        wait_until(lambda: not marker.exists(), 30, what="the record dropped at the start")
        assert scrape(worker.url, "stream_app_redis_unwritten_ops") == 0

        # and a kill -9 during an outage (no stop runs, session 29): the open marker the
        # worker keeps while its writes fail is found by the next start
        open_marker = Path(worker.env["STREAM_APP_DATADIR"]) / OPEN_FILE
        killed = [uid("rkill") for _ in range(5)]

        def kill_once_marked() -> None:
            wait_until(open_marker.exists, 60, what="the open marker of the outage")
            worker.kill()

        during_outage(redis_pid, h, tags, killed, t, kill_once_marked)
        assert not marker.exists()
        s.restart_worker(worker)
        worker.wait_ready(240)
        lost = wait_until(lambda: scrape(worker.url, "stream_app_redis_unwritten_ops"),
                          60, what="the writes of the killed run exported")
        assert lost > 0 and marker.exists() and not open_marker.exists()
        assert "ended without a stop" in worker.log.read_text()
        out = cli(s, "redis-rebuild", "--live")
        assert out.returncode == 0, out.stdout + out.stderr
        wait_until(lambda: all(h.store.tags("default", u).get("activity") for u in killed)
                   and scrape(worker.url, "stream_app_redis_unwritten_ops") == 0, 120,
                   what="the killed run's users re-projected and the record cleared")
    finally:
        tags.close()
        h.close()
