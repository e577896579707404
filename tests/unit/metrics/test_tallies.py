"""Tallied collectors (``metrics.CounterTally``, ``metrics.HistogramTally``): at every
collection, and after ``clear()``, the exposition is exactly what ``inc()`` / ``observe()``
per event gives (the reference: the same operations on an untallied twin collector)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from stream_app import metrics as m

BUCKETS = (0.005, 0.01, 0.5, 1.0, 60.0)
LABELS = st.sampled_from(["a", "b", "用户"])
AMOUNTS = st.one_of(st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
                    st.sampled_from([0.0, 0.005, 0.01, 60.0, 1e-300, math.inf]))
OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), LABELS, AMOUNTS),
    st.tuples(st.just("collect"), st.none(), st.none()),
    st.tuples(st.just("clear"), st.none(), st.none())), max_size=60)


def _body(registry: CollectorRegistry) -> list[bytes]:
    return [line for line in generate_latest(registry).splitlines() if b"_created" not in line]


def _pair(kind: str) -> tuple[CollectorRegistry, CollectorRegistry, object, object, object]:
    tallied, plain = CollectorRegistry(), CollectorRegistry()
    if kind == "counter":
        t = Counter("x", "x", ["l", "k"], registry=tallied)
        r = Counter("x", "x", ["l", "k"], registry=plain)
        return tallied, plain, t, r, m.CounterTally(t)
    t = Histogram("h", "h", ["o"], registry=tallied, buckets=BUCKETS)
    r = Histogram("h", "h", ["o"], registry=plain, buckets=BUCKETS)
    return tallied, plain, t, r, m.HistogramTally(t)


@settings(max_examples=150, deadline=None)
@given(OPS, st.sampled_from(["counter", "histogram"]))
def test_every_collection_shows_what_per_event_calls_show(ops, kind) -> None:
    tallied, plain, t, r, tally = _pair(kind)
    for op, label, amount in ops:
        if op == "add":
            if kind == "counter":
                tally.add((label, "k1"))
                r.labels(label, "k1").inc()
            else:
                tally.observe(label, amount)
                r.labels(label).observe(amount)
        elif op == "collect":
            assert _body(tallied) == _body(plain)
        else:
            t.clear()
            r.clear()
    assert _body(tallied) == _body(plain)


def test_the_sum_is_the_per_event_sum_not_a_regrouped_one() -> None:
    tallied, plain, t, r, tally = _pair("histogram")
    values = [0.1, 0.2, 0.3, 1e16, 1.0, -1e16, 0.7]   # float addition is not associative
    for i, v in enumerate(values):
        tally.observe("a", v)
        r.labels("a").observe(v)
        if i % 3 == 0:
            assert _body(tallied) == _body(plain)
    assert _body(tallied) == _body(plain)


def test_the_agent_collectors_are_tallied_and_render_folds_them() -> None:
    m.EVENTS_TALLY.add(("click", "tally_probe"))
    body, _ = m.render()
    assert b'stream_app_events_consumed_total{stream="click",type="tally_probe"} 1.0' in body
    m.observe_e2e("tally_probe", broker_ts_ms=1_000, now_ms=1_250)
    m.fold_tallies()
    assert m.E2E_LATENCY.labels("tally_probe")._sum.get() == 0.25
