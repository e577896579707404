"""confluent-kafka clients for tools (replay, simulator, dev summary, tests, benchmarks).

Producers use the ``murmur2_random`` partitioner, the same as Java clients and aiokafka
(Faust), so a user's events from every producer land on the same partition number of every
co-partitioned topic.

Example:
    >>> producer_config("127.0.0.1:9092")["partitioner"]
    'murmur2_random'
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson


def _security() -> dict[str, Any]:
    """SASL/TLS properties from ``STREAM_APP_KAFKA_*`` (empty for PLAINTEXT)."""
    from stream_app.security.kafka_auth import client_security_config  # noqa: PLC0415

    return client_security_config()


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Settings of a fast, retrying producer."""
    cfg: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 500000,
        "message.send.max.retries": 2147483647,
        "retry.backoff.ms": 200,
        "delivery.timeout.ms": 300000,
        "log_level": 2,
    }
    cfg.update(_security())
    cfg.update(overrides)
    return cfg


def partition_of(key: bytes | str, partitions: int) -> int:
    """The partition every producer here (``murmur2_random``), aiokafka and Java clients
    give ``key``.

    >>> partition_of(b"u1", 4) == partition_of("u1", 4) < 4
    True
    """
    from aiokafka.partitioner import murmur2  # noqa: PLC0415

    return (murmur2(key.encode() if isinstance(key, str) else key) & 0x7FFFFFFF) % partitions


#: seconds a command waits for a broker to answer before it says it cannot reach it
BROKER_CHECK_S = 10.0


def require_broker(bootstrap: str, timeout: float | None = None) -> Any:
    """The cluster's metadata; :class:`~stream_app.errors.UnreachableError` unless a broker
    at ``bootstrap`` answers within ``timeout`` seconds (default :data:`BROKER_CHECK_S`): a
    command fails at once with the address, instead of queueing records for minutes.

    Example (nothing listens on port 1):
        >>> require_broker("127.0.0.1:1", timeout=0.5)
        Traceback (most recent call last):
        ...
        stream_app.errors.UnreachableError: no Kafka broker answered at 127.0.0.1:1 within 0.5 s...
    """
    from confluent_kafka import KafkaException  # noqa: PLC0415
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    from stream_app.errors import UnreachableError  # noqa: PLC0415

    timeout = BROKER_CHECK_S if timeout is None else timeout
    why = "no broker in the metadata"
    try:
        md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0,
                          **_security()}).list_topics(timeout=timeout)
        if md.brokers:
            return md
    except KafkaException as exc:
        why = str(exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else exc)
    raise UnreachableError(
        f"no Kafka broker answered at {bootstrap} within {timeout:g} s ({why}); start one "
        "(`make run` embeds one) or point to it with --bootstrap or STREAM_APP_BROKER_URL")


def make_producer(bootstrap: str, **overrides: Any):  # noqa: ANN201 - confluent Producer
    from confluent_kafka import Producer  # noqa: PLC0415

    return Producer(producer_config(bootstrap, **overrides))


def connected_producer(bootstrap: str, **overrides: Any):  # noqa: ANN201
    """:func:`make_producer` once :func:`require_broker` found a broker (for commands)."""
    require_broker(bootstrap)
    return make_producer(bootstrap, **overrides)


def produce(producer: Any, topic: str, key: str | bytes | None, value: bytes | dict,
            partition: int | None = None,
            on_delivery: Callable[[Any, Any], None] | None = None) -> None:
    """Produce one record (to ``partition`` if given, else the partitioner's), waiting
    (polling) while the local queue is full. ``on_delivery(err, msg)`` is called from a
    later ``poll``/``flush`` with the broker's answer (``err`` None: delivered). A record the
    client refuses at once (larger than ``message.max.bytes``) raises ``KafkaException``.

    Example (a fake producer):
        >>> class P:
        ...     def produce(self, topic, key, value, **kw): print(topic, key, value, sorted(kw))
        >>> produce(P(), "events.click", "u1", {"a": 1}, on_delivery=print)
        events.click u1 b'{"a":1}' ['on_delivery']
    """
    if isinstance(value, dict):
        value = orjson.dumps(value)
    extra: dict[str, Any] = {} if on_delivery is None else {"on_delivery": on_delivery}
    if partition is not None:
        extra["partition"] = partition
    while True:
        try:
            producer.produce(topic, key=key, value=value, **extra)
            return
        except BufferError:
            producer.poll(0.05)


#: librdkafka's default ``message.max.bytes``: the largest record a producer sends
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000


def producer_message_limit(bootstrap: str) -> int:
    """The largest record (bytes) a producer of :func:`make_producer` sends.

    >>> producer_message_limit("127.0.0.1:9092")
    1000000
    """
    return int(producer_config(bootstrap).get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))


