"""Test helpers: produce events, read output topics, wait on conditions (never fixed sleeps)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from stream_app.kafka_io import make_producer, read_assigned


def uid(prefix: str = "u") -> str:
    """A user id unique to this test run."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def event(user_id: str, type_: str, ts: Any, props: dict | None = None, **extra: Any) -> dict:
    return {"event_id": extra.pop("event_id", uuid.uuid4().hex), "user_id": user_id, "ts": ts,
            "type": type_, "props": props or {}, **extra}


def wait_until(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2,
               what: str = "condition") -> Any:
    """Return the first truthy result of ``check()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")


class TopicReader:
    """Reads every partition of an output topic from the beginning (no group join)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.consumer = read_assigned(bootstrap, topic, partitions)
        self.records: list[dict] = []

    def poll(self) -> list[dict]:
        for msg in self.consumer.consume(num_messages=5000, timeout=0.2):
            if msg.error() or msg.value() is None:
                continue
            self.records.append(orjson.loads(msg.value()))
        return self.records

    def where(self, **match: Any) -> list[dict]:
        self.poll()
        return [r for r in self.records if all(r.get(k) == v for k, v in match.items())]

    def wait_for(self, timeout: float = 60.0, count: int = 1, **match: Any) -> list[dict]:
        return wait_until(lambda: (lambda got: got if len(got) >= count else None)(
            self.where(**match)), timeout, what=f"{count} record(s) matching {match}")

    def close(self) -> None:
        self.consumer.close()


T0 = 1714528800000  # 2024-05-01T10:00:00+08:00
DAY = 86_400_000


class Harness:
    """Producer plus Redis access against a running stack.

    The worker's clock is shared by all tests of a session and only moves forward, so each
    test takes its own time range with :meth:`base_ts` (400 days after the previous one).
    """

    _next_base = T0 + 400 * DAY

    def __init__(self, stack: Any) -> None:
        import redis

        from stream_app.serving.store import ProfileStore

        self.stack = stack
        self.producer = make_producer(stack.bootstrap)
        self.store = ProfileStore(stack.redis.url)
        self.redis = redis.Redis.from_url(stack.redis.url)

    def base_ts(self) -> int:
        """Start of a fresh 400-day time range for one test."""
        base = Harness._next_base
        Harness._next_base += 400 * DAY
        return base

    def send(self, stream: str, ev: dict | bytes, key: str | None = None) -> None:
        value = ev if isinstance(ev, bytes) else orjson.dumps(ev)
        if key is None and isinstance(ev, dict):
            key = ev.get("user_id")
        self.producer.produce(f"events.{stream}", key=key, value=value)
        self.producer.flush(10)

    def close(self) -> None:
        self.producer.flush(5)


#: settings for stacks whose tests take their own time ranges (Harness.base_ts): no event is
#: "late", and no idle user expires on the clock (lateness and TTL are tested on their own)
TIMELESS_ENV = {"STREAM_APP_LATE_GRACE_MS": str(100 * 365 * 86_400_000),
                "STREAM_APP_STATE_TTL_DAYS": str(100 * 365),
                # the ranges run years past the wall clock: no far-future guard
                "STREAM_APP_MAX_FUTURE_MS": "0"}


def running_stack(workdir: Any, env: dict[str, str], partitions: int,
                  worker_timeout: float) -> Any:
    """Generator for a pytest fixture: broker + Redis + topics + one ready worker, stopped
    (and everything it started) when the fixture ends."""
    from stream_app.services.stack import Stack  # noqa: PLC0415

    s = Stack(workdir=workdir, workers=0, partitions=partitions, env=env)
    try:
        s.start_services()
        s.add_worker(wait=True, timeout=worker_timeout)
        yield s
    finally:
        s.stop()
