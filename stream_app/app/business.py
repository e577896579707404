"""Business metrics and metric-anomaly detection in the stream.

Each worker counts the funnel events of each of its input partitions (per tenant and
channel, 1-minute, 10-minute and 1-hour event-time windows; Prometheus counters as events
arrive) and, when a window closes, sends the partition's partial points and its watermark to
``metrics.partials`` (one partition). A single anomaly agent merges the partials of all
partitions (counts add; rates are num/den sums) once every active partition's watermark has
passed the window (so a partition that is behind, as in a fast replay, is waited for), learns
each series' normal range (``stream_app.anomaly``) and publishes ``alerts.metric_anomaly``
when an alarm opens, escalates or closes. The detectors' state is kept in a one-partition table, so
a restarted or moved anomaly agent does not warm up again, and its new merger is seeded with
the series they know (:func:`restore_monitor`): a channel silent since before the restart still
gets its zeros.

Restarts and rebalances: a partition's open windows live in memory, so its next counter (the
restarted worker, or the worker it moved to) starts at the last committed offset without the
counts of the windows open then. Each partials message carries ``from``, the event time the
partition's counter counts from (``BusinessAggregator.counted_from``; none for a counter that
started at the partition's first record, offset 0: nothing was counted before); the merger
releases the windows that began before it (less lateness) as incomplete, and the monitor
neither scores nor learns them (``stream_app_biz_incomplete_windows_total{window}``). A worker
forgets the counters of the partitions a rebalance moved away (:func:`forget_partitions`),
so a partition that comes back later starts a new counter instead of resuming old windows.

Cost on a fast replay (a week of event time in minutes): 1-minute windows then close every few
events of a partition. Closed points are therefore buffered per partition and sent at most
every ``PARTIALS_EVERY_S`` of wall time (and by the 5 s idle timer), a handful of messages per
second instead of one per closing event; live, a window closes once a minute and is sent at
once. Only points the anomaly agent uses travel: rates (the ``stream_app_biz_rate`` gauge) and
watched count/revenue series. The anomaly agent works in slices of at most ``SLICE_S`` and then
sleeps as long (``asyncio.sleep(0)`` is not enough: it lets each ready task take one step, and
an input event needs several loop iterations between fetch and commit, each of which would
wait for another slice).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import orjson

from stream_app import metrics
from stream_app.anomaly.config import load_anomaly_config
from stream_app.anomaly.monitor import AnomalyMonitor
from stream_app.app.context import AHEAD_CAP, runtime
from stream_app.app.main import app
from stream_app.app.topics import anomaly_topic, contract
from stream_app.business import BusinessAggregator, SeriesPoint, load_business_spec
from stream_app.business.merge import Merger as _Merger
from stream_app.events import Event

log = logging.getLogger(__name__)
SAVE_EVERY_S = 30.0        # detector state checkpoint interval
POINTS_PER_MESSAGE = 500   # ~40 KB messages
PARTIALS_EVERY_S = 0.5     # closed points of a partition are sent at most this often
SLICE_S = 0.005            # the anomaly agent's longest stretch without yielding to the loop
HOLD_LOG_S = 0.020         # a longer hold is logged
MAX_PAUSE_S = 0.05         # the longest pause after a slice

spec = load_business_spec()
_steps = spec.steps                               # event type -> funnel step (spec.step_of)
#: funnel step -> the money series its amount goes to ("revenue", "refunds"; QA37 F6)
_money = spec.amount_series
watch = load_anomaly_config()
aggregators: dict[Any, BusinessAggregator] = {}   # (topic, partition) -> its aggregator
_pending: dict[Any, list[SeriesPoint]] = {}       # closed, not yet sent points per partition
_last_sent: dict[Any, float] = {}                 # wall time of the partition's last message
_late_seen: dict[Any, int] = {}                   # aggregator.late already counted in metrics
_sent_wm: dict[Any, int | None] = {}              # watermark of the partition's last message
#: partitions whose counter started at the partition's first record (offset 0): no earlier
#: counter can have counted anything, so its messages carry no ``from``
_first_counter: set[Any] = set()
_wall = time.monotonic


#: the business watermark's cap: the reference clock plus STREAM_APP_CLOCK_MAX_AHEAD_MS (off
#: with the far-future guard, STREAM_APP_MAX_FUTURE_MS=0); a few events from a producer whose
#: clock is hours ahead do not close every window of their partition, and the on-time events
#: after them are still counted (session 26: 8 clicks dated +8 h left the next 40 visits out
#: of every partial, and a "visits dropped" anomaly followed)
CAP = AHEAD_CAP


class Merger(_Merger):
    """:class:`stream_app.business.merge.Merger` of this worker's spec."""

    def __init__(self, wall: Any = time.monotonic) -> None:
        super().__init__(spec, wall=wall)