def topic_message_limit(bootstrap: str, topic: str, timeout: float = 5.0) -> int | None:
    """The broker's largest record for ``topic`` (its ``max.message.bytes`` config), or None
    when the broker does not say within ``timeout`` seconds.

    Example (nothing listens on port 1):
        >>> topic_message_limit("127.0.0.1:1", "events.click", timeout=0.2) is None
        True
    """
    from confluent_kafka.admin import AdminClient, ConfigResource  # noqa: PLC0415

    try:
        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, **_security()})
        res = ConfigResource(ConfigResource.Type.TOPIC, topic)
        entries = admin.describe_configs([res], request_timeout=timeout)[res].result(timeout)
        value = entries["max.message.bytes"].value
        return int(value) if value is not None else None
    except Exception:  # noqa: BLE001 - a detail of an error message, best effort
        return None


def make_consumer(bootstrap: str, topics: Iterable[str], group: str | None = None,
                  from_beginning: bool = True, **overrides: Any):  # noqa: ANN201
    from confluent_kafka import Consumer  # noqa: PLC0415

    cfg = {
        "bootstrap.servers": bootstrap,
        "group.id": group or f"stream-app-tool-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 50,
        "log_level": 2,
    }
    cfg.update(_security())
    cfg.update(overrides)
    c = Consumer(cfg)
    c.subscribe(list(topics))
    return c


def committed_offsets(bootstrap: str, group: str, topic: str,
                      partitions: int) -> dict[int, int]:
    """The offsets ``group`` committed on each partition of ``topic`` (-1 where none), read
    without joining the group (no rebalance of its members)."""
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "log_level": 2, **_security()})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: max(tp.offset, -1) for tp in got}
    finally:
        c.close()


def read_assigned(bootstrap: str, topic: str | Sequence[str], partitions: int,
                  from_beginning: bool = True, **overrides: Any):  # noqa: ANN201
    """A consumer assigned (no group join) to every partition of ``topic`` (or of each topic
    of a list: one consumer whose ``poll`` returns the first record of any of them)."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition  # noqa

    cfg = {"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
           "enable.auto.commit": False, "fetch.wait.max.ms": 50, "log_level": 2}
    cfg.update(_security())
    cfg.update(overrides)
    c = Consumer(cfg)
    off = OFFSET_BEGINNING if from_beginning else OFFSET_END
    topics = [topic] if isinstance(topic, str) else list(topic)
    c.assign([TopicPartition(t, p, off) for t in topics for p in range(partitions)])
    return c


def poll_json(consumer: Any, timeout: float = 0.5) -> Iterator[dict[str, Any]]:
    """Decode JSON values of the records one poll returns."""
    for msg in consumer.consume(num_messages=1000, timeout=timeout):
        if msg.error() or msg.value() is None:
            continue
        try:
            yield orjson.loads(msg.value())
        except orjson.JSONDecodeError:
            continue


def collect(consumers: dict[str, Any], until: Any, timeout: float) -> dict[str, list[dict]]:
    """Poll several assigned consumers until ``until(collected)`` is true or ``timeout``."""
    got: dict[str, list[dict]] = {k: [] for k in consumers}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, c in consumers.items():
            got[name].extend(poll_json(c, 0.1))
        if until(got):
            break
    return got


Ends = dict[tuple[str, int], int | None]


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The end offset (last offset + 1) of each partition of ``topic``: the broker's high
    watermark, checked with :func:`true_end_offsets` (tansu reports less)."""
    from confluent_kafka import TopicPartition  # noqa: PLC0415

    c = read_assigned(bootstrap, topic, partitions, from_beginning=False)
    try:
        reported: Ends = {(topic, p): c.get_watermark_offsets(TopicPartition(topic, p),
                                                              timeout=10)[1]
                          for p in range(partitions)}
    finally:
        c.close()
    return {p: end or 0 for (_, p), end in true_end_offsets(bootstrap, reported).items()}


def true_end_offsets(bootstrap: str, reported: Ends, idle_s: float = 0.3,
                     timeout_s: float = 10.0) -> Ends:
    """End offsets (last offset + 1) checked by reading from the reported ones.

    tansu 0.6.0 reports a partition's end as the first offset of its last record batch, not
    last offset + 1 (20,000 records in batches reported an end of 19,743). Faust restores a
    table only up to the reported end, so a restore would miss the tail of the last batch.
    This reads from each reported end until the partitions are quiet and returns
    ``max(reported, last offset read + 1)``: a no-op on a broker that reports correctly.
    """
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

    out = dict(reported)
    start = {k: v for k, v in reported.items() if v is not None and v >= 0}
    if not start:
        return out
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"end-probe-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 20, "log_level": 2,
                  **_security()})
    try:
        c.assign([TopicPartition(t, p, off) for (t, p), off in start.items()])
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < idle_s:
            msgs = c.consume(num_messages=1000, timeout=0.1)
            for m in msgs:
                if m.error() is None:
                    key = (m.topic(), m.partition())
                    out[key] = max(out[key] or 0, m.offset() + 1)
            if msgs:
                quiet_since = time.monotonic()
    finally:
        c.close()
    return out


