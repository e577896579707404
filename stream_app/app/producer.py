"""A Faust producer whose sends go through librdkafka (confluent-kafka), not aiokafka.

Why: aiokafka builds batches and writes produce requests in Python; in the worker's profile
its sender took ~18% of the CPU and each ``await topic.send`` another ~100 µs. librdkafka does
the same in C on its own threads: a ``produce`` call costs a few µs.

How it keeps the guarantees:

* every send (Faust's own table changelog writes and stream-app's outputs) goes into one
  librdkafka queue; Faust calls :meth:`FastProducer.flush` before it commits input offsets,
  and that waits until librdkafka has delivered everything queued so far. A crash before the
  flush loses only records whose input offsets were not committed: they are processed again
  (at-least-once, and the state de-duplicates by ``event_id``).
* a user's state record (the users table's changelog, :meth:`FastProducer.produce_gated`) is
  sent only once every record queued before it is delivered: the outputs of an event (tag
  changes, alerts) reach the broker before the state that holds the event. A ``kill -9``
  between the two used to leave the state (event id inside) without its outputs; the
  restarted worker then dropped the re-read event as a duplicate, and its tag changes were
  never published (QA39 F4). Now a crash can only lose the state with, or after, its outputs:
  the event is processed again and its outputs sent again (at-least-once).
* a delivery that fails for good (librdkafka retried until ``delivery.timeout.ms``) is counted
  and makes the next flush raise, so the offsets of lost outputs are never committed; no
  state record queued after it is sent (its outputs may be the lost ones).
* keys are partitioned with ``murmur2_random`` like aiokafka and Java clients, so a
  re-keyed record lands on the same partition as records of other producers.

Faust's futures are honoured: :meth:`send` returns an asyncio future resolved when the record
is delivered. Delivery reports are served by a task on the event loop that polls librdkafka
every 5-20 ms (no poll thread: no GIL hand-off per report).
:meth:`produce` is the future-less path for outputs whose delivery nobody awaits.

Example (no broker needed to build the configuration):
    >>> cfg = producer_settings("127.0.0.1:9092", linger_ms=5)
    >>> cfg["partitioner"], cfg["linger.ms"], cfg["enable.idempotence"]
    ('murmur2_random', 5, False)
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, RecordMetadata

from stream_app import metrics
from stream_app.config import get_settings

log = logging.getLogger(__name__)
#: seconds between polls for delivery reports when idle / when reports are flowing
POLL_IDLE_S = 0.02
POLL_BUSY_S = 0.005


def producer_settings(bootstrap: str, *, linger_ms: int = 5, acks: str = "all",
                      max_request_size: int = 16 * 1024 * 1024) -> dict[str, Any]:
    """librdkafka settings of the worker's producer (SASL/TLS from ``STREAM_APP_KAFKA_*``)."""
    from stream_app.kafka_io import producer_config  # noqa: PLC0415

    return producer_config(
        bootstrap,
        **{"linger.ms": linger_ms, "acks": acks, "enable.idempotence": False,
           "message.max.bytes": max_request_size, "batch.size": 1_000_000,
           "queue.buffering.max.kbytes": 1_048_576, "compression.type": "none"})


class _Epoch:
    """Records queued between two flushes; a flush waits for its epoch, not for later sends.

    Delivery reports of records without a future go to :meth:`report` (one bound method per
    epoch) and those of tracked records to the epoch's callback per ``on_delivered``
    (:meth:`tracker`), built once: no closure per record (measured 2.4 -> 1.1 µs of the
    event loop's CPU per record, produce and report, against a real broker).

    Example:
        >>> ep = _Epoch()
        >>> ep.outstanding = 2
        >>> ep.report(None, None)
        >>> ep.outstanding, ep.failed
        (1, 0)
        >>> ep.tracker({}, None) is ep.tracker({}, None)
        True
    """

    __slots__ = ("outstanding", "failed", "last_error", "done", "report", "gated",
                 "_trackers")

    def __init__(self) -> None:
        self.outstanding = 0
        self.failed = 0
        self.last_error: str | None = None
        self.done: asyncio.Event | None = None     # set when closed and nothing outstanding
        self.report = self._report                 # the bound method, made once
        #: state records held until this epoch's records are delivered (None: released)
        self.gated: list[tuple[Any, ...]] | None = []
        self._trackers: dict[Any, Any] = {}

    def _report(self, err: Any, msg: Any) -> None:
        """A record without a future was delivered (or failed for good); called by poll()."""
        self.outstanding -= 1
        if err is not None:
            _failed(self, err, msg)
        if self.outstanding == 0 and self.done is not None:
            self.done.set()

    def tracker(self, delivered: dict[tuple[str, int], int], on_delivered: Any) -> Any:
        """The delivery callback of tracked records (their offsets go to ``delivered``;
        ``on_delivered``, if any, is called with the partition), one per ``on_delivered``."""
        cb = self._trackers.get(on_delivered)
        if cb is None:
            report = self._report

            def cb(err: Any, msg: Any) -> None:
                report(err, msg)
                if err is None:
                    tp = (msg.topic(), msg.partition())
                    offset = msg.offset()
                    if offset > delivered.get(tp, -1):
                        delivered[tp] = offset
                    if on_delivered is not None:
                        on_delivered(tp[1])
            self._trackers[on_delivered] = cb
        return cb


