"""No input record reaches a stream before table recovery and the seek to committed offsets.

The bug this closes (docs/GUARANTEES.md, "Records lost around a rebalance"): Faust 0.15's
``Recovery.on_recovery_completed`` resumes the input partitions, then awaits
``Consumer.perform_seek()`` (one committed-offset request per partition on the consumer
thread), and only then calls ``app.flow_control.resume()``. The fetcher is already running
(it was started to read the changelogs) and flow control is already active, so during that
await input records fetched from the committed offsets are delivered into the agents'
stream queues. ``FlowControlEvent.resume()`` then *clears* every stream queue
(``clear_on_resume=True``): the records still waiting there are dropped without being
processed or acknowledged, while Faust's per-partition read offset already counts them as
read, so they are not delivered again. The next records are processed and acknowledged, and
``Consumer._new_offset`` commits past the hole (it only refuses a hole of more than one
offset above the committed offset, and none when nothing was committed yet): the dropped
records are committed without ever being applied. Measured with a probe (a worker that logs
every record yielded by the consumer, handled by the agent and committed): the record at the
committed offset of a partition was yielded before the seek finished, never handled, and the
first commit after the restart moved past it. faust-streaming #216 and #221 describe the
same window.

A second path loses records at the *start* of a rebalance: a stream task that was handed an
event just before flow control was suspended (revocation) skips it because flow is inactive
or its generation is stale, and *acknowledges* it (``Stream.__aiter__``, so that lag does not
grow). Faust has by then dropped the partition's commit bookkeeping (``_committed_offset``),
so the commit made while waiting for the streams to drain (``wait_empty``) moves past it.

The guard (mixed into the consumer in :mod:`stream_app.app.transport`):

1. **Gate.** Input (non-changelog) partitions are not *fetched* while the gate is closed:
   :meth:`RecoveryGuard._getmany` leaves them out of the partitions it asks aiokafka for, so
   their records stay in aiokafka and its position does not move. The gate opens only when
   table recovery has completed and the rebalance has ended (``recovery.completed`` set and
   ``app.rebalancing`` false), i.e. after the seek to the committed offsets and after the
   queue-clearing ``flow_control.resume()``. Changelog partitions are always fetched, so
   recovery itself proceeds.
2. **Hold back.** A record of an input partition that arrives anyway while the gate is closed
   (a fetch that was in flight when a rebalance started) is not handed on, and neither are the
   partition's later records in that batch. A new generation starts every partition again
   from its committed offset; if the record belongs to the current generation the partition
   is sought back to it (``Consumer.seek``, which also resets Faust's read offset).
3. **No stale acknowledgements.** An acknowledgement of an input record while the gate is
   closed, or of a record from an older generation, is not recorded as committable (the
   message still leaves the set of unacknowledged messages, so draining does not wait for
   it). Such a record is read again from the committed offset after the rebalance; if it was
   processed, the state's ``event_id`` window recognises the copy. Effect: at least once,
   never "committed without being applied".

Example (the gate rule, no broker needed):
    >>> gate_open(recovery_completed=False, rebalancing=True)
    False
    >>> gate_open(recovery_completed=True, rebalancing=True)
    False
    >>> gate_open(recovery_completed=True, rebalancing=False)
    True
    >>> gate_open(recovery_completed=False, rebalancing=False, client_only=True)
    True
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP, Message
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

log = logging.getLogger(__name__)

#: how long the fetcher waits before asking again while only held-back partitions are active
GATE_POLL_S = 0.05


def gate_open(recovery_completed: bool, rebalancing: bool, client_only: bool = False) -> bool:
    """True when input records may be handed to streams (see the module docstring)."""
    return client_only or (recovery_completed and not rebalancing)


@dataclass
class HoldBack:
    """Records held back in one fetched batch: the first offset per partition (to rewind to).

    Example:
        >>> hb = HoldBack()
        >>> hb.hold("p0", 7), hb.hold("p0", 8), hb.hold("p1", 3)
        (True, False, True)
        >>> hb.first, hb.records
        ({'p0': 7, 'p1': 3}, 3)
        >>> hb.holding("p0"), hb.holding("p2")
        (True, False)
    """

    first: dict[Any, int] = field(default_factory=dict)
    records: int = 0

    def hold(self, tp: Any, offset: int) -> bool:
        """Hold back one record; True when it is the partition's first (rewind to it)."""
        self.records += 1
        if tp in self.first:
            return False
        self.first[tp] = offset
        return True

    def holding(self, tp: Any) -> bool:
        return tp in self.first