Marks = dict[tuple[str, int], tuple[int, int]]


def backlog_of(marks: Marks, ends: Ends, committed: dict[tuple[str, int], int]) -> int:
    """Records not processed yet: per partition, its end minus where the group resumes (its
    committed offset, else the log start: the workers read from the earliest), summed.

    ``marks``: ``(low, high)`` watermarks; ``ends``: the checked ends
    (:func:`true_end_offsets`, the high watermark where None); ``committed``: -1 or absent
    where the group committed nothing.

    >>> marks = {("events.click", 0): (0, 100), ("events.click", 1): (40, 50)}
    >>> backlog_of(marks, {("events.click", 0): 120}, {("events.click", 0): 90})
    40
    """
    total = 0
    for key, (low, high) in marks.items():
        end = ends.get(key)
        end = high if end is None or end < 0 else end
        total += max(0, end - max(committed.get(key, -1), low, 0))
    return total


def group_backlog(bootstrap: str, group: str, topics: Sequence[str], partitions: int,
                  probe_s: float = 1.0) -> int:
    """Records of ``topics`` that consumer group ``group`` has not processed (committed) yet,
    read without joining the group: one consumer for the watermarks and the committed offsets,
    and :func:`true_end_offsets` (at most ``probe_s`` seconds of reading) for tansu's short
    ends. The ends are read before the committed offsets, so a busy group is not shown behind
    by what it processed meanwhile.

    Example (needs a broker)::

        group_backlog("127.0.0.1:9092", "stream-app", ["events.click"], 4)   # e.g. 1234
    """
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "log_level": 2, **_security()})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        marks: Marks = {(tp.topic, tp.partition): c.get_watermark_offsets(tp, timeout=10)
                        for tp in tps}
        ends = true_end_offsets(bootstrap, {k: high for k, (_, high) in marks.items()},
                                idle_s=0.2, timeout_s=probe_s)
        committed = {(tp.topic, tp.partition): tp.offset
                     for tp in c.committed(tps, timeout=10)}
    finally:
        c.close()
    return backlog_of(marks, ends, committed)



def read_to_end(bootstrap: str, topic: str, idle_s: float = 30.0,
                partitions: int | None = None) -> Iterator[Any]:
    """Every record of ``topic`` from the beginning up to its end offsets as of the call
    (checked by reading, :func:`end_offsets`), in offset order within each partition
    (records with errors skipped); ``partitions``: only the first N (default: all). A
    partition is done when the consumer's position reaches its end, not at a record's
    offset (compaction or a tombstone at the end leaves the last record short of it). A clear
    :class:`~stream_app.errors.UnreachableError` when no broker answers, or when no record
    comes for ``idle_s`` seconds before every end is reached (never a silent partial read);
    a topic that does not exist yet reads as empty."""
    from confluent_kafka import TopicPartition  # noqa: PLC0415

    from stream_app.errors import UnreachableError  # noqa: PLC0415

    found = require_broker(bootstrap).topics.get(topic)
    if found is None or found.error:
        return
    n = len(found.partitions) if partitions is None else min(partitions,
                                                            len(found.partitions))
    ends = end_offsets(bootstrap, topic, n)
    c = read_assigned(bootstrap, topic, n)
    try:
        lows = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0]
                for p in range(n)}
        left = {p for p in range(n) if ends.get(p, 0) > max(lows[p], 0)}
        moved = time.monotonic()
        while left:
            msgs = c.consume(num_messages=1000, timeout=0.2)
            for msg in msgs:
                if msg.error() is None and msg.offset() < ends.get(msg.partition(), 0):
                    yield msg
            if msgs:
                moved = time.monotonic()
                for tp in c.position([TopicPartition(topic, p) for p in left]):
                    if tp.offset is not None and tp.offset >= ends[tp.partition]:
                        left.discard(tp.partition)
            elif time.monotonic() - moved > idle_s:
                raise UnreachableError(
                    f"topic {topic} not read to its end: no record for {idle_s:g} s with "
                    f"partitions {sorted(left)} short of their end offsets")
    finally:
        c.close()
