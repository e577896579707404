"""Hand a fetched batch to the streams in one go, so the next fetch is asked for at once.

Why (measured, docs/PERFORMANCE.md item 24): aiokafka sends one fetch per broker at a time
and leaves a partition out of the next fetch while its records wait in its buffer; the
buffer is emptied only when Faust's fetcher task asks for the next batch, which it does after
handing every record of the previous batch to the stream queues. Faust hands each record over
through ``Service.wait_first`` (four futures and at least one trip around the event loop per
record), and between two trips the agent processes one event (~1 ms). So a batch of 20
records took ~20-25 ms to hand over, the next fetch left that much later, and input waited
one fetch wait *plus* that delay: at half load, records reached the agent 35 ms (median) /
60-75 ms (p99) after they were produced, against 21 / 36 ms for a plain consumer.

How: each record's ``Consumer.callback`` coroutine (the conductor's delivery into the stream
queues) is first run eagerly, without a task. When it finishes without waiting (the queues
have room and flow control is active: the normal case) the record is handed over in
microseconds and the loop goes on to the next record. When it would wait (a full queue,
suspended flow control) the rest of it runs as a task raced against
``Consumer.suspend_flow``, exactly as Faust races it: a rebalance never waits on a full
queue. Read offsets, gap tracking for acknowledging topics and ``broker_commit_every`` are
kept as Faust keeps them. ``STREAM_APP_EAGER_DRAIN=false`` restores Faust's own loop.

Example (the eager step, no broker needed):
    >>> import asyncio
    >>> async def quick(): return 7
    >>> run_eagerly(quick())
    (True, 7)
    >>> async def slow(): await asyncio.sleep(0)
    >>> coro = slow(); done, _ = run_eagerly(coro); coro.close(); done
    False
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING

#: records handed over between two voluntary trips around the event loop (Faust: 100)
YIELD_EVERY = 100


def run_eagerly(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run ``coro`` up to its first suspension: ``(True, result)`` if it finished,
    ``(False, awaited)`` with what it waits on (a future, or None for a bare yield)."""
    try:
        awaited = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, awaited


async def finish(coro: Coroutine[Any, Any, Any], awaited: Any) -> Any:
    """Drive a coroutine started by :func:`run_eagerly` to its end, the way an asyncio task
    would: wait for the future it yielded, then resume it (it reads the result itself)."""
    try:
        while True:
            if awaited is None:
                await asyncio.sleep(0)
            else:
                awaited._asyncio_future_blocking = False
                await asyncio.wait((awaited,))
            try:
                awaited = coro.send(None)
            except StopIteration as stop:
                return stop.value
    except BaseException:
        coro.close()
        raise


class EagerDrain:
    """Consumer mixin: Faust's ``_drain_messages`` with the eager hand-over above.

    Use it before Faust's consumer class (``class C(EagerDrain, driver.Consumer)``); set
    ``eager_drain = False`` on the class or instance to fall back to Faust's loop.
    """

    eager_drain: bool = True

    async def _drain_messages(self, fetcher: Any) -> None:  # noqa: C901 - one loop, kept whole
        if not self.eager_drain:
            await super()._drain_messages(fetcher)  # type: ignore[misc]
            return
        consumer: Any = self
        callback = consumer.callback
        consumer_stopped = consumer._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        suspended = consumer.suspend_flow.is_set
        read_offsets = consumer._read_offset
        acks_enabled_for = consumer.app.topics.acks_enabled_for
        commit_every = consumer._commit_every
        diag = consumer.diag
        since_yield = 0
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                diag.set_flag(CONSUMER_FETCHING)
                batch = consumer.getmany(timeout=1.0)
                await asyncio.sleep(0)
                if consumer.should_stop:
                    continue
                async for tp, message in batch:
                    since_yield += 1
                    if since_yield > YIELD_EVERY:
                        since_yield = 0
                        await asyncio.sleep(0)
                    offset = message.offset
                    read = read_offsets[tp]
                    if read is not None and offset < read:
                        continue                      # read already (Faust drops it too)
                    if read and offset - read > 1 and acks_enabled_for(message.topic):
                        await consumer._add_gap(tp, read + 1, offset)
                    if commit_every is not None and consumer._n_acked >= commit_every:
                        consumer._n_acked = 0
                        await consumer.commit()
                    if not suspended():
                        await self._hand_over(callback(message))
                    read_offsets[tp] = offset
                diag.unset_flag(CONSUMER_FETCHING)
        except consumer.consumer_stopped_errors:
            if consumer.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if consumer.transport.app.should_stop:
                return
            raise
        finally:
            diag.unset_flag(CONSUMER_FETCHING)

    async def _hand_over(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Deliver one record: eagerly, or (when it must wait) raced against a suspension of
        the flow (a rebalance), as Faust does for every record."""
        done, awaited = run_eagerly(coro)
        if done:
            return
        consumer: Any = self
        rest = asyncio.ensure_future(finish(coro, awaited))
        try:
            await consumer.wait_first(rest, consumer.suspend_flow.wait())
        finally:
            if not rest.done():
                rest.cancel()
