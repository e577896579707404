"""What "revenue", "refunds" and the step rates mean (QA37 F3, F4, F6).

* F3: the Prometheus money counters (``count_event`` -> ``metrics.biz_event``) count the
  amounts the money series count: ``amount_props`` (amount, then price), numeric strings.
* F6: revenue (营收) = trial purchases + course orders + renewals, gross of refunds; refunds
  are their own series and counter.
* F4: only step ratios that mean something within one window are published and watched (the
  homework and purchase -> order ratios of the same window measured almost nothing).
"""

from __future__ import annotations

from typing import Any

import pytest

from stream_app import metrics
from stream_app.anomaly.config import load_anomaly_config
from stream_app.app import business
from stream_app.business import BusinessAggregator, load_business_spec
from stream_app.business.spec import DEFAULT_PATH
from stream_app.errors import ConfigError
from stream_app.events import Event

T0 = 1_772_445_600_000   # an hour boundary
HOUR = 3_600_000

#: (event type, props, revenue, refunds)
MONEY_EVENTS: list[tuple[str, dict[str, Any], float, float]] = [
    ("order_paid", {"amount": 4980}, 4980.0, 0.0),
    ("order_paid", {"price": 2990}, 2990.0, 0.0),          # amount_props: [amount, price]
    ("order_paid", {"amount": "1999"}, 1999.0, 0.0),       # a numeric string
    ("order_paid", {"amount": 1999.5}, 1999.5, 0.0),
    ("order_paid", {"amount": "x", "price": 10}, 10.0, 0.0),
    ("order_paid", {"amount": -3}, 0.0, 0.0),
    ("trial_purchased", {"amount": 19.9}, 19.9, 0.0),      # trial lessons are revenue
    ("renewal", {"amount": "2990"}, 2990.0, 0.0),          # renewals are revenue
    ("refund", {"amount": 3980}, 0.0, 3980.0),             # not deducted: its own series
    ("registered", {"amount": 500}, 0.0, 0.0),             # no money step
]


def _event(i: int, type_: str, props: dict[str, Any], channel: str) -> Event:
    return Event(event_id=f"m{i}", user_id=f"u{i}", ts=T0 + i * 1000, type=type_,
                 stream="order", tenant="default", props={"channel": channel, **props})


def _counter(c: Any, channel: str) -> float:
    return c.labels(tenant="default", channel=channel)._value.get()


@pytest.fixture()
def worker(monkeypatch):
    monkeypatch.setattr(business, "aggregators", {})
    monkeypatch.setattr(business, "_pending", {})
    monkeypatch.setattr(business, "_last_sent", {})
    monkeypatch.setattr(business, "_wall", lambda: 0.0)
    return business


@pytest.mark.parametrize("channel", ["douyin", "bilibili"])
def test_prometheus_money_counters_count_what_the_series_count(worker, channel) -> None:
    part = ("events.order", 0)
    rev0 = _counter(metrics.BIZ_REVENUE, channel)
    ref0 = _counter(metrics.BIZ_REFUNDS, channel)
    points = [p for i, (type_, props, _, _) in enumerate(MONEY_EVENTS)
              for p in worker.count_event(_event(i, type_, props, channel), part)]
    points += worker._pending.pop(part, []) + worker.aggregators[part].advance(T0 + 2 * HOUR)
    series = {p.metric: p.num for p in points
              if p.window == "1h" and p.channel == channel and p.kind == "revenue"}
    revenue = sum(r for _, _, r, _ in MONEY_EVENTS)
    refunds = sum(r for _, _, _, r in MONEY_EVENTS)
    assert series["revenue"] == pytest.approx(revenue)
    assert series["refunds"] == pytest.approx(refunds)
    # the counters: the same definition (they read only a numeric "amount" of order_paid)
    assert _counter(metrics.BIZ_REVENUE, channel) - rev0 == pytest.approx(revenue)
    assert _counter(metrics.BIZ_REFUNDS, channel) - ref0 == pytest.approx(refunds)


def test_full_aggregator_series_revenue_and_refunds() -> None:
    agg = BusinessAggregator(load_business_spec())
    for i, (type_, props, _, _) in enumerate(MONEY_EVENTS):
        agg.add(_event(i, type_, props, "douyin"))
    points = agg.advance(T0 + 2 * HOUR)
    got = {(p.metric, p.channel): p.num for p in points
           if p.window == "1h" and p.start_ms == T0 and p.kind == "revenue"}
    assert got == {("revenue", "douyin"): pytest.approx(14988.4),
                   ("revenue", "all"): pytest.approx(14988.4),
                   ("refunds", "douyin"): 3980.0, ("refunds", "all"): 3980.0}
    assert agg.classify(_event(0, "refund", {"price": "12.5"}, "douyin")) == ("refund", 12.5)
    assert agg.classify(_event(0, "registered", {"amount": 5}, "douyin")) == ("lead", 0.0)


def test_money_series_definition_is_config_policy(tmp_path) -> None:
    spec = load_business_spec()
    assert spec.amount_series == {"trial_purchased": "revenue", "order_paid": "revenue",
                                  "renewal": "revenue", "refund": "refunds"}
    for name in spec.amounts:
        labels = spec.labels_of(name)
        assert labels["zh"] and labels["en"], name
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    bad = text.replace("refunds: {steps: [refund]", "refunds: {steps: [refund, renewal]")
    assert bad != text
    (tmp_path / "a.yaml").write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError, match="counts once"):
        load_business_spec(tmp_path / "a.yaml")


def test_homework_an_hour_after_lessons_is_not_a_published_rate(worker) -> None:
    """Lessons at 19:00, homework the next morning: no published rate, no gauge, sits near 0
    (before: the homework "rate" of the lesson windows was 0 and the submissions, in windows
    without a lesson, were in no point)."""
    part = ("events.study", 0)
    evs = []
    for i in range(30):
        evs.append(Event(event_id=f"l{i}", user_id=f"s{i}", ts=T0 + i * 1000,
                         type="lesson_attended", stream="study", props={"channel": "douyin"}))
    for i in range(20):
        evs.append(Event(event_id=f"h{i}", user_id=f"s{i}", ts=T0 + 16 * HOUR + i * 1000,
                         type="homework_submitted", stream="study",
                         props={"channel": "douyin"}))
    points = [p for ev in evs for p in worker.count_event(ev, part)]
    points += worker._pending.pop(part, []) + worker.aggregators[part].advance(T0 + 20 * HOUR)
    rates = {p.metric for p in points if p.kind == "rate"}
    assert rates == {"attendance"}


def test_watched_and_published_rates_mean_something_within_a_window() -> None:
    spec, watch = load_business_spec(), load_anomaly_config()
    # QA37 F4: homework (~16 h after the lesson) and purchase -> order (days after the trial)
    # are no same-window ratios; the kept ones follow within minutes or split one population
    assert set(spec.rates) == {"lead_to_trial", "trial_to_purchase", "attendance"}
    for name in ("homework", "purchase_to_order"):
        assert name not in watch.monitor, name
    produced = set(spec.counts) | set(spec.rates) | set(spec.amounts)
    assert set(watch.monitor) <= produced, set(watch.monitor) - produced
    for name, w in watch.monitor.items():
        assert w.zh and w.en, name
    for name in spec.rates:
        labels = spec.labels_of(name)
        assert labels["zh"] and labels["en"], name
