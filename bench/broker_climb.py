"""How the embedded broker's latency and CPU grow while a consumer reads the tail
(docs/PERFORMANCE.md item 44).

One case: a fresh tansu, one topic of ``--partitions`` partitions, a confluent-kafka producer
sending ``--rate`` records/s for ``--seconds`` with ``linger.ms`` of the case, and a
confluent-kafka consumer on the tail (``fetch.wait.max.ms`` 50, ``fetch.min.bytes`` of the
case). Per ``--segment`` seconds of sending: the p50/p99 latency of the records sent in it
(send -> receipt) and tansu's CPU µs per record sent. With ``--preload-s``, another topic
first takes that many seconds of records in small batches, with nobody reading it: whether
what other topics hold makes a fetch dearer.

What it showed on these machines: tansu's cost per record climbs within a minute when the
records come in small batches (linger 5 ms) and flattens with a tenth of the batches (linger
50 ms); raising ``fetch.min.bytes`` lowers it late in a run but adds more wait than it
saves; another topic's batches do not count.
So tansu's cost per fetch grows with the batches held by the partitions it reads, which is
why the benchmark's broker-alone reference sends each record to a copy of its own input
topic (``--latency-broker-layout``). Apache Kafka finds a fetch offset by its index.
Results: ``bench/results/broker-climb-<date>.json``.

Usage::

    python -m bench.broker_climb                                  # linger 5 and 50 ms
    python -m bench.broker_climb --linger-ms 5 --fetch-min-bytes 1,65536 --seconds 30
    python -m bench.broker_climb --linger-ms 5 --preload-s 60 --seconds 30
    python -m bench.broker_climb --linger-ms 5 --preload-s 60 --preload-read --seconds 30
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench.measure import cpu_seconds, percentiles
from stream_app.services.topics_admin import create_topics

REPO = Path(__file__).resolve().parent.parent


def segments(sends: Sequence[tuple[float, float]], cpu: Sequence[tuple[float, float]],
             ) -> list[dict[str, Any]]:
    """Per segment of sending: the latency of the records sent in it and the broker's CPU
    µs per record sent. ``sends``: (send time, latency ms) of each received record;
    ``cpu``: (time, broker CPU seconds) at each segment's edges.

    Example:
        >>> segments([(0.5, 10.0), (1.5, 30.0), (1.6, 50.0)], [(0, 0.0), (1, 0.001), (2, 0.01)])
        [{'t': 0, 'n': 1, 'p50': 10.0, 'p99': 10.0, 'broker_us_per_record': 1000.0}, \
{'t': 1, 'n': 2, 'p50': 40.0, 'p99': 49.8, 'broker_us_per_record': 4500.0}]
    """
    t0 = cpu[0][0]
    out = []
    for (a, ca), (b, cb) in zip(cpu, cpu[1:], strict=False):
        lat = [ms for t, ms in sends if a <= t < b]
        if not lat:
            continue
        p = percentiles(lat, (50, 99))
        out.append({"t": round(a - t0), "n": len(lat), "p50": p["p50"], "p99": p["p99"],
                    "broker_us_per_record": round((cb - ca) / len(lat) * 1e6, 1)})
    return out


def paced(rate: float, seconds: float) -> Iterator[int]:
    """0, 1, 2, ... each at its due time, ``rate`` a second, for ``seconds``.

    Example:
        >>> next(paced(10.0, 1.0))           # the first at once
        0
        >>> list(paced(10.0, 0.0))           # no time, nothing sent
        []
    """
    t0 = time.monotonic()
    n = 0
    while (now := time.monotonic()) - t0 < seconds:
        if t0 + n / rate > now:
            time.sleep(t0 + n / rate - now)
        yield n
        n += 1


def _preload(bootstrap: str, partitions: int, rate: float, seconds: float) -> int:
    """Another topic takes ``seconds`` of records at ``rate`` in small batches, unread."""
    from stream_app.kafka_io import make_producer  # noqa: PLC0415

    create_topics(bootstrap, partitions, extra={"broker-climb.preload": partitions})
    p = make_producer(bootstrap, **{"linger.ms": 5})
    sent = 0
    for n in paced(rate, seconds):
        p.produce("broker-climb.preload", key=str(n % 5000).encode(), value=b"y" * 200)
        p.poll(0)
        sent = n + 1
    p.flush(30)
    return sent


def run_case(linger_ms: int, min_bytes: int, args: argparse.Namespace) -> dict[str, Any]:
    """One case on a fresh broker: the segments and the case's settings."""
    from stream_app.kafka_io import make_producer, read_assigned  # noqa: PLC0415
    from stream_app.services.broker import EmbeddedBroker  # noqa: PLC0415

    with EmbeddedBroker(workdir=REPO / "var" / "bench") as broker:
        pid = broker.process.pid
        preloaded = (_preload(broker.bootstrap, args.partitions, args.rate, args.preload_s)
                     if args.preload_s else 0)
        topic = f"broker-climb.{uuid.uuid4().hex[:8]}"
        create_topics(broker.bootstrap, args.partitions, extra={topic: args.partitions})
        # with --preload-read the consumer also reads the preloaded topic, from its end (its
        # old batches in every fetch, no records), as the worker reads its internal topics
        read_other = bool(preloaded and args.preload_read)
        read = [topic, "broker-climb.preload"] if read_other else topic
        consumer = read_assigned(broker.bootstrap, read, args.partitions,
                                 from_beginning=not read_other,
                                 **{"fetch.wait.max.ms": 50, "fetch.min.bytes": min_bytes})
        sends: list[tuple[float, float]] = []
        stop = threading.Event()

        def consume() -> None:
            while not stop.is_set():
                m = consumer.poll(0.05)     # returns at the first record (consume() waits)
                # (tansu's end offset is its last batch's first: a few preloaded records come)
                if m is not None and not m.error() and m.topic() == topic:
                    sent = float(m.value()[:17])
                    sends.append((sent, (time.time() - sent) * 1000))

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        time.sleep(2)                       # the consumer's first fetch before any record
        producer = make_producer(broker.bootstrap, **{"linger.ms": linger_ms})
        pad = b"x" * 190
        cpu = [(time.time(), cpu_seconds(pid))]
        n = sent_at_edge = 0
        for i in paced(args.rate, args.seconds):
            producer.produce(topic, key=str(i % 5000).encode(),
                             value=b"%17.6f" % time.time() + pad)
            producer.poll(0)
            n = i + 1
            if time.time() - cpu[-1][0] >= args.segment:
                cpu.append((time.time(), cpu_seconds(pid)))
                sent_at_edge = n
        if sent_at_edge != n:
            cpu.append((time.time(), cpu_seconds(pid)))   # the last, shorter segment
        producer.flush(30)
        time.sleep(1.5)                     # the last fetches
        stop.set()
        reader.join(10)
        consumer.close()
    return {"linger_ms": linger_ms, "fetch_min_bytes": min_bytes, "sent": n,
            "received": len(sends), "preloaded_other_topic": preloaded,
            "other_topic_read": read_other,
            "segments": segments(sends, cpu)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.broker_climb", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1750.0, help="records/s sent")
    ap.add_argument("--seconds", type=float, default=90.0, help="seconds of sending per case")
    ap.add_argument("--segment", type=float, default=15.0, help="seconds per reported segment")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--linger-ms", default="5,50", help="comma list: the producer's linger")
    ap.add_argument("--fetch-min-bytes", default="1", help="comma list: the consumer's")
    ap.add_argument("--preload-s", type=float, default=0.0,
                    help="seconds of records into another topic first (unread by default)")
    ap.add_argument("--preload-read", action="store_true",
                    help="the consumer also reads the preloaded topic, from its end")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args(argv)
    cases = [(int(lg), int(mb)) for lg in args.linger_ms.split(",")
             for mb in args.fetch_min_bytes.split(",")]
    res: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k != "out"},
                           "cases": []}
    for i, (linger, min_bytes) in enumerate(cases, 1):
        print(f"[broker-climb] case {i}/{len(cases)}: linger {linger} ms, fetch.min.bytes "
              f"{min_bytes}, {args.rate:g} records/s for {args.seconds:g} s", flush=True)
        case = run_case(linger, min_bytes, args)
        for s in case["segments"]:
            print(f"  t={s['t']:>4} s  p50 {s['p50']:7.1f}  p99 {s['p99']:7.1f} ms  "
                  f"tansu {s['broker_us_per_record']:6.0f} µs/record", flush=True)
        res["cases"].append(case)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"broker-climb-{time.strftime('%Y-%m-%dT%H%M', time.gmtime())}.json"
    path.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))
    print(f"[broker-climb] results: {path}")
    return res


if __name__ == "__main__":
    main()