partials_topic = app.topic("metrics.partials", key_serializer="utf8", value_serializer="orjson",
                           partitions=1)
monitor_table = app.Table(
    "anomaly_monitor", default=None, partitions=1, use_partitioner=True,
    schema=faust.Schema(key_serializer="utf8", value_serializer="orjson"),
    extra_topic_configs={"retention.ms": "-1", "retention.bytes": "-1"},
    help="detector state of every watched business series")


def _aggregator(partition: Any) -> BusinessAggregator:
    """A new counter for ``partition`` (once per partition and assignment, not per event);
    whether it is the partition's first is read from the event being processed."""
    agg = aggregators.get(partition)
    if agg is None:
        agg = aggregators[partition] = BusinessAggregator(spec, zeros=False)
        event = faust.current_event()
        if event is not None and event.message.offset == 0:
            _first_counter.add(partition)
        else:
            _first_counter.discard(partition)
    return agg


def channel_from_tags(ev: Event, tags: dict[str, Any] | None) -> str | None:
    """The channel a funnel event without channel props counts for: the user's
    ``channel_tag`` (first touch, config/anomaly.yaml); None when the event names its own
    channel, or is no funnel event (it counts for no channel).

    Example:
        >>> class E: type, props = "order_paid", {"course": "c1"}
        >>> channel_from_tags(E(), {"first_channel": "douyin"})
        'douyin'
        >>> E.props = {"channel": "baidu"}
        >>> channel_from_tags(E(), {"first_channel": "douyin"}) is None
        True
    """
    tag = spec.channel_tag
    if not tag or not tags or ev.type not in _steps:
        return None
    value = tags.get(tag)
    if not value:
        return None
    props = ev.props
    for name in spec.channel_props:
        if props.get(name):
            return None
    return str(value)


def count_event(ev: Event, partition: Any, channel: str | None = None) -> list[SeriesPoint]:
    """Count one valid event of ``partition`` (for ``channel`` if given, else the channel its
    props name) in the aggregator and the Prometheus counters (one amount for both:
    ``BusinessAggregator.amount_of`` of the steps ``business.amounts`` names); return the
    partial points to send now: those of the windows closed since the partition's last
    message, once ``PARTIALS_EVERY_S`` has passed since it (else they wait: ``[]``)."""
    agg = aggregators.get(partition) or _aggregator(partition)
    step = _steps.get(ev.type)
    wm = CAP(ev.ts)
    if step is None:   # BusinessAggregator.add of an event that is no funnel step
        closed = agg.advance(wm)
    else:
        ch = agg.attribute(ev.props, channel)
        money = _money.get(step)
        if money is None:
            metrics.biz_event(ev.tenant, ch, step)
            closed = agg.add_step(ev, step, ch, wm, 0.0)
        else:   # the amount the money series counts (QA37 F3), read once for both
            amount = agg.amount_of(ev.props)
            if money == "revenue":
                metrics.biz_event(ev.tenant, ch, step, revenue=amount)
            else:
                metrics.biz_event(ev.tenant, ch, step, refunds=amount)
            closed = agg.add_step(ev, step, ch, wm, amount)
    if closed:
        pending = _pending.get(partition)
        if pending is None:
            _pending[partition] = closed
        else:
            pending.extend(closed)
    elif partition not in _pending:
        return closed
    if _wall() - _last_sent.get(partition, float("-inf")) < PARTIALS_EVERY_S:
        return []
    return _pending.pop(partition)


def wanted(p: SeriesPoint) -> bool:
    """Whether the anomaly agent uses ``p``: not a zero (the merger fills zeros), and a rate
    (published as a gauge) or a watched series.

    >>> wanted(SeriesPoint("leads", "default", "douyin", "1m", 0, 60_000, 3, 3, "count"))
    True
    >>> wanted(SeriesPoint("leads", "default", "douyin", "10m", 0, 600_000, 3, 3, "count"))
    False
    """
    return bool(p.num or p.den) and (p.kind == "rate" or watch.watches(p.metric, p.window,
                                                                        p.channel))


async def send_partials(points: list[SeriesPoint], partition: Any) -> None:
    """Send ``points`` (closed windows of ``partition``) with the partition's watermark, in
    messages of up to POINTS_PER_MESSAGE (a window close yields a point per metric and
    channel; a jump in event time closes many windows at once). One message even without
    points: the watermark tells the merger this partition moved on."""
    _last_sent[partition] = _wall()
    agg = aggregators.get(partition)   # None: forgotten since (moved away by a rebalance)
    wm, since = (agg.watermark, agg.counted_from) if agg is not None else (None, None)
    if partition in _first_counter:
        since = None   # nothing before its first record: whole from the start
    source = f"{partition[0]}:{partition[1]}"
    rows = [[p.metric, p.tenant, p.channel, p.window, p.start_ms, p.end_ms, p.num, p.den, p.kind]
            for p in points if wanted(p)]
    for i in range(0, max(len(rows), 1), POINTS_PER_MESSAGE):
        # "prev": the watermark of this counter's previous message (a merger that starts
        # reading here missed the windows closed by then)
        prev = _sent_wm.get(partition)
        if wm is not None:
            _sent_wm[partition] = wm
        await _emit({"p": source, "wm": wm, "from": since, "prev": prev,
                     "points": rows[i:i + POINTS_PER_MESSAGE]})