class RecoveryGuard:
    """Consumer mixin: input records flow to streams only when :func:`gate_open` says so.

    Use it before Faust's consumer class: ``class C(RecoveryGuard, driver.Consumer)``.
    Counters ``held_back`` (records not handed on), ``rewinds`` (seeks back) and
    ``stale_acks`` (acknowledgements not counted as committable) are kept on the consumer
    for logs and probes.
    """

    held_back: int = 0
    rewinds: int = 0
    stale_acks: int = 0

    def streams_may_flow(self) -> bool:
        """The gate (see :func:`gate_open`), read from the app's recovery state."""
        app: Any = self.app  # type: ignore[attr-defined]
        completed = getattr(app.tables.recovery, "completed", None)
        return gate_open(bool(completed is not None and completed.is_set()),
                         bool(app.rebalancing), bool(app.client_only))

    async def _getmany(self, active_partitions: set[TP] | None,
                       timeout: float) -> Mapping[TP, list[Any]]:
        """Fetch only changelog partitions while the gate is closed."""
        if active_partitions is not None and not self.streams_may_flow():
            is_changelog = self._is_changelog_tp  # type: ignore[attr-defined]
            active_partitions = {tp for tp in active_partitions if is_changelog(tp)}
            if not active_partitions:
                # never pass an empty set: aiokafka then drains *every* partition
                await asyncio.sleep(min(timeout, GATE_POLL_S))
                return {}
        return await super()._getmany(active_partitions, timeout)  # type: ignore[misc]

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's ``getmany`` with input records held back while the gate is closed."""
        batch = HoldBack()
        is_changelog = self._is_changelog_tp  # type: ignore[attr-defined]
        async for tp, message in super().getmany(timeout):  # type: ignore[misc]
            if batch.holding(tp) or not (is_changelog(tp) or self.streams_may_flow()):
                if batch.hold(tp, message.offset):
                    await self._rewind(tp, message)
                continue
            yield tp, message
        if batch.records:
            self.held_back += batch.records
            log.info("recovery guard: held back %d input records fetched during a rebalance "
                     "(first offsets %s)", batch.records,
                     {f"{tp.topic}/{tp.partition}": o for tp, o in batch.first.items()})

    async def _rewind(self, tp: TP, message: Message) -> None:
        """Seek ``tp`` back to a held-back record of the current generation (a new generation
        starts from the committed offset anyway). Never waits: ``Consumer.seek`` only moves
        the position and resets Faust's read offset."""
        app: Any = self.app  # type: ignore[attr-defined]
        if getattr(message, "generation_id", None) != app.consumer_generation_id:
            return
        self.rewinds += 1
        try:
            await self.seek(tp, message.offset)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - revoked meanwhile: the new owner re-reads it
            log.info("recovery guard: no rewind of %s to %s (%r)", tp, message.offset, exc)

    def ack(self, message: Message) -> bool:
        """Faust's ``ack``, except that a stale acknowledgement (gate closed, or an older
        generation) of an input record is not made committable (see the module docstring)."""
        app: Any = self.app  # type: ignore[attr-defined]
        stale = (getattr(message, "generation_id", None) != app.consumer_generation_id
                 or not self.streams_may_flow())
        if stale and not self._is_changelog_tp(message.tp):  # type: ignore[attr-defined]
            with ack_lock:
                if message.acked:
                    return False
                message.acked = True
                self._unacked_messages.discard(message)  # type: ignore[attr-defined]
                self.stale_acks += 1
                notify(self._waiting_for_ack)  # type: ignore[attr-defined]
            return False
        return super().ack(message)  # type: ignore[misc]
