"""Shared fixtures. Integration fixtures start the real tansu broker, a real redis-server and a
real stream-app worker once per test session (a consumer-group join takes ~30 s), on free
loopback ports, and stop them at the end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import TIMELESS_ENV, Harness, TopicReader, running_stack

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def stack():
    """Broker + Redis + topics + one ready worker (session-wide)."""
    yield from running_stack(
        ROOT / "var" / f"test-{os.getpid()}", partitions=2, worker_timeout=240,
        env={"STREAM_APP_SWEEP_INTERVAL_S": "1",
             # tests take disjoint time ranges: none is "late", none expires (TTL unit-tested)
             **TIMELESS_ENV,
             # the Redis timeline is off by default (tags.changes is the history); the
             # integration stack turns it on so the opt-in path is tested end to end
             "STREAM_APP_REDIS_TIMELINE": "5"})


@pytest.fixture(scope="session")
def harness(stack):
    """Producer and readers of the outputs, shared by the integration tests."""
    h = Harness(stack)
    yield h
    h.close()


@pytest.fixture()
def tags_reader(stack):
    r = TopicReader(stack.bootstrap, "tags.changes", stack.partitions)
    yield r
    r.close()