def _failed(epoch: _Epoch, err: Any, msg: Any) -> None:
    """Count a record that could not be delivered: its epoch's flush will raise."""
    epoch.failed += 1
    epoch.last_error = f"{msg.topic()}: {err}"
    metrics.PRODUCE_ERRORS.labels(topic=msg.topic()).inc()
    log.error("delivery failed for good: %s: %s", msg.topic(), err)


class FastProducer(driver.Producer):
    """Faust producer: aiokafka kept for metadata and topic creation, records sent by librdkafka."""

    _rk: Any = None
    _epoch: _Epoch
    _poller: asyncio.Task | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: highest delivered offset per (topic, partition) of records sent by produce_tracked
        self.delivered: dict[tuple[str, int], int] = {}
        #: called after every successful flush (e.g. to persist table changelog offsets)
        self.after_flush: list[Any] = []

    #: records of closed epochs that failed for good, not yet reported by a flush
    _failed = 0
    _last_error: str | None = None
    #: a delivery failed for good: no state record is sent any more (until a restart)
    _poisoned = False
    #: state records released (sent after their epoch's records were delivered) / dropped
    released = 0
    dropped = 0

    async def on_start(self) -> None:
        await super().on_start()
        from confluent_kafka import Producer  # noqa: PLC0415

        self._loop = asyncio.get_running_loop()
        self._epoch = _Epoch()
        self._closed: deque[_Epoch] = deque()
        self._rk = Producer(self.rk_config())
        self._poller = asyncio.ensure_future(self._poll_loop())

    def rk_config(self) -> dict[str, Any]:
        """The librdkafka configuration, from the app's producer settings
        (``producer_linger_ms`` is ``STREAM_APP_PRODUCER_LINGER_MS``)."""
        return producer_settings(
            get_settings().kafka_bootstrap,
            linger_ms=5 if self.linger_ms is None else int(self.linger_ms),
            acks="all" if self.acks in (-1, "all") else str(self.acks),
            max_request_size=int(self.max_request_size))

    async def on_stop(self) -> None:
        if self._rk is not None:
            await self.flush()
            if self._poller is not None:
                self._poller.cancel()
            self._rk = None
        await super().on_stop()

    # -- sending ------------------------------------------------------------------------
    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   partition: int | None, timestamp: float | None, headers: Any, *,
                   transactional_id: str | None = None) -> asyncio.Future:
        """Queue one record; the returned future resolves to its RecordMetadata."""
        if transactional_id:
            raise ProducerSendError("transactions are not supported by the fast producer")
        fut = self._loop.create_future()
        self._produce(topic, key, value, partition, timestamp, headers, fut)
        return fut

    def produce(self, topic: str, key: bytes | str | None, value: bytes | None,
                partition: int | None = None,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        """Queue one output record without a future (delivery failures still fail a flush)."""
        if headers:   # rare (re-published input records): the general path takes them
            self._produce(topic, key, value, partition, None, headers, None)
            return
        epoch = self._epoch
        try:
            if partition is None:
                self._rk.produce(topic, value=value, key=key, on_delivery=epoch.report)
            else:
                self._rk.produce(topic, value=value, key=key, partition=partition,
                                 on_delivery=epoch.report)
        except BufferError:   # local queue full: the general path waits for room
            self._produce(topic, key, value, partition, None, None, None)
            return
        epoch.outstanding += 1

    def produce_tracked(self, topic: str, key: bytes | str, value: bytes | None,
                        partition: int, on_delivered: Any = None) -> None:
        """Queue one record and remember its offset once delivered (in :attr:`delivered`):
        a table's changelog write, whose offset a RocksDB store persists. ``on_delivered``
        (optional) is called with the partition when it is delivered."""
        epoch = self._epoch
        try:
            self._rk.produce(topic, value=value, key=key, partition=partition,
                             on_delivery=epoch.tracker(self.delivered, on_delivered))
        except BufferError:   # local queue full: the general path waits for room
            self._produce(topic, key, value, partition, None, None, None, track=True,
                          on_delivered=on_delivered)
            return
        epoch.outstanding += 1

    def produce_gated(self, topic: str, key: bytes | str, value: bytes | None,
                      partition: int, on_delivered: Any = None) -> None:
        """Queue a state record (a table's changelog write, tracked as by
        :meth:`produce_tracked`) to be sent once every record queued before it has been
        delivered: the outputs of the event it holds reach the broker first. Records held
        this way keep their order (one FIFO of epochs); :meth:`flush` sends and waits for
        those queued before it."""
        self._epoch.gated.append((topic, key, value, partition, on_delivered))

    def _close(self) -> _Epoch:
        """End the current epoch (later records go to a new one) and return it."""
        epoch, self._epoch = self._epoch, _Epoch()
        epoch.done = asyncio.Event()
        if epoch.outstanding == 0:
            epoch.done.set()
        self._closed.append(epoch)
        return epoch

    def _advance(self) -> None:
        """Retire the closed epochs whose records are all delivered, oldest first: their
        failures are kept for the next flush, their held state records are sent (or, once
        a delivery failed for good, dropped: the flush raises and nothing is committed)."""
        closed = self._closed
        while closed and closed[0].outstanding == 0:
            epoch = closed.popleft()
            gated, epoch.gated = epoch.gated, None
            if epoch.failed:
                self._failed += epoch.failed
                self._last_error = epoch.last_error or self._last_error
                self._poisoned = True
            if not gated:
                continue
            if self._poisoned:
                self.dropped += len(gated)
                log.error("%d state records not sent: an earlier record could not be "
                          "delivered (the flush fails, nothing more is committed)",
                          len(gated))
                continue
            send = self.produce_tracked
            for topic, key, value, partition, on_delivered in gated:
                send(topic, key, value, partition, on_delivered)
            self.released += len(gated)

    async def _retire(self, epoch: _Epoch) -> None:
        """Wait until ``epoch`` (closed) and every epoch before it are retired."""
        while True:
            self._advance()
            if epoch.gated is None:
                return
            await self._closed[0].done.wait()

    def _produce(self, topic: str, key: Any, value: Any, partition: int | None,
                 timestamp: float | None, headers: Any, fut: asyncio.Future | None,
                 track: bool = False, on_delivered: Any = None) -> None:
        epoch = self._epoch
        if track:
            report = epoch.tracker(self.delivered, on_delivered)
        elif fut is None:
            report = epoch.report
        else:
            report = self._reporter(epoch, fut)
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": report}
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp:
            kwargs["timestamp"] = int(timestamp * 1000)
        if headers:
            kwargs["headers"] = list(headers.items()) if isinstance(headers, dict) else headers
        while True:
            try:
                self._rk.produce(topic, **kwargs)
                break
            except BufferError:
                # local queue full: give librdkafka a moment (callbacks go to the report queue)
                self._rk.poll(0.05)
        epoch.outstanding += 1

    def _reporter(self, epoch: _Epoch, fut: asyncio.Future) -> Any:
        settle = self._settle

        def on_delivery(err: Any, msg: Any) -> None:   # called by poll(), on the event loop
            settle(epoch, fut, err, msg)
        return on_delivery

    async def _poll_loop(self) -> None:
        """Serve delivery reports from the event loop (no thread: no GIL hand-offs and no
        loop wake-ups per report; measured 17% of a worker's samples with a poll thread)."""
        rk = self._rk
        while True:
            served = rk.poll(0)
            if self._epoch.gated:    # state records wait: close their epoch to send them
                self._close()
            if self._closed:
                self._advance()
            await asyncio.sleep(POLL_BUSY_S if served or self._closed else POLL_IDLE_S)

    def _settle(self, epoch: _Epoch, fut: asyncio.Future | None, err: Any, msg: Any) -> None:
        """Resolve a record's future and count it off its epoch."""
        if err is not None:
            if fut is not None and not fut.done():
                fut.set_exception(ProducerSendError(str(err)))
        elif fut is not None and not fut.done():
            fut.set_result(_metadata(msg))
        epoch.report(err, msg)

    async def flush(self) -> None:
        """Wait until every record queued *before this call* is delivered.

        Faust calls this before it commits input offsets. Records the agents queue while we
        wait belong to the next epoch, so a flush under continuous load still ends (waiting
        for an empty queue would not).
        """
        await self.buffer.flush()
        if self._rk is not None:
            released = self.released
            await self._retire(self._close())
            if self.released != released:
                # state records held until now were just sent: wait for them too
                await self._retire(self._close())
            if self._failed or self._poisoned:
                failed, self._failed = self._failed, 0
                what = (f"{failed} records could not be delivered" if failed else
                        "a record could not be delivered earlier")
                raise ProducerSendError(
                    f"{what} ({self._last_error}); not committing"
                    + (f", {self.dropped} state records not sent" if self.dropped else ""))
            for hook in self.after_flush:
                hook()
        await super().flush()


def _metadata(msg: Any) -> RecordMetadata:
    ts = msg.timestamp()
    return RecordMetadata(topic=msg.topic(), partition=msg.partition(),
                          topic_partition=TP(msg.topic(), msg.partition()),
                          offset=msg.offset(), timestamp=ts[1] if ts else None,
                          timestamp_type=ts[0] if ts else None)

