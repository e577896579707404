"""Business metrics and metric-anomaly detection in the stream.

Each worker counts the funnel events of each of its input partitions (per tenant and
channel, 1-minute, 10-minute and 1-hour event-time windows; Prometheus counters as events
arrive) and, when a window closes, sends the partition's partial points and its watermark to
``metrics.partials`` (one partition). A single anomaly agent merges the partials of all
partitions (counts add; rates are num/den sums) once every active partition's watermark has
passed the window (so a partition that is behind, as in a fast replay, is waited for), learns
each series' normal range (``stream_app.anomaly``) and publishes ``alerts.metric_anomaly``
when an alarm opens, escalates or closes. The detectors' state is kept in a one-partition table, so
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
IDLE_AFTER_S = 60.0        # a partition silent this long (wall time) is not waited for
SAVE_EVERY_S = 30.0        # detector state checkpoint interval
POINTS_PER_MESSAGE = 500   # ~40 KB messages

spec = load_business_spec()
aggregators: dict[Any, BusinessAggregator] = {}   # (topic, partition) -> its aggregator
partials_topic = app.topic("metrics.partials", key_serializer="utf8", value_serializer="orjson",
                           partitions=1)
monitor_table = app.Table(
    "anomaly_monitor", default=None, partitions=1, use_partitioner=True,
    schema=faust.Schema(key_serializer="utf8", value_serializer="orjson"),
    extra_topic_configs={"retention.ms": "-1", "retention.bytes": "-1"},
    help="detector state of every watched business series")


def _aggregator(partition: Any) -> BusinessAggregator:
    agg = aggregators.get(partition)
    if agg is None:
        agg = aggregators[partition] = BusinessAggregator(spec, zeros=False)
    return agg


def count_event(ev: Event, partition: Any) -> list[SeriesPoint]:
    """Count one valid event of ``partition``; return the partial points it closed."""
    agg = _aggregator(partition)
    step = spec.step_of(ev.type)
    if step is not None:
        amount = ev.props.get("amount") if step == "order_paid" else None
        metrics.biz_event(ev.tenant, agg.channel_of(ev.props), step,
                          revenue=amount if isinstance(amount, int | float) else None)
    return agg.add(ev)


async def send_partials(points: list[SeriesPoint], partition: Any) -> None:
    """Points closed together travel in messages of up to POINTS_PER_MESSAGE (a window close
    yields one point per metric and channel: hundreds of points, which as single messages
    would dominate the worker's time; a jump in event time closes many windows at once)."""
    wm = aggregators[partition].watermark
    source = f"{partition[0]}:{partition[1]}"
    rows = [[p.metric, p.tenant, p.channel, p.window, p.start_ms, p.end_ms, p.num, p.den, p.kind]
            for p in points if p.num or p.den]   # zeros are implied: the merger fills them
    for i in range(0, max(len(rows), 1), POINTS_PER_MESSAGE):
        await partials_topic.send(key="partials", value={
            "p": source, "wm": wm, "points": rows[i:i + POINTS_PER_MESSAGE]})


@app.timer(interval=5.0)
async def close_idle_windows() -> None:
    """Close windows on the clock too, so a silent channel shows as a drop."""
    for partition in runtime.clock.partitions():
        now = runtime.clock.now(partition)
        if now is not None and partition in aggregators:
            # sent even when empty: the watermark tells the merger this partition moved on
            await send_partials(aggregators[partition].advance(now), partition)


class Merger:
    """Partial points of every (series, window) until every active partition has passed it.

    Example:
        >>> m = Merger(wall=lambda: 0.0)
        >>> a = SeriesPoint("leads", "default", "all", "1m", 0, 60_000, 2, 2, "count")
        >>> m.add("click:0", 180_000, [a]); m.add("click:1", 30_000, [])   # click:1 is behind
        >>> m.ready()
        []
        >>> m.add("click:1", 200_000, [SeriesPoint("leads", "default", "all", "1m", 0, 60_000, 3, 3,
        ...                                "count")])
        >>> [(p.metric, p.value) for p in m.ready()]
        [('leads', 5)]
    """

    def __init__(self, wall: Any = time.monotonic) -> None:
        self.pending: dict[tuple[Any, int], list[SeriesPoint]] = {}
        self.known: dict[str, set[tuple[Any, str]]] = {}   # window -> (series key, kind)
        self.watermarks: dict[str, tuple[int, float]] = {}   # source -> (wm, wall seen)
        self._wall = wall

    def add(self, partition: str, watermark: int | None, points: list[SeriesPoint]) -> None:
        if watermark is not None:
            old = self.watermarks.get(partition)
            if old is None or watermark >= old[0]:
                self.watermarks[partition] = (watermark, self._wall())
        for p in points:
            self.pending.setdefault((p.key, p.start_ms), []).append(p)
            self.known.setdefault(p.window, set()).add((p.key, p.kind))

    def ready(self) -> list[SeriesPoint]:
        """Merged points of the windows every active partition has closed, oldest first."""
        wall = self._wall()
        active = [wm for wm, seen in self.watermarks.values() if wall - seen < IDLE_AFTER_S]
        if not active:
            return []
        low = min(active)
        done = sorted((k for k, pts in self.pending.items()
                       if pts[0].end_ms + spec.windows[pts[0].window].lateness_ms <= low),
                      key=lambda k: k[1])
        out: list[SeriesPoint] = []
        windows: dict[tuple[str, int], tuple[int, set[Any]]] = {}
        for k in done:
            merged = merge_points(self.pending.pop(k))
            out.extend(merged)
            w = windows.setdefault((merged[0].window, k[1]), (merged[0].end_ms, set()))
            w[1].add(k[0])
        # series that had no event in a window (on any partition) get an explicit zero,
        # so a channel that goes silent shows as a drop
        for (window, start), (end, seen) in windows.items():
            for key, kind in self.known.get(window, ()):
                if key not in seen and kind != "rate":
                    out.append(SeriesPoint(key[0], key[1], key[2], window, start, end, 0.0, 0.0,
                                           kind))
        out.sort(key=lambda p: p.start_ms)
        return out


@app.agent(partials_topic, name="anomaly")
async def anomaly(stream: Any) -> None:
    monitor: AnomalyMonitor | None = None
    merger = Merger()
    last_save = time.monotonic()
    async for batch in stream.take(1000, within=1.0):
        if monitor is None:  # the table is recovered once the stream delivers
            monitor = AnomalyMonitor(spec=spec)
            saved = monitor_table.get("monitor")
            if saved:
                monitor.restore(saved)
        for doc in batch:
            try:
                merger.add(str(doc["p"]), doc.get("wm"),
                           [SeriesPoint(*row) for row in doc["points"]])
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("bad partials message: %s", exc)
        for point in merger.ready():
            metrics.publish_point(point)
            obs = monitor.observe(point)
            if obs is None:
                continue
            metrics.publish_observation(obs)
            if obs.record is not None:
                await anomaly_topic.send(key=point.metric, value=obs.record)
        if time.monotonic() - last_save >= SAVE_EVERY_S:
            try:
                monitor_table["monitor"] = monitor.snapshot()
            except Exception as exc:  # noqa: BLE001 - e.g. changelog metadata not known yet
                log.warning("detector state not saved (retrying later): %s", exc)
            last_save = time.monotonic()
