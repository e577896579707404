"""Latency blocks on a fresh embedded broker (``python -m bench.run --latency-broker fresh``).

tansu's CPU per request grows with what it has taken (docs/PERFORMANCE.md, items 27 and 36):
after a 300k-event throughput phase it takes several times the CPU per record of a fresh
broker, on the two cores the worker also runs on, and the half-load p99 then measures that
growth more than stream-app (Apache Kafka's cost per record does not grow this way).
:class:`BrokerRenewer` moves the stack to a new tansu the way a worker moves to a new
cluster: the workers stop cleanly, every Faust changelog is copied with what log compaction
keeps (the latest record of each key), the workers' local stores are wiped, and new workers
restore their tables from the copied changelogs before they take events. Redis is kept.

Example (the compaction the copy applies)::

    >>> compact([(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"c", b"4"), (b"c", None)])
    {b'a': b'3', b'b': b'2'}
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: Faust names a table's changelog ``<app id>-<table>-changelog``
CHANGELOG_SUFFIX = "-changelog"
#: the copied changelogs' topic configs (tansu reports no config that was not set)
COMPACTED = {"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1"}


def compact(records: Iterable[tuple[bytes | None, bytes | None]]) -> dict[bytes | None, bytes]:
    """The latest value of each key, in first-seen key order; a tombstone (value None)
    drops its key."""
    out: dict[bytes | None, bytes] = {}
    for key, value in records:
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def changelog_topics(bootstrap: str, timeout: float = 30.0) -> dict[str, int]:
    """The Faust changelog topics on a broker and their partition counts."""
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout)
    return {name: len(t.partitions) for name, t in sorted(md.topics.items())
            if name.endswith(CHANGELOG_SUFFIX)}


def read_partition(bootstrap: str, topic: str, partition: int,
                   timeout: float = 300.0) -> Iterator[tuple[bytes | None, bytes | None]]:
    """Every record of one partition up to its end offset as of the call (checked by
    reading), as (key, value).

    Raises TimeoutError if the end is not reached within ``timeout`` seconds."""
    from confluent_kafka import TopicPartition  # noqa: PLC0415

    from stream_app.kafka_io import read_assigned, true_end_offsets  # noqa: PLC0415

    c = read_assigned(bootstrap, [], 0, **{"fetch.max.bytes": 64 << 20,
                                           "max.partition.fetch.bytes": 32 << 20})
    try:
        low, reported = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10,
                                                cached=False)
        # tansu reports the first offset of the last batch as the end (kafka_io)
        high = true_end_offsets(bootstrap, {(topic, partition): reported})[(topic, partition)]
        if high <= low:
            return
        c.assign([TopicPartition(topic, partition, low)])
        deadline = time.monotonic() + timeout
        while True:
            for msg in c.consume(num_messages=10_000, timeout=0.5):
                if msg.error():
                    raise RuntimeError(f"reading {topic}[{partition}]: {msg.error()}")
                yield msg.key(), msg.value()
                if msg.offset() >= high - 1:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}[{partition}]: end offset {high} not reached in "
                                   f"{timeout:.0f} s")
    finally:
        c.close()


def copy_changelogs(src: str, dst: str) -> dict[str, Any]:
    """Copy every changelog topic of broker ``src`` to broker ``dst``, compacted, each record
    to the partition it came from (a table's keys stay with their partitions). Returns
    what was read and written, per topic."""
    from confluent_kafka.admin import AdminClient, NewTopic  # noqa: PLC0415

    from stream_app.kafka_io import make_producer, produce  # noqa: PLC0415

    t0 = time.monotonic()
    topics = changelog_topics(src)
    admin = AdminClient({"bootstrap.servers": dst})   # (kept alive until its futures end)
    futures = admin.create_topics([NewTopic(t, num_partitions=n, replication_factor=1,
                                            config=COMPACTED) for t, n in topics.items()])
    for fut in futures.values():
        fut.result(30)
    producer = make_producer(dst, **{"linger.ms": 50, "batch.size": 1 << 20})
    out: dict[str, Any] = {"topics": {}, "read": 0, "written": 0, "bytes": 0}
    for topic, partitions in topics.items():
        before, written = out["read"], 0
        for p in range(partitions):
            latest = compact(_counted(read_partition(src, topic, p), out))
            for key, value in latest.items():
                produce(producer, topic, key, value, partition=p)
                written += 1
                out["bytes"] += len(value)
        if producer.flush(120) != 0:
            raise RuntimeError(f"copying {topic}: records still unsent after 120 s")
        out["topics"][topic] = {"partitions": partitions, "read": out["read"] - before,
                                "written": written}
        out["written"] += written
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def _counted(records: Iterator[Any], out: dict[str, Any]) -> Iterator[Any]:
    for r in records:
        out["read"] += 1
        yield r


class BrokerRenewer:
    """Moves a running stack and its workers to a fresh broker (:meth:`renew`).

    ``start_workers()`` starts the new workers on ``stack`` (it reads the stack's broker when
    called) and returns them ready; ``make_lag(stack)`` builds the group lag the latency
    blocks wait on. After :meth:`renew`, ``workers``, ``lag`` and :meth:`pids` are the new
    ones."""

    def __init__(self, stack: Any, workers: list[Any], lag: Any,
                 start_workers: Callable[[], list[Any]], make_lag: Callable[[Any], Any],
                 log: Callable[[str], None] = print) -> None:
        self.stack, self.workers, self.lag = stack, workers, lag
        self._start_workers, self._make_lag, self._log = start_workers, make_lag, log
        self.moves: list[dict[str, Any]] = []

    def pids(self) -> dict[str, int]:
        return {**{w.name: w.process.pid for w in self.workers},
                "tansu": self.stack.broker.process.pid,
                "redis-server": self.stack.redis.process.pid}

    def renew(self) -> dict[str, Any]:
        """Stop the workers, start a new broker with the stack's topics, copy the changelogs,
        stop the old broker, wipe the workers' stores, start new workers (they restore from
        the copy). Returns the timings of the move."""
        from stream_app.services.broker import EmbeddedBroker  # noqa: PLC0415
        from stream_app.services.topics_admin import create_topics  # noqa: PLC0415

        t0 = time.monotonic()
        s = self.stack
        names = [w.name for w in self.workers]
        for w in self.workers:
            w.stop(30)
            if w in s.workers:
                s.workers.remove(w)
        self.lag.close()
        old = s.broker
        new = EmbeddedBroker(workdir=s.workdir).start()
        try:
            create_topics(new.bootstrap, s.partitions)
            copied = copy_changelogs(old.bootstrap, new.bootstrap)
        except BaseException:
            new.stop()
            raise
        old.stop()
        s.broker = new
        for name in names:
            shutil.rmtree(s.workdir / name, ignore_errors=True)
        t1 = time.monotonic()
        self.workers = self._start_workers()
        self.lag = self._make_lag(s)
        move = {"copy": copied, "stop_copy_s": round(t1 - t0, 1),
                "restart_s": round(time.monotonic() - t1, 1)}
        self.moves.append(move)
        self._log(f"fresh broker {new.bootstrap}: {copied['written']:,} changelog records "
                  f"({copied['bytes'] / 1e6:.0f} MB) of {copied['read']:,} copied in "
                  f"{copied['seconds']} s; workers ready {move['restart_s']} s later")
        return move
