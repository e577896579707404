"""Business metrics and metric-anomaly detection in the stream.

Each worker counts the funnel events of its own partitions (per tenant and channel, 1-minute
and 1-hour event-time windows; Prometheus counters as events arrive) and, when a window
closes, sends its partial points to ``metrics.partials`` (one partition). A single anomaly
agent merges the partials of all workers (counts add; rates are num/den sums), learns each
series' normal range (``stream_app.anomaly``) and publishes ``alerts.metric_anomaly`` when an
alarm opens, escalates or closes. The detectors' state is kept in a one-partition table, so
a restarted or moved anomaly agent does not warm up again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from stream_app import metrics
from stream_app.anomaly.monitor import AnomalyMonitor
from stream_app.app.context import runtime
from stream_app.app.main import app
from stream_app.app.topics import anomaly_topic
from stream_app.business import BusinessAggregator, SeriesPoint, load_business_spec, merge_points
from stream_app.events import Event

log = logging.getLogger(__name__)
MERGE_AFTER_S = 3.0        # wait this long for other workers' partials of a window
SAVE_EVERY_S = 30.0        # detector state checkpoint interval

spec = load_business_spec()
aggregator = BusinessAggregator(spec)
partials_topic = app.topic("metrics.partials", key_serializer="utf8", value_serializer="orjson",
                           partitions=1)
monitor_table = app.Table(
    "anomaly_monitor", default=None, partitions=1, use_partitioner=True,
    schema=faust.Schema(key_serializer="utf8", value_serializer="orjson"),
    extra_topic_configs={"retention.ms": "-1", "retention.bytes": "-1"},
    help="detector state of every watched business series")


def count_event(ev: Event) -> list[SeriesPoint]:
    """Count one valid event; return the partial points of windows it closed."""
    step = spec.step_of(ev.type)
    if step is not None:
        amount = ev.props.get("amount") if step == "order_paid" else None
        metrics.biz_event(ev.tenant, aggregator.channel_of(ev.props), step,
                          revenue=amount if isinstance(amount, int | float) else None)
    return aggregator.add(ev)


async def send_partials(points: list[SeriesPoint]) -> None:
    for p in points:
        await partials_topic.send(key="|".join(p.key), value=p.to_dict())


@app.timer(interval=5.0)
async def close_idle_windows() -> None:
    """Close windows on the clock too, so a silent channel shows as a drop."""
    now = runtime.clock.now()
    if now is not None:
        await send_partials(aggregator.advance(now))


class _Merger:
    """Partials of each (series, window start) until MERGE_AFTER_S passed since the first."""

    def __init__(self) -> None:
        self.pending: dict[tuple[Any, int], list[SeriesPoint]] = {}
        self.first_seen: dict[tuple[Any, int], float] = {}

    def add(self, p: SeriesPoint) -> None:
        k = (p.key, p.start_ms)
        self.pending.setdefault(k, []).append(p)
        self.first_seen.setdefault(k, time.monotonic())

    def ready(self) -> list[SeriesPoint]:
        now = time.monotonic()
        done = sorted((k for k, t in self.first_seen.items() if now - t >= MERGE_AFTER_S),
                      key=lambda k: k[1])
        out: list[SeriesPoint] = []
        for k in done:
            out.extend(merge_points(self.pending.pop(k)))
            del self.first_seen[k]
        return out


@app.agent(partials_topic, name="anomaly")
async def anomaly(stream: Any) -> None:
    monitor: AnomalyMonitor | None = None
    merger = _Merger()
    last_save = time.monotonic()
    async for batch in stream.take(1000, within=1.0):
        if monitor is None:  # the table is recovered once the stream delivers
            monitor = AnomalyMonitor(spec=spec)
            saved = monitor_table.get("monitor")
            if saved:
                monitor.restore(saved)
        for doc in batch:
            try:
                merger.add(SeriesPoint.from_dict(doc))
            except (KeyError, TypeError) as exc:
                log.warning("bad partial point %r: %s", doc, exc)
        for point in merger.ready():
            metrics.publish_point(point)
            obs = monitor.observe(point)
            if obs is None:
                continue
            metrics.publish_observation(obs)
            if obs.record is not None:
                await anomaly_topic.send(key=point.metric, value=obs.record)
        if time.monotonic() - last_save >= SAVE_EVERY_S:
            monitor_table["monitor"] = monitor.snapshot()
            last_save = time.monotonic()
