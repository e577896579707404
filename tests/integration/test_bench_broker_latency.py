"""``bench.ceiling.latency`` on a real tansu: the broker-alone reference of the latency
points keeps every record's latency and the p99 of each quarter of its block."""

from __future__ import annotations

import pytest

from bench.ceiling import latency
from bench.workload import Record
from stream_app.services.broker import EmbeddedBroker


def test_broker_alone_latency_has_a_p99_per_quarter_of_its_block(tmp_path) -> None:
    records: list[Record] = [("events.click", f"u{i % 50}".encode(), b'{"n":%d}' % i, f"e{i}")
                             for i in range(400)]
    with EmbeddedBroker(workdir=tmp_path) as broker:
        res = latency(broker.bootstrap, records, partitions=2, rate=800.0, fetch_wait_ms=20,
                      keep_values=True)
    values = res["values"]
    assert res["n"] == len(values) == len(records)       # every record came back once
    quarters = res["p99_quarters"]
    assert len(quarters) == 4
    for i, q in enumerate(quarters):                     # each is the p99 of its own slice
        part = values[i * 100:(i + 1) * 100]
        assert min(part) <= q <= max(part)
    assert max(quarters) <= max(values) and res["p99"] >= min(quarters)


def test_the_inputs_layout_sends_each_record_to_a_copy_of_its_own_topic(tmp_path) -> None:
    """The same records as the worker reads them (topic by topic), on copies the worker
    does not read: the input topics themselves stay empty."""
    from stream_app.kafka_io import read_assigned

    records: list[Record] = [(("events.click", "events.order")[i % 2], f"u{i}".encode(),
                              b'{"n":%d}' % i, f"e{i}") for i in range(200)]
    with EmbeddedBroker(workdir=tmp_path) as broker:
        res = latency(broker.bootstrap, records, partitions=2, rate=800.0, fetch_wait_ms=20,
                      block=3, layout="inputs")
        assert res["n"] == len(records)
        for topic, expected in (("bench.latency.800.b3.events.click", 100),
                                ("bench.latency.800.b3.events.order", 100),
                                ("events.click", 0)):
            c = read_assigned(broker.bootstrap, topic, 2)
            got = sum(len(c.consume(1000, timeout=1.0)) for _ in range(3))
            c.close()
            assert got == expected, topic
    with pytest.raises(ValueError, match="layout"):
        latency("127.0.0.1:1", records, 2, 1.0, 20, layout="mirror")


def test_broker_climb_reports_each_segment_of_a_short_case(tmp_path) -> None:
    """``bench.broker_climb`` on a real tansu: every record sent comes back, each segment
    has its latency and the broker's CPU per record, and the file is written."""
    import orjson

    from bench import broker_climb

    res = broker_climb.main(["--seconds", "3", "--segment", "1", "--rate", "300",
                             "--linger-ms", "5", "--out", str(tmp_path)])
    (case,) = res["cases"]
    assert case["received"] == case["sent"] >= 850
    segs = case["segments"]
    assert len(segs) >= 2 and sum(s["n"] for s in segs) == case["sent"]
    assert all(0 < s["p50"] <= s["p99"] and s["broker_us_per_record"] > 0 for s in segs)
    (path,) = tmp_path.glob("broker-climb-*.json")
    assert orjson.loads(path.read_bytes())["cases"][0]["sent"] == case["sent"]
