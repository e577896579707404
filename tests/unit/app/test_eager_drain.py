"""The eager hand-over of fetched batches (stream_app.app.eager_drain): a batch whose
delivery does not wait is handed over without a trip around the event loop; read offsets,
gaps and suspension behave as in Faust's loop; a delivery that must wait is finished as a task
or, when the flow is suspended meanwhile, abandoned (its coroutine closed)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from stream_app.app.eager_drain import YIELD_EVERY, EagerDrain, finish, run_eagerly

T = TP("clicks", 0)


class FakeConsumer(EagerDrain):
    """The attributes of Faust's consumer that ``_drain_messages`` uses, with one batch per
    ``getmany`` call taken from ``batches``; stops itself when they run out."""

    consumer_stopped_errors = (RuntimeError,)

    def __init__(self, batches: list[list[tuple[TP, Any]]], deliver: Any,
                 acking: bool = True) -> None:
        self.batches = batches
        self.callback = deliver
        self._stopped = asyncio.Event()
        self.suspend_flow = asyncio.Event()
        self._commit_every = None
        self._n_acked = 0
        self.gaps: list[tuple[TP, int, int]] = []
        self.should_stop = False
        self.diag = SimpleNamespace(set_flag=lambda f: None, unset_flag=lambda f: None)
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: acking))
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=True))
        self._read_offset: dict[TP, int | None] = _NoneDefault()

    async def getmany(self, timeout: float):  # noqa: ANN201 - async generator
        if not self.batches:
            self._stopped.set()
            return
        for tp, msg in self.batches.pop(0):
            yield tp, msg

    async def _add_gap(self, tp: TP, start: int, end: int) -> None:
        self.gaps.append((tp, start, end))

    async def commit(self) -> bool:
        return True

    async def wait_first(self, *aws: Any) -> None:
        futs = [asyncio.ensure_future(a) for a in aws]
        done, pending = await asyncio.wait(futs, return_when=asyncio.FIRST_COMPLETED)
        for f in pending:
            f.cancel()


class _NoneDefault(dict):
    def __missing__(self, key: Any) -> None:
        return None


def msg(offset: int, topic: str = "clicks") -> SimpleNamespace:
    return SimpleNamespace(offset=offset, topic=topic)


def drain(consumer: FakeConsumer) -> None:
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    asyncio.run(asyncio.wait_for(consumer._drain_messages(fetcher), 5))


def drain_beside_ticker(consumer: FakeConsumer, ticks: list[int]) -> None:
    """Drain while another task appends to ``ticks`` at each of its steps."""
    async def main() -> None:
        async def ticker() -> None:
            while True:
                ticks.append(1)
                await asyncio.sleep(0)
        t = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        await consumer._drain_messages(SimpleNamespace(_stopped=asyncio.Event()))
        t.cancel()
    asyncio.run(main())


def test_run_eagerly_finishes_a_coroutine_that_does_not_wait() -> None:
    async def add(a: int, b: int) -> int:
        return a + b
    assert run_eagerly(add(2, 3)) == (True, 5)


def test_finish_resumes_a_waiting_coroutine_with_its_result() -> None:
    async def main() -> int:
        fut = asyncio.get_running_loop().create_future()

        async def waits() -> int:
            return (await fut) * 10
        coro = waits()
        done, awaited = run_eagerly(coro)
        assert not done and awaited is fut
        task = asyncio.ensure_future(finish(coro, awaited))
        await asyncio.sleep(0)
        fut.set_result(4)
        return await task
    assert asyncio.run(main()) == 40


def test_a_batch_is_handed_over_in_order_without_a_trip_around_the_loop() -> None:
    seen: list[int] = []
    ticks: list[int] = []

    async def deliver(m: Any) -> None:
        seen.append(m.offset)
        ticks_at.append(len(ticks))

    ticks_at: list[int] = []
    batch = [(T, msg(i)) for i in range(YIELD_EVERY)]
    consumer = FakeConsumer([batch], deliver)

    drain_beside_ticker(consumer, ticks)
    assert seen == list(range(YIELD_EVERY))
    # the other task ran no step between the first and the last record of the batch
    assert ticks_at[0] == ticks_at[-1]
    assert consumer._read_offset[T] == YIELD_EVERY - 1


def test_read_records_are_skipped_and_gaps_recorded() -> None:
    seen: list[int] = []

    async def deliver(m: Any) -> None:
        seen.append(m.offset)
    consumer = FakeConsumer([[(T, msg(5)), (T, msg(3)), (T, msg(9))]], deliver)
    consumer._read_offset[T] = 4
    drain(consumer)
    assert seen == [5, 9]
    assert consumer.gaps == [(T, 6, 9)]
    assert consumer._read_offset[T] == 9


def test_no_gap_is_recorded_for_topics_without_acks() -> None:
    async def deliver(m: Any) -> None:
        return None
    consumer = FakeConsumer([[(T, msg(2)), (T, msg(8))]], deliver, acking=False)
    drain(consumer)
    assert consumer.gaps == []


def test_nothing_is_handed_over_while_the_flow_is_suspended() -> None:
    seen: list[int] = []

    async def deliver(m: Any) -> None:
        seen.append(m.offset)
    consumer = FakeConsumer([[(T, msg(1)), (T, msg(2))]], deliver)
    consumer.suspend_flow.set()
    drain(consumer)
    assert seen == []
    assert consumer._read_offset[T] == 2     # counted as read, like Faust's loop


def test_a_waiting_delivery_is_finished_when_its_queue_has_room() -> None:
    seen: list[int] = []

    async def main() -> None:
        room = asyncio.Event()

        async def deliver(m: Any) -> None:
            if m.offset == 1:
                await room.wait()         # a full stream queue
            seen.append(m.offset)
        consumer = FakeConsumer([[(T, msg(1)), (T, msg(2))]], deliver)
        drainer = asyncio.ensure_future(
            consumer._drain_messages(SimpleNamespace(_stopped=asyncio.Event())))
        await asyncio.sleep(0.01)
        assert seen == []                 # order kept: record 2 waits behind record 1
        room.set()
        await asyncio.wait_for(drainer, 5)
    asyncio.run(main())
    assert seen == [1, 2]


def test_a_suspension_abandons_a_waiting_delivery_and_closes_it() -> None:
    closed: list[int] = []
    seen: list[int] = []

    async def main() -> None:
        never = asyncio.Event()

        async def deliver(m: Any) -> None:
            try:
                if m.offset == 1:
                    await never.wait()
                seen.append(m.offset)
            except (asyncio.CancelledError, GeneratorExit):
                closed.append(m.offset)
                raise
        consumer = FakeConsumer([[(T, msg(1)), (T, msg(2))]], deliver)
        drainer = asyncio.ensure_future(
            consumer._drain_messages(SimpleNamespace(_stopped=asyncio.Event())))
        await asyncio.sleep(0.01)
        consumer.suspend_flow.set()       # a rebalance starts
        await asyncio.wait_for(drainer, 5)
    asyncio.run(main())
    assert closed == [1]
    assert seen == []                     # record 2 came while suspended: not handed over


def test_faust_loop_is_used_when_switched_off() -> None:
    class Base:
        called = False

        async def _drain_messages(self, fetcher: Any) -> None:
            Base.called = True

    class Switched(EagerDrain, Base):
        eager_drain = False

    asyncio.run(Switched()._drain_messages(None))
    assert Base.called


@pytest.mark.parametrize("n", [YIELD_EVERY + 1, 3 * YIELD_EVERY])
def test_long_batches_still_let_other_tasks_run(n: int) -> None:
    ticks: list[int] = []
    ticks_at: list[int] = []

    async def deliver(m: Any) -> None:
        ticks_at.append(len(ticks))
    consumer = FakeConsumer([[(T, msg(i)) for i in range(n)]], deliver)

    drain_beside_ticker(consumer, ticks)
    assert len(ticks_at) == n
    assert ticks_at[-1] > ticks_at[0]
