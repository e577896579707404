"""Item 6: hostile input through the real broker and worker. Thousands of generated payloads
(wrong types, huge strings, deep nesting, invalid UTF-8, NaN, year 9999, unknown fields,
empty user_id) on every input topic: the worker stays up and every record is either
processed or dead-lettered with a reason (count in = processed + DLQ)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.kafka_io import make_producer, produce
from tests.faults.workload import INPUTS, base_ts, end_offsets, live_workers, log_tail, scrape
from tests.helpers import wait_until

pytestmark = pytest.mark.faults
N_GENERATED = 2500
KNOWN = ["page_view", "course_view", "order_paid", "lesson_attended", "registered",
         "profile_updated", "outcome", "deletion_requested", "brand_new_type"]

scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                   st.text(max_size=20))
json_val = st.recursive(scalar, lambda c: st.one_of(st.lists(c, max_size=4),
                                                    st.dictionaries(st.text(max_size=8), c,
                                                                    max_size=4)),
                        max_leaves=12)


def strategies(run: str, base: int):  # noqa: ANN201
    uid = st.one_of(st.integers(0, 10**6).map(lambda i: f"fz-{run}-{i}"),
                    st.just(""), st.integers(), st.none(), st.text(max_size=160), json_val,
                    st.just("u" * 5000))
    ts = st.one_of(st.integers(base, base + 86_400_000), st.integers(),
                   st.just("9999-12-31T23:59:59+00:00"), st.just(float("nan")),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
                   st.booleans(), st.none(), st.just("2025-06-01T10:00:00"))
    etype = st.one_of(st.sampled_from(KNOWN), st.text(max_size=70), st.integers(), st.none())
    eid = st.one_of(st.uuids().map(str), st.text(max_size=200), st.integers(), st.none(),
                    st.just(""))
    props = st.one_of(
        st.dictionaries(st.sampled_from(["amount", "category", "region", "seconds"]),
                        st.one_of(st.integers(0, 10**5), st.text(max_size=10)), max_size=4),
        json_val,
        st.dictionaries(st.text(max_size=80), json_val, max_size=80),
        st.just({"s": "x" * 3000}),
        st.just({f"k{i}": i for i in range(200)}))
    doc = st.fixed_dictionaries(
        {"event_id": eid, "user_id": uid, "ts": ts, "type": etype, "props": props},
        optional={"tenant": st.one_of(st.just("t1"), st.text(max_size=70), st.integers()),
                  "unknown_field": json_val, "stream": st.text(max_size=40)})
    mangle = st.sampled_from(["none", "none", "none", "truncate", "bad_utf8", "drop_field"])
    return doc, mangle


def encode(doc: dict, how: str) -> bytes:
    if how == "drop_field":
        doc = {k: v for i, (k, v) in enumerate(doc.items()) if i != len(doc) % 5}
    raw = json.dumps(doc, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if how == "truncate":
        raw = raw[: max(1, len(raw) // 2)]
    elif how == "bad_utf8":
        raw = raw[:10] + b"\xff\xfe\xc3" + raw[10:]
    return raw


def key_for(doc: dict, run: str) -> str:
    u = doc.get("user_id")
    if isinstance(u, str) and 0 < len(u) <= 128:
        try:
            u.encode("utf-8")
            return u
        except UnicodeEncodeError:
            pass
    return f"fz-key-{run}"


def special_payloads(run: str, base: int) -> list[tuple[str, bytes]]:
    k = f"fz-key-{run}"
    ok = {"event_id": "e", "user_id": f"fz-{run}-special", "ts": base, "type": "page_view"}
    return [
        (k, b"[" * 100_000),                                               # deep nesting
        (k, json.dumps({"a": {"b": [[[[[[[[[[{"c": 1}]]]]]]]]]]}}).encode()),
        (k, b'{"event_id":"e","user_id":"x","ts":NaN,"type":"page_view"}'),  # NaN
        (k, json.dumps(dict(ok, ts="9999-12-31T23:59:59+00:00")).encode()),  # year 9999
        (k, json.dumps(dict(ok, ts=253402300799000)).encode()),
        (k, json.dumps(dict(ok, user_id="")).encode()),                    # empty user_id
        (k, b"\xff\xfe\xfd garbage"),                                      # invalid UTF-8
        (k, b""),
        (k, json.dumps(dict(ok, props={"s": "x" * 300_000})).encode()),    # oversized
        (k, json.dumps(dict(ok, props={"s": "y" * 900_000})).encode()),    # near max size
        (f"fz-{run}-special", json.dumps(dict(ok, props={f"p{i}": i for i in range(5000)})
                                         ).encode()),                      # unbounded props
        (f"fz-{run}-special", json.dumps(dict(ok, event_id="e2", unknown={"x": 1},
                                              props={"x": 1})).encode()),  # unknown field: ok
    ]


def test_fuzzed_payloads_are_processed_or_dead_lettered(fstack, report):
    run = uuid.uuid4().hex[:6]
    base = base_ts()
    doc_s, mangle_s = strategies(run, base)
    payloads: list[tuple[str, bytes]] = []

    @settings(max_examples=N_GENERATED, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(doc=doc_s, how=mangle_s)
    def generate(doc, how):
        payloads.append((key_for(doc, run), encode(doc, how)))

    generate()
    payloads += special_payloads(run, base)
    workers = live_workers(fstack)
    pids = {w.name: w.process.pid for w in workers}
    start = end_offsets(fstack.bootstrap, INPUTS, fstack.partitions)

    def consumed() -> float:
        return sum(scrape(w.url, "stream_app_events_consumed_total") for w in workers)

    consumed_before = consumed()
    from tests.faults.workload import DlqWatch

    dlq = DlqWatch(fstack.bootstrap, fstack.partitions)
    producer = make_producer(fstack.bootstrap, **{"message.max.bytes": 2_000_000})
    sent = Counter()
    t0 = time.monotonic()
    for i, (key, raw) in enumerate(payloads):
        topic = INPUTS[i % len(INPUTS)]
        produce(producer, topic, key.encode("utf-8"), raw)
        sent[topic] += 1
    assert producer.flush(60) == 0

    def mine() -> list[dict]:
        return [r for r in dlq.poll() if r.get("source_topic") in INPUTS
                and r["source_offset"] >= start[(r["source_topic"], r["source_partition"])]]

    seen: dict[str, object] = {}

    def balanced():
        records = mine()
        n_dlq, n_proc = len(records), consumed() - consumed_before
        seen.update(dlq=n_dlq, processed=n_proc, sent=len(payloads),
                    reasons=dict(Counter(r["reason"] for r in records)))
        return (n_dlq, n_proc) if n_dlq + n_proc >= len(payloads) else None

    try:
        try:
            wait_until(balanced, timeout=180, interval=1.0,
                       what="count in == processed + DLQ")
        except AssertionError as exc:   # say how far it got: which side is short
            logs = "\n".join(log_tail(w) for w in workers)
            raise AssertionError(f"{exc}; counts {seen}; DLQ reader errors "
                                 f"{dlq.errors[-5:]}; workers alive "
                                 f"{[w.alive() for w in workers]}\n{logs}") from None
        time.sleep(2)
        n_dlq, n_proc = len(mine()), int(consumed() - consumed_before)
        took = time.monotonic() - t0
        reasons = Counter(r["reason"] for r in mine())
        alive = [w for w in workers if w.alive() and w.process.pid == pids[w.name]]
        report.add(f"fuzz ({len(payloads)} hostile payloads)", len(payloads), n_proc, n_dlq,
                   max(0, len(payloads) - n_proc - n_dlq),
                   max(0, n_proc + n_dlq - len(payloads)), took,
                   "DLQ reasons: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
        assert len(alive) == len(workers), "a worker died on hostile input"
        assert all(w.ready() for w in workers)
        assert n_dlq + n_proc == len(payloads)
        assert n_proc > 0 and n_dlq > 0
        assert "internal_error" not in reasons, reasons
    finally:
        dlq.close()
