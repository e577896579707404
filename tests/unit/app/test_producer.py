"""FastProducer's flush semantics with a fake librdkafka handle (no broker, no Faust app):
a flush waits for the records queued before it, not for later ones, and a record that could
not be delivered fails the flush (so Faust does not commit its input offset)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pytest
from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka as driver

from stream_app.app.producer import FastProducer, _Epoch


class FakeMsg:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._t, self._p, self._o = topic, partition, offset

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


class FakeRk:
    """Queues produce calls; ``deliver(n, err)`` reports the oldest n, as poll() would."""

    def __init__(self) -> None:
        self.queued: deque[tuple[str, Any]] = deque()
        self.offset = 0

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.queued.append((topic, kwargs["on_delivery"]))

    def deliver(self, n: int, err: Any = None) -> None:
        for _ in range(n):
            topic, cb = self.queued.popleft()
            cb(err, FakeMsg(topic, 0, self.offset))
            self.offset += 1


class FakeBuffer:
    async def flush(self) -> None:
        return None


@pytest.fixture
def producer(monkeypatch) -> FastProducer:
    async def no_flush(self) -> None:
        return None
    monkeypatch.setattr(driver.Producer, "flush", no_flush)
    p = object.__new__(FastProducer)
    p._rk = FakeRk()
    p._epoch = _Epoch()
    p._closed = deque()
    p.__dict__["buffer"] = FakeBuffer()
    p.delivered = {}
    p.after_flush = []
    return p


def test_flush_waits_for_earlier_records_only(producer) -> None:
    async def run() -> list[str]:
        producer._loop = asyncio.get_running_loop()
        rk: FakeRk = producer._rk
        log: list[str] = []
        fut = await producer.send("t", b"k", b"v", None, None, None)
        producer.produce("t", "k", b"v2")
        flush = asyncio.ensure_future(producer.flush())
        await asyncio.sleep(0)
        producer.produce("t", "k", b"later")     # queued during the flush: next epoch
        await asyncio.sleep(0.01)
        log.append("flushed" if flush.done() else "waiting")
        rk.deliver(2)                             # the two records from before the flush
        await asyncio.wait_for(flush, 1.0)
        log.append("flushed")
        md = fut.result()
        log.append(f"offset {md.offset}")
        log.append(f"left {len(rk.queued)}")
        return log

    assert asyncio.run(run()) == ["waiting", "flushed", "offset 0", "left 1"]


def test_failed_delivery_fails_the_flush(producer) -> None:
    async def run() -> None:
        producer._loop = asyncio.get_running_loop()
        producer.produce("tags.changes", "u1", b"x")
        flush = asyncio.ensure_future(producer.flush())
        await asyncio.sleep(0)
        producer._rk.deliver(1, err="MSG_TIMED_OUT")
        await asyncio.wait_for(flush, 1.0)

    with pytest.raises(ProducerSendError, match="could not be delivered"):
        asyncio.run(run())


def test_empty_flush_returns_at_once(producer) -> None:
    async def run() -> bool:
        producer._loop = asyncio.get_running_loop()
        await asyncio.wait_for(producer.flush(), 0.5)
        return True

    assert asyncio.run(run())


def test_tracked_offsets_reach_the_after_flush_hooks_only_when_delivered(producer) -> None:
    async def run() -> tuple[dict, list, dict]:
        producer._loop = asyncio.get_running_loop()
        rk: FakeRk = producer._rk
        seen: list[dict] = []
        producer.after_flush.append(lambda: seen.append(dict(producer.delivered)))
        producer.produce_tracked("cl", b"u1", b"s1", 0)
        producer.produce("out", "u1", b"x")          # not tracked
        heard: list[int] = []
        producer.produce_tracked("cl", b"u2", b"s2", 0, on_delivered=heard.append)
        before = dict(producer.delivered)
        flush = asyncio.ensure_future(producer.flush())
        await asyncio.sleep(0)
        assert not seen                               # nothing delivered yet: no hook
        rk.deliver(3)                                 # offsets 0, 1, 2
        await flush
        assert heard == [0]
        producer.produce_tracked("cl", b"u3", b"s3", 0, on_delivered=heard.append)
        failing = asyncio.ensure_future(producer.flush())
        await asyncio.sleep(0)
        rk.deliver(1, err="broker down")
        with pytest.raises(ProducerSendError):
            await failing
        assert heard == [0]                           # a failed record is not delivered
        return before, seen, dict(producer.delivered)

    before, seen, after = asyncio.run(run())
    assert before == {}
    assert seen == [{("cl", 0): 2}]                  # the highest tracked offset, once
    assert after == {("cl", 0): 2}                    # the failed record moved nothing


def test_each_record_reports_to_the_epoch_it_was_queued_in(producer) -> None:
    """Reports share one callback per epoch: a failure after a flush began belongs to the
    next epoch, and the flush of the first still succeeds."""
    async def run() -> tuple[bool, str]:
        producer._loop = asyncio.get_running_loop()
        rk: FakeRk = producer._rk
        producer.produce("out", "u1", b"a")
        first = asyncio.ensure_future(producer.flush())
        await asyncio.sleep(0)
        producer.produce("out", "u2", b"b", partition=3)    # the next epoch
        rk.deliver(1)
        await asyncio.wait_for(first, 1.0)
        second = asyncio.ensure_future(producer.flush())
        await asyncio.sleep(0)
        rk.deliver(1, err="MSG_TIMED_OUT")
        try:
            await asyncio.wait_for(second, 1.0)
        except ProducerSendError as exc:
            return first.done() and first.exception() is None, str(exc)
        return False, "second flush did not fail"

    ok, err = asyncio.run(run())
    assert ok and "1 records could not be delivered (out: MSG_TIMED_OUT)" in err


def test_a_full_local_queue_waits_and_counts_the_record_once(producer) -> None:
    class FullOnce(FakeRk):
        def __init__(self) -> None:
            super().__init__()
            self.full, self.polls = 2, 0

        def produce(self, topic: str, **kwargs: Any) -> None:
            if self.full:
                self.full -= 1
                raise BufferError("queue full")
            super().produce(topic, **kwargs)

        def poll(self, timeout: float) -> int:
            self.polls += 1
            return 0

    rk = producer._rk = FullOnce()
    producer.produce("out", "u1", b"a")
    assert (len(rk.queued), rk.polls, producer._epoch.outstanding) == (1, 1, 1)


def test_headers_reach_librdkafka_on_both_paths(producer) -> None:
    """A re-published input record's header (stream_app/republished.py) is sent with it, also
    when the local queue was full first; records without headers get none."""
    seen: list[tuple[str, Any, Any]] = []

    class Recording(FakeRk):
        def __init__(self) -> None:
            super().__init__()
            self.full = 0

        def produce(self, topic: str, **kwargs: Any) -> None:
            if self.full:
                self.full -= 1
                raise BufferError("queue full")
            seen.append((topic, kwargs.get("headers"), kwargs.get("partition")))
            super().produce(topic, **kwargs)

        def poll(self, timeout: float) -> int:
            return 0

    rk = producer._rk = Recording()
    hdr = [("stream-app-republished", b"derived")]
    producer.produce("events.profile", "u1", b"a", headers=hdr)
    producer.produce("events.profile", "u1", b"b", partition=2, headers=hdr)
    producer.produce("tags.changes", "u1", b"c")
    rk.full = 1
    producer.produce("events.click", "u2", b"d", headers=[("stream-app-republished", b"rekeyed")])
    assert seen == [("events.profile", hdr, None), ("events.profile", hdr, 2),
                    ("tags.changes", None, None),
                    ("events.click", [("stream-app-republished", b"rekeyed")], None)]
    assert producer._epoch.outstanding == 4


def test_a_state_record_is_sent_only_after_the_records_queued_before_it(producer) -> None:
    """QA39 F4: an event's outputs reach the broker before the state record holding the event
    (a kill -9 between them left the state without its outputs, and the re-read event was
    dropped as a duplicate). The flush sends the held records and waits for them too."""
    async def run() -> list[Any]:
        producer._loop = asyncio.get_running_loop()
        rk: FakeRk = producer._rk
        seen: list[Any] = []
        producer.produce("tags.changes", "u1", b"change of e1")
        producer.produce_gated("users-changelog", b"u1", b"state after e1", 0)
        seen.append([t for t, _ in rk.queued])            # the state record is held
        producer._close()                                  # (the poll loop's close)
        producer.produce("tags.changes", "u2", b"change of e2")
        producer.produce_gated("users-changelog", b"u2", b"state after e2", 0)
        producer._advance()
        seen.append([t for t, _ in rk.queued])            # still held: e1's not delivered
        flush = asyncio.ensure_future(producer.flush())
        await asyncio.sleep(0)
        rk.deliver(1)                                      # e1's change
        await asyncio.sleep(0)
        seen.append([t for t, _ in rk.queued])            # u1's state sent, u2's held
        rk.deliver(2)                                      # e2's change, u1's state
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        seen.append([t for t, _ in rk.queued])
        seen.append(flush.done())                          # waits for u2's state too
        rk.deliver(1)
        await asyncio.wait_for(flush, 1.0)
        seen.append((producer.released, dict(producer.delivered)))
        return seen

    assert asyncio.run(run()) == [
        ["tags.changes"],
        ["tags.changes", "tags.changes"],
        ["tags.changes", "users-changelog"],
        ["users-changelog"],
        False,
        (2, {("users-changelog", 0): 3})]


def test_after_a_failed_delivery_no_state_record_is_sent(producer) -> None:
    async def run() -> tuple[list[str], str]:
        producer._loop = asyncio.get_running_loop()
        rk: FakeRk = producer._rk
        producer.produce("tags.changes", "u1", b"x")
        producer.produce_gated("users-changelog", b"u1", b"s", 0)
        flush = asyncio.ensure_future(producer.flush())
        await asyncio.sleep(0)
        rk.deliver(1, err="MSG_TIMED_OUT")
        try:
            await asyncio.wait_for(flush, 1.0)
        except ProducerSendError as exc:
            err = str(exc)
        producer.produce_gated("users-changelog", b"u2", b"s2", 0)   # later: dropped too
        try:
            await asyncio.wait_for(producer.flush(), 1.0)
        except ProducerSendError as exc:
            err += " | " + str(exc)
        return [t for t, _ in rk.queued], err

    queued, err = asyncio.run(run())
    assert queued == []
    assert "1 records could not be delivered" in err and "1 state records not sent" in err
    assert "| a record could not be delivered earlier" in err and "2 state records" in err