def forget_partitions(held: set[Any]) -> list[Any]:
    """Drop the counters of the partitions this worker no longer holds (not in ``held``,
    ``(topic, partition)`` pairs); return them. Their closed points not sent yet stay in
    ``_pending`` (the idle timer sends them, without a watermark); their open windows are
    lost, as in a crash: the partition's next counter reports a later ``from`` and the merger
    marks those windows incomplete. A partition kept through the rebalance keeps its counter.

    Example:
        >>> aggregators[("events.click", 7)] = BusinessAggregator(spec, zeros=False)
        >>> forget_partitions({("events.click", 0)})
        [('events.click', 7)]
        >>> ("events.click", 7) in aggregators
        False
    """
    count_late()
    gone = [p for p in aggregators if p not in held]
    for p in gone:
        del aggregators[p]
        _late_seen.pop(p, None)
        _last_sent.pop(p, None)
        _sent_wm.pop(p, None)
        _first_counter.discard(p)
    return gone


@app.on_partitions_assigned.connect
async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
    """After a rebalance: forget the business counters of the partitions that moved away."""
    gone = forget_partitions({(tp.topic, tp.partition) for tp in assigned})
    if gone:
        log.info("business counters of %d partition(s) moved away dropped: %s", len(gone),
                 ", ".join(f"{t}:{n}" for t, n in gone))


async def _emit(value: dict[str, Any]) -> None:
    # the worker's producer is librdkafka's (agents.py refuses another): one C call, no future
    app.producer.produce(partials_topic.get_topic_name(), b"partials", orjson.dumps(value))


@app.timer(interval=5.0)
async def close_idle_windows() -> None:
    """Close windows on the clock too, so a silent channel shows as a drop; send what
    :func:`count_event` kept back."""
    for partition in runtime.clock.partitions():
        now = runtime.clock.now(partition)
        if now is not None and partition in aggregators:
            # (the partition's clock follows its newest event, skewed or not)
            closed = aggregators[partition].advance(CAP(now))
            await send_partials(_pending.pop(partition, []) + closed, partition)
    count_late()
    for partition in list(_pending):   # e.g. a partition revoked since: what it kept back
        await send_partials(_pending.pop(partition), partition)


def count_late() -> None:
    """Add each aggregator's funnel events that came after their window closed (counted in
    the aggregator, in no partial point) to ``stream_app_biz_late_events_total``."""
    for partition, agg in aggregators.items():
        new = agg.late - _late_seen.get(partition, 0)
        if new > 0:
            _late_seen[partition] = agg.late
            metrics.child(metrics.BIZ_LATE_EVENTS, contract.stream_of(partition[0])).inc(new)


def _held(seconds: float, points: int) -> None:
    if seconds >= HOLD_LOG_S:
        log.info("anomaly agent held the event loop %.0f ms (%d points)", seconds * 1e3, points)


