"""The ceiling: confluent-kafka produce and consume rates of the same records on the same broker,
and broker-alone latency (producer to consumer) at a fixed rate with the workers' fetch wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.measure import p99_over_time, percentiles
from bench.workload import Record
from stream_app.services.topics_admin import create_topics

TOPIC = "bench.ceiling"


def throughput(bootstrap: str, records: Sequence[Record], partitions: int,
               at_least: int = 500_000) -> dict[str, Any]:
    """Produce the records to one topic (repeated up to ``at_least``, so the run lasts long
    enough to time), then consume them all back; events/s of each."""
    from stream_app.kafka_io import make_producer, produce, read_assigned  # noqa: PLC0415

    records = list(records) * max(1, -(-at_least // max(len(records), 1)))

    create_topics(bootstrap, partitions, extra={TOPIC: partitions})
    p = make_producer(bootstrap)
    t0 = time.perf_counter()
    for i, (_, key, value, _) in enumerate(records):
        produce(p, TOPIC, key, value)
        if i % 10_000 == 0:
            p.poll(0)
    p.flush(120)
    produce_s = time.perf_counter() - t0
    c = read_assigned(bootstrap, TOPIC, partitions)
    n = 0
    t0 = None  # from the first record: leaves out assignment and the first fetch
    deadline = time.perf_counter() + 120
    while n < len(records) and time.perf_counter() < deadline:
        for m in c.consume(num_messages=10_000, timeout=0.05):
            if not m.error():
                if t0 is None:
                    t0 = time.perf_counter()
                n += 1
    # a partial last batch may add up to the 50 ms timeout: small against 500k records
    t1 = time.perf_counter()
    consume_s = t1 - (t0 or t1)
    c.close()
    return {"events": len(records), "produce_eps": round(len(records) / produce_s),
            "consume_eps": round(n / consume_s), "consumed": n}


class Pacer:
    """Produce records at a fixed rate in 10 ms slices; remember each event's send time.

    With ``stamp``, each value is rewritten at its send as ``stamp(value, send time)``
    (e.g. :class:`bench.workload.WallStamper`: event time = produce time)."""

    def __init__(self, producer: Any, rate: float,
                 stamp: Callable[[bytes, float], bytes] | None = None) -> None:
        self.producer = producer
        self.rate = rate
        self.stamp = stamp
        self.sent_at: dict[str, float] = {}

    def run(self, records: Sequence[Record], topic: str | None = None) -> float:
        """Send ``records`` (to their own topic, or ``topic``); return the achieved rate."""
        from stream_app.kafka_io import produce  # noqa: PLC0415

        t0 = time.time()
        i = 0
        n = len(records)
        while i < n:
            due = min(n, int((time.time() - t0) * self.rate) + 1)
            while i < due:
                t, key, value, eid = records[i]
                self.sent_at[eid] = now = time.time()
                if self.stamp is not None:
                    value = self.stamp(value, now)
                produce(self.producer, topic or t, key, value)
                i += 1
            self.producer.poll(0)
            time.sleep(0.01)
        self.producer.flush(30)
        return n / max(time.time() - t0, 1e-9)


def latency(bootstrap: str, records: Sequence[Record], partitions: int, rate: float,
            fetch_wait_ms: int, block: int | None = None,
            keep_values: bool = False, layout: str = "one") -> dict[str, Any]:
    """Broker-alone end-to-end latency: confluent producer -> confluent consumer at ``rate``,
    the consumer with ``fetch.wait.max.ms=fetch_wait_ms`` (the workers' setting).
    ``block``: one of several blocks at this rate (each on a topic of its own, so a block
    never reads an earlier one's records); ``keep_values``: the latencies themselves too
    (``values``), to merge blocks. ``layout``: ``one``, every record to one topic of
    ``partitions`` partitions; ``inputs``, each record to a copy of its own input topic
    (``<block topic>.<topic>``, ``partitions`` each: the topics and partitions a worker reads
    the same records from, without the worker reading them)."""
    from stream_app.kafka_io import make_producer, read_assigned  # noqa: PLC0415

    topic = f"bench.latency.{int(rate)}" + (f".b{block}" if block is not None else "")
    if layout == "inputs":
        names = {t: f"{topic}.{t}" for t in sorted({r[0] for r in records})}
        records = [(names[t], k, v, e) for t, k, v, e in records]
    elif layout == "one":
        names = {topic: topic}
    else:
        raise ValueError(f"layout must be 'one' or 'inputs', not {layout!r}")
    create_topics(bootstrap, partitions, extra=dict.fromkeys(names.values(), partitions))
    c = read_assigned(bootstrap, list(names.values()), partitions, from_beginning=True,
                      **{"fetch.wait.max.ms": fetch_wait_ms})
    lat: list[float] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set() or len(lat) < len(records):
            m = c.poll(0.05)  # returns at the first record (consume() waits for a batch)
            if m is not None and not m.error():
                lat.append(time.time() * 1000 - m.timestamp()[1])
            if stop.is_set() and time.time() > stop_at[0]:
                break

    stop_at = [float("inf")]
    th = threading.Thread(target=consume, daemon=True)
    th.start()
    time.sleep(2)  # let the consumer fetch once before the first record
    achieved = Pacer(make_producer(bootstrap), rate).run(
        records, topic if layout == "one" else None)
    stop_at[0] = time.time() + 10
    stop.set()
    th.join(15)
    c.close()
    # (receipt order: the send order but for the interleaving of the partitions)
    return {"rate": round(rate), "achieved_rate": round(achieved), "n": len(lat),
            **percentiles(lat), "p99_quarters": p99_over_time(lat),
            **({"values": lat} if keep_values else {})}
