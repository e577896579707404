"""End offsets for table recovery are checked by reading (tansu reports the first offset of
the last record batch; a restore that trusted it would stop short)."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stream_app.kafka_io import make_producer, true_end_offsets


def test_true_end_offsets_count_every_record(stack) -> None:
    topic = f"test.ends.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    producer = make_producer(stack.bootstrap)
    sent = {0: 3000, 1: 17}
    for part, n in sent.items():
        for i in range(n):
            producer.produce(topic, key=f"k{i}", value=b"v" * 64, partition=part)
    assert producer.flush(30) == 0
    probe = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": "ends-test"})
    reported = {(topic, p): probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in sent}
    probe.close()
    checked = true_end_offsets(stack.bootstrap, reported)
    assert checked == {(topic, p): n for p, n in sent.items()}
    assert all(checked[k] >= reported[k] for k in reported)


def test_table_reader_reads_the_whole_last_batch(stack) -> None:
    """`redis-rebuild` and `rules diff` read a changelog with TableReader: a last record
    batch larger than one consume call must still be read whole (the reported end is that
    batch's first offset)."""
    from confluent_kafka import Producer

    from stream_app.cli.rebuild_cmd import TableReader

    topic = f"test.table-ends.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 3000,
                         "batch.num.messages": 100_000, "batch.size": 16_000_000,
                         "message.max.bytes": 16_000_000, "compression.type": "lz4"})
    n = 25_000
    for i in range(n):
        producer.produce(topic, key=f'"u{i}"', value=b'{"uid":"u%d","tags":{}}' % i,
                         partition=0)
    assert producer.flush(30) == 0
    reader = TableReader(stack.bootstrap, topic, 1)
    try:
        states = reader.read_all(60)
    finally:
        reader.close()
    assert reader.records == n
    assert len(states) == n and f"u{n - 1}" in states