class Slices:
    """Work in slices of about ``SLICE_S``: after each, :meth:`step` pauses as long as the
    slice took (at most ``MAX_PAUSE_S``), so the loop's other tasks get about half of it;
    holds of ``HOLD_LOG_S`` or more are logged.

    Example (a fake clock: 3 ms of work per step):
        >>> t, paused = [0], []
        >>> async def pause(seconds): paused.append(seconds)
        >>> async def work():
        ...     sl = Slices(clock=lambda: t[0] / 1000, pause=pause)
        ...     for _ in range(4):
        ...         t[0] += 3
        ...         await sl.step(10)
        >>> asyncio.run(work()); paused
        [0.006, 0.006]
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 pause: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.clock, self.pause = clock, pause
        self.t0, self.points = clock(), 0

    async def step(self, points: int = 0) -> None:
        """``points`` more done; pause if the slice is used up."""
        self.points += points
        held = self.clock() - self.t0
        if held >= SLICE_S:
            _held(held, self.points)
            await self.pause(min(held, MAX_PAUSE_S))
            self.t0, self.points = self.clock(), 0

    def end(self) -> None:
        """The work is done: log the last slice if it held the loop long."""
        _held(self.clock() - self.t0, self.points)


async def observe_ready(merger: Merger, monitor: AnomalyMonitor,
                        send: Callable[[str, dict[str, Any]], Awaitable[Any]],
                        clock: Callable[[], float] = time.perf_counter,
                        pause: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> int:
    """Publish, score and alarm on every window ``merger`` has ready; return the points.

    A backlog of windows (a replay) is worked through in slices of about ``SLICE_S``; after
    each the loop gets as much time as the slice took (``pause``), so input events keep
    flowing. ``send(metric, record)`` publishes an alert record.

    Gauges (a series' rate, anomaly flag and score) take the values of its latest point
    before every ``await`` (and at the end), not after each point: a replay's backlog has
    hundreds of points of a series per slice, and no other task (a ``/metrics`` scrape) can
    run in between; counters count at once.

    Example:
        >>> import asyncio
        >>> m = Merger(wall=lambda: 0.0)
        >>> m.add("click:0", 10**9, [SeriesPoint("leads", "default", "douyin", "1m", 0, 60_000,
        ...                                      4, 4, "count")])
        >>> async def send(metric, record): pass
        >>> asyncio.run(observe_ready(m, AnomalyMonitor(spec=spec), send))
        1
    """
    latest: dict[Any, float] = {}   # gauge child -> its value at the next flush

    def flush() -> None:
        for gauge, value in latest.items():
            gauge.set(value)
        latest.clear()

    async def flushed_pause(seconds: float) -> None:
        flush()
        await pause(seconds)

    slices, total = Slices(clock, flushed_pause), 0
    score, gauges_of, rate_gauge = monitor.score, metrics.anomaly_gauges, metrics.rate_gauge
    try:
        for points in merger.ready_windows():
            if points and not points[0].complete:
                metrics.child(metrics.BIZ_INCOMPLETE_WINDOWS, points[0].window).inc()
            for point in points:
                if point.kind == "rate" and point.den > 0:    # metrics.publish_point
                    latest[rate_gauge(point)] = point.num / point.den
                scored = score(point)
                if scored is None:
                    continue
                anomalous, z, record, change = scored
                flag, z_gauge = gauges_of(point.metric, point.tenant, point.channel,
                                          point.window)
                latest[flag] = 1.0 if anomalous else 0.0
                latest[z_gauge] = z
                if change == "open":
                    metrics.child(metrics.ALERTS, "metric_anomaly").inc()
                if record is not None:
                    flush()
                    await send(point.metric, record)
            total += len(points)
            await slices.step(len(points))
    finally:
        flush()
    slices.end()
    return total


def restore_monitor(saved: dict[str, Any] | None, merger: Merger) -> AnomalyMonitor:
    """The anomaly agent's monitor from its table's snapshot ``saved`` (None or empty: a new
    one), with ``merger`` (the agent's new one) seeded with the monitor's series: a series
    seen before the restart, move or failover gets its zeros again, so a channel silent
    since then is still scored as a drop and an open alarm keeps being scored (its gauge
    stays, and it closes when the channel is back). Call it before ``merger`` takes any
    partials.

    Example:
        >>> before = AnomalyMonitor(spec=spec)    # the agent before the restart
        >>> _ = before.observe(SeriesPoint("visits", "default", "douyin", "1m", 0, 60_000,
        ...                                9, 9, "count"))
        >>> m = Merger(wall=lambda: 0.0)
        >>> mon = restore_monitor(before.snapshot(), m)
        >>> list(m.known["1m"]), mon.series_kinds() == before.series_kinds()
        ([('visits', 'default', 'douyin', '1m')], True)
    """
    monitor = AnomalyMonitor(spec=spec)
    if saved:
        monitor.restore(saved)
        merger.seed(monitor.series_kinds())
    return monitor


@app.agent(partials_topic, name="anomaly")
async def anomaly(stream: Any) -> None:
    monitor: AnomalyMonitor | None = None
    merger = Merger()
    last_save = time.monotonic()

    async def send(metric: str, record: dict[str, Any]) -> None:
        await anomaly_topic.send(key=metric, value=record)

    async for batch in stream.take(1000, within=1.0):
        if monitor is None:  # the table is recovered once the stream delivers
            monitor = restore_monitor(monitor_table.get("monitor"), merger)
        slices = Slices()   # a backlog's batch: up to 1,000 messages of 500 points
        for doc in batch:
            try:
                merger.add_rows(str(doc["p"]), doc.get("wm"), doc["points"], doc.get("from"),
                                doc.get("prev"))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("bad partials message: %s", exc)
            await slices.step()
        await observe_ready(merger, monitor, send)
        if time.monotonic() - last_save >= SAVE_EVERY_S:
            try:
                monitor_table["monitor"] = monitor.snapshot()
            except Exception as exc:  # noqa: BLE001 - e.g. changelog metadata not known yet
                log.warning("detector state not saved (retrying later): %s", exc)
            last_save = time.monotonic()
