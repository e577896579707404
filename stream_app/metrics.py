"""Every Prometheus collector of stream-app, in one place (names prefixed ``stream_app_``).

Agents, timers and the API import the collectors below and call them; nothing else in the
code base creates collectors. Label values that come from data (tenant, channel, funnel
step) pass through :func:`tenant_label`, :func:`channel_label` and :func:`step_label`, which
map anything outside the configured allow-list (``labels:`` in ``config/anomaly.yaml``) to
``"other"`` so that a producer sending random channel names cannot blow up the series count.

Exposition: each worker process serves its own registry on its own endpoint (one scrape
target per worker; no multiprocess mode). Either call :func:`start_metrics_server` on a free
port, mount :func:`asgi_app` in an ASGI server (the API), or return :func:`render` from any
HTTP handler (the Faust worker's web view on port 6066, path ``/metrics``).

=====================================  =========  ==========================================
collector                              type       labels
=====================================  =========  ==========================================
``stream_app_events_consumed_total``    counter    stream, type
``stream_app_events_unknown_type_total`` counter   stream
``stream_app_dlq_records_total``        counter    reason
``stream_app_late_events_total``        counter    stream
``stream_app_biz_late_events_total``    counter    stream
``stream_app_biz_incomplete_windows_total`` counter window
``stream_app_duplicate_events_total``   counter    stream
``stream_app_deleted_user_events_total`` counter   stream
``stream_app_reprojected_users_total``  counter    -
``stream_app_tag_changes_total``        counter    family, tag
``stream_app_alerts_total``             counter    kind
``stream_app_e2e_latency_seconds``      histogram  output
``stream_app_consumer_lag``             gauge      topic, partition
``stream_app_table_users``              gauge      table
``stream_app_redis_write_seconds``      histogram  -
``stream_app_redis_errors_total``       counter    op
``stream_app_redis_buffered``           gauge      -
``stream_app_model_info``               gauge      target, version
``stream_app_model_quality``            gauge      target, metric
``stream_app_model_gate_open``          gauge      target
``stream_app_biz_events_total``         counter    tenant, channel, step
``stream_app_biz_revenue_total``        counter    tenant, channel
``stream_app_biz_refunds_total``        counter    tenant, channel
``stream_app_biz_rate``                 gauge      tenant, channel, rate, window
``stream_app_metric_anomaly``           gauge      metric, tenant, channel, window
``stream_app_anomaly_score``            gauge      metric, tenant, channel, window
``stream_app_worker_info``              gauge      worker, version
``stream_app_ready``                    gauge      -
=====================================  =========  ==========================================

Example:
    >>> EVENTS_CONSUMED.labels(stream="click", type="course_view").inc()
    >>> channel_label("douyin"), channel_label("a-channel-nobody-configured")
    ('douyin', 'other')
    >>> observe_e2e("tags", broker_ts_ms=1_000, now_ms=1_250)
    0.25
    >>> body, ctype = render()
    >>> b"stream_app_events_consumed_total" in body, ctype.startswith("text/plain")
    (True, True)
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    make_asgi_app,
    start_http_server,
)

from stream_app.config import REPO_ROOT
from stream_app.errors import ConfigError

__all__ = [
    "ALERTS", "ANOMALY_SCORE", "BACKFILL_PROGRESS", "BIZ_EVENTS", "BIZ_RATE", "BIZ_REFUNDS",
    "BIZ_REVENUE",
    "CONSUMER_LAG", "DELETED_USER_EVENTS",
    "DLQ_RECORDS", "DUPLICATES", "E2E_LATENCY", "EVENTS_CONSUMED", "EVENTS_UNKNOWN_TYPE",
    "LATE_EVENTS", "METRIC_ANOMALY", "MODEL_GATE_OPEN", "MODEL_INFO", "MODEL_QUALITY", "OTHER",
    "READY", "REDIS_BUFFERED", "REDIS_UNWRITTEN", "REPROJECTED", "REDIS_ERRORS",
    "REDIS_WRITE_LATENCY", "TABLE_USERS",
    "TAG_CHANGES", "WORKER_INFO", "LabelPolicy", "METRIC_NAMES", "asgi_app", "biz_event",
    "anomaly_gauges", "channel_label", "label_policy", "observe_e2e", "publish_observation",
    "publish_point", "rate_gauge",
    "render", "set_anomaly", "set_consumer_lag", "set_label_policy",
    "set_model", "set_ready", "set_worker_info", "start_metrics_server", "step_label",
    "tenant_label",
]

PREFIX = "stream_app_"
OTHER = "other"
DEFAULT_LABELS_PATH = REPO_ROOT / "config" / "anomaly.yaml"

#: seconds; from 5 ms (fast path) to 60 s (a stalled partition)
E2E_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

# ---- stream processing -------------------------------------------------------------------
EVENTS_CONSUMED = Counter(
    PREFIX + "events_consumed", "Input events parsed and processed", ["stream", "type"])
EVENTS_UNKNOWN_TYPE = Counter(
    PREFIX + "events_unknown_type", "Accepted events whose type is not in the contract",
    ["stream"])
DLQ_RECORDS = Counter(
    PREFIX + "dlq_records", "Records sent to the dead-letter topic, by reason", ["reason"])
LATE_EVENTS = Counter(
    PREFIX + "late_events", "Events older than the late grace period", ["stream"])
BIZ_LATE_EVENTS = Counter(
    PREFIX + "biz_late_events", "Funnel events that came after their business window had "
    "closed: in the stream_app_biz_* counters, in no metrics.partials point", ["stream"])
BIZ_INCOMPLETE_WINDOWS = Counter(
    PREFIX + "biz_incomplete_windows", "Merged business windows released incomplete (a "
    "partition's counter started inside them: a worker restart or a rebalance); neither "
    "scored nor learned by the anomaly detector", ["window"])
DUPLICATES = Counter(
    PREFIX + "duplicate_events", "Events dropped as duplicates (same event_id)", ["stream"])
REPROJECTED = Counter(
    PREFIX + "reprojected_users", "Users whose whole Redis projection this worker rewrote "
    "on a redis-rebuild --live request")
DELETED_USER_EVENTS = Counter(
    PREFIX + "deleted_user_events", "Events of a deleted user from before the deletion, "
    "dropped (stream_app/state/deletion.py)", ["stream"])
TAG_CHANGES = Counter(
    PREFIX + "tag_changes", "Tag changes published, by family and tag", ["family", "tag"])
ALERTS = Counter(
    PREFIX + "alerts", "Alerts published (hot_lead, at_risk, metric_anomaly, ...)", ["kind"])
E2E_LATENCY = Histogram(
    PREFIX + "e2e_latency_seconds",
    "Seconds from an input record's broker timestamp to the publish of its output",
    ["output"], buckets=E2E_BUCKETS)
CONSUMER_LAG = Gauge(
    PREFIX + "consumer_lag", "Records between the group's committed offset and the log end, "
    "per partition of the agents' source topics (no table changelogs)",
    ["topic", "partition"])
PRODUCE_ERRORS = Counter(
    PREFIX + "produce_errors", "Output records librdkafka could not deliver", ["topic"])
TABLE_USERS = Gauge(
    PREFIX + "table_users", "Keys held in a state table by this worker", ["table"])

# ---- Redis projection --------------------------------------------------------------------
REDIS_WRITE_LATENCY = Histogram(
    PREFIX + "redis_write_seconds", "Seconds per pipelined Redis projection flush",
    buckets=REDIS_BUCKETS)
REDIS_ERRORS = Counter(PREFIX + "redis_errors", "Redis operations that failed", ["op"])
REDIS_BUFFERED = Gauge(
    PREFIX + "redis_buffered", "Profile updates waiting to be written to Redis")
REDIS_UNWRITTEN = Gauge(
    PREFIX + "redis_unwritten_ops", "Redis writes earlier stops of this worker could not "
    "make (Redis down through the stop, or a kill during an outage): Redis misses them until "
    "`stream-app redis-rebuild --live` (stream_app/app/unwritten.py)")

# ---- models ------------------------------------------------------------------------------
MODEL_INFO = Gauge(
    PREFIX + "model_info", "1 for the model version serving a target", ["target", "version"])
MODEL_QUALITY = Gauge(
    PREFIX + "model_quality", "Latest evaluated model quality (auc, precision, recall)",
    ["target", "metric"])
MODEL_GATE_OPEN = Gauge(
    PREFIX + "model_gate_open", "1 when the ML score passes the release gate and is live",
    ["target"])

# ---- business series ---------------------------------------------------------------------
BIZ_EVENTS = Counter(
    PREFIX + "biz_events", "Business funnel events (lead, trial_booked, order_paid, ...)",
    ["tenant", "channel", "step"])
BIZ_REVENUE = Counter(
    PREFIX + "biz_revenue", "Revenue, gross of refunds: paid amounts of trial purchases, course "
    "orders and renewals (currency units; config/anomaly.yaml business.amounts.revenue)",
    ["tenant", "channel"])
BIZ_REFUNDS = Counter(
    PREFIX + "biz_refunds", "Refunded amounts (currency units; config/anomaly.yaml "
    "business.amounts.refunds)", ["tenant", "channel"])
BIZ_RATE = Gauge(
    PREFIX + "biz_rate", "Business rate of the last closed window (conversion, attendance)",
    ["tenant", "channel", "rate", "window"])
METRIC_ANOMALY = Gauge(
    PREFIX + "metric_anomaly", "1 while a business series is outside its learned range",
    ["metric", "tenant", "channel", "window"])
ANOMALY_SCORE = Gauge(
    PREFIX + "anomaly_score", "Deviation of the last point from its expected value (robust z)",
    ["metric", "tenant", "channel", "window"])

# ---- process -----------------------------------------------------------------------------
WORKER_INFO = Gauge(PREFIX + "worker_info", "1, labelled with worker id and version",
                    ["worker", "version"])
BACKFILL_PROGRESS = Gauge(PREFIX + "rule_backfill_progress",
                          "Share of this worker's users re-evaluated after a rule-set change "
                          "(1 when no backfill runs)")
# 1 from the start: a worker that never had a rule-set change has no backfill to do (at 0 a
# fresh worker looked like a stuck backfill on a dashboard, QA40 F5.2); a change sets it to 0
# (stream_app/app/broadcast.py), each user re-evaluated moves it (agents.note_backfill)
BACKFILL_PROGRESS.set(1.0)
READY = Gauge(PREFIX + "ready", "1 when the process has recovered its state and serves")


def _metric_names() -> frozenset[str]:
    names: set[str] = set()
    for obj in list(globals().values()):
        if isinstance(obj, Counter | Gauge | Histogram):
            base = obj._name  # noqa: SLF001 - the exposed family name
            names.add(base)
            if isinstance(obj, Counter):
                names.update({base + "_total", base + "_created"})
            if isinstance(obj, Histogram):
                names.update({base + "_bucket", base + "_sum", base + "_count",
                              base + "_created"})
    return frozenset(names)


#: every series name this module can expose (dashboards and rules are checked against it)
METRIC_NAMES: frozenset[str] = _metric_names()


# ---- bounded label values ----------------------------------------------------------------
@dataclass(frozen=True)
class LabelPolicy:
    """Allow-lists of data-derived label values; anything else becomes ``"other"``.

    >>> p = LabelPolicy(tenants=frozenset({"default"}), channels=frozenset({"douyin"}))
    >>> p.tenant("default"), p.tenant("evil"), p.channel(None)
    ('default', 'other', 'unknown')
    """

    tenants: frozenset[str] = frozenset({"default"})
    channels: frozenset[str] = frozenset()
    steps: frozenset[str] = frozenset()

    def tenant(self, value: str | None) -> str:
        return _bounded(value, self.tenants)

    def channel(self, value: str | None) -> str:
        return _bounded(value, self.channels)

    def step(self, value: str | None) -> str:
        return _bounded(value, self.steps)

    @classmethod
    def from_yaml(cls, path: Path = DEFAULT_LABELS_PATH) -> LabelPolicy:
        """Read the ``labels:`` section (tenants, channels, steps) of ``path``."""
        try:
            doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read label allow-lists from {path}: {exc}") from exc
        labels = doc.get("labels") or {}
        return cls(tenants=listed_ids(labels.get("tenants"), "labels.tenants") | {"default"},
                   channels=listed_ids(labels.get("channels"), "labels.channels"),
                   steps=listed_ids(labels.get("steps"), "labels.steps"))


def listed_ids(entries: Iterable[Any] | None, where: str) -> frozenset[str]:
    """The names of a YAML allow-list (``- douyin`` or ``- {id: douyin, ...}``). A name YAML
    1.1 reads as something else (``- 007`` is the number 7, ``- on`` true, ``- 2024-01-01`` a
    date) is refused, naming it: its text as written cannot be recovered, and a tenant
    ``007`` would silently be counted as ``other``.

    Example:
        >>> sorted(listed_ids(["douyin", {"id": "007", "zh": "x"}], "labels.channels"))
        ['007', 'douyin']
        >>> listed_ids([7], "labels.tenants")
        Traceback (most recent call last):
        ...
        stream_app.errors.ConfigError: labels.tenants: 7 is read by YAML as a number (int), \
not a name: quote it ('007' for a tenant 007)
    """
    out = set()
    for e in entries or ():
        name = e.get("id") if isinstance(e, dict) else e
        if not isinstance(name, str):
            kind = {bool: "true/false", int: "a number", float: "a number",
                    type(None): "null"}.get(type(name), type(name).__name__)
            raise ConfigError(f"{where}: {name!r} is read by YAML as {kind} "
                              f"({type(name).__name__}), not a name: quote it ('007' for a "
                              "tenant 007)")
        out.add(name)
    return frozenset(out)


def _bounded(value: str | None, allowed: frozenset[str]) -> str:
    if not value:
        return "unknown"
    return value if value in allowed else OTHER


_policy: LabelPolicy | None = None
_policy_lock = threading.Lock()


def label_policy() -> LabelPolicy:
    """The process-wide label policy, read from ``config/anomaly.yaml`` on first use."""
    global _policy
    if _policy is None:
        with _policy_lock:
            if _policy is None:
                try:
                    _policy = LabelPolicy.from_yaml()
                except ConfigError:
                    _policy = LabelPolicy()
    return _policy


def set_label_policy(policy: LabelPolicy) -> None:
    """Replace the label policy (tests, or a worker started with another config file)."""
    global _policy
    _policy = policy
    for cache in _BY_RAW:
        cache.clear()


def tenant_label(value: str | None) -> str:
    return label_policy().tenant(value)


def channel_label(value: str | None) -> str:
    return label_policy().channel(value)


def step_label(value: str | None) -> str:
    return label_policy().step(value)


# ---- helpers the agents call -------------------------------------------------------------
_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)`` (label values in declared order), cached: ``labels()``
    validates and takes a lock on every call, a few µs per event on the hot path. Only for
    labels with bounded values (the cache is never emptied).

    >>> child(TAG_CHANGES, "lifecycle", "novice") is child(TAG_CHANGES, "lifecycle", "novice")
    True
    >>> child(TAG_CHANGES, "lifecycle", "novice") is TAG_CHANGES.labels("lifecycle", "novice")
    True
    """
    key = (id(metric), values)
    c = _CHILDREN.get(key)
    if c is None:
        c = _CHILDREN[key] = metric.labels(*values)
    return c


#: caches keyed by the raw (not yet allow-listed) label values of the per-point business
#: functions below, so a repeated series costs one dict lookup instead of resolving its labels
#: again; emptied when the label policy changes; raw values come from data, so each holds at
#: most RAW_CACHE_MAX entries (past that the labels are resolved on every call)
RAW_CACHE_MAX = 10_000
_BIZ_BY_RAW: dict[tuple[Any, ...], tuple[Any, str, str]] = {}
_ANOMALY_BY_RAW: dict[tuple[Any, ...], tuple[Any, Any]] = {}
_RATE_BY_RAW: dict[tuple[Any, ...], Any] = {}
_BY_RAW: tuple[dict[Any, Any], ...] = (_BIZ_BY_RAW, _ANOMALY_BY_RAW, _RATE_BY_RAW)


def _remember(cache: dict[Any, Any], key: tuple[Any, ...], value: Any) -> Any:
    """``value``, kept in ``cache`` under ``key`` while the cache has room."""
    if len(cache) < RAW_CACHE_MAX:
        cache[key] = value
    return value


def observe_e2e(output: str, broker_ts_ms: int, now_ms: float | None = None) -> float:
    """Record end-to-end latency of one output (``tags`` / ``alert``); returns seconds."""
    now = time.time() * 1000 if now_ms is None else now_ms
    seconds = max(0.0, (now - broker_ts_ms) / 1000.0)
    E2E_TALLY.observe(output, seconds)
    return seconds


# ---- per-event tallies -------------------------------------------------------------------
def _on_collect(metric: Any, fold: Any, reset: Any) -> None:
    """Make every collection of ``metric`` (each exposition path: :func:`render`,
    :func:`asgi_app`, the metrics server) call ``fold`` first, and its ``clear`` call
    ``reset`` first."""
    collect, clear = metric.collect, metric.clear

    def collect_folded() -> Any:
        fold()
        return collect()

    def clear_reset() -> None:
        reset()
        clear()

    metric.collect, metric.clear = collect_folded, clear_reset


class CounterTally:
    """Increments of a labelled counter's children kept as plain counts, and added to the
    children whenever the counter is collected (a scrape), so ``/metrics`` shows exactly
    what calling ``inc()`` per event would have: per event a dict update instead of a cached
    ``labels()`` lookup plus ``inc()`` under a lock (~0.4 µs).

    The counts only grow and only the thread that calls :meth:`add` changes them; a fold (any
    thread, under a lock) adds what each series gained since the previous fold. A reader of
    a child's value outside a collection calls :meth:`fold` (or :func:`fold_tallies`) first.

    Example:
        >>> c = Counter("tally_doc", "doc", ["a"], registry=CollectorRegistry())
        >>> t = CounterTally(c)
        >>> t.add(("x",)); t.add(("x",)); t.add(("y",))
        >>> [(s.labels["a"], s.value) for s in c.collect()[0].samples if s.name.endswith("l")]
        [('x', 2.0), ('y', 1.0)]
    """

    __slots__ = ("metric", "counts", "_folded", "_lock")

    def __init__(self, metric: Counter) -> None:
        self.metric = metric
        #: label values (declared order) -> increments since the counter was created/cleared
        self.counts: dict[tuple[str, ...], int] = {}
        self._folded: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()
        _on_collect(metric, self.fold, self._reset)

    def add(self, labels: tuple[str, ...]) -> None:
        """Count one increment of the child of ``labels``."""
        counts = self.counts
        counts[labels] = counts.get(labels, 0) + 1

    def fold(self) -> None:
        """Add each series' increments since the previous fold to its child."""
        with self._lock:
            folded, metric = self._folded, self.metric
            for labels, n in list(self.counts.items()):
                gained = n - folded.get(labels, 0)
                if gained:
                    metric.labels(*labels).inc(gained)
                    folded[labels] = n

    def _reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self._folded.clear()


class HistogramTally:
    """Observations of a labelled histogram's children kept as bucket counts and a running
    sum, and moved into the children whenever the histogram is collected (like
    :class:`CounterTally`). The sum is added up in observation order as ``observe()`` adds
    it, so it is the same float.

    Example:
        >>> h = Histogram("tally_doc_s", "doc", ["o"], buckets=(1, 2),
        ...               registry=CollectorRegistry())
        >>> t = HistogramTally(h)
        >>> t.observe("x", 0.5); t.observe("x", 1.5); t.observe("x", 9.0)
        >>> [(s.name.rsplit("_", 1)[1], s.labels.get("le"), s.value)
        ...  for s in h.collect()[0].samples][:5]   # doctest: +NORMALIZE_WHITESPACE
        [('bucket', '1.0', 1.0), ('bucket', '2.0', 2.0), ('bucket', '+Inf', 3.0),
         ('count', None, 3.0), ('sum', None, 11.0)]
    """

    __slots__ = ("metric", "bounds", "series", "_folded", "_lock")

    def __init__(self, metric: Histogram) -> None:
        self.metric = metric
        self.bounds = tuple(metric._upper_bounds)  # noqa: SLF001 - the buckets, +Inf last
        #: label value -> [count per bucket..., sum] since the histogram was created/cleared
        self.series: dict[str, list[Any]] = {}
        self._folded: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        _on_collect(metric, self.fold, self._reset)

    def observe(self, label: str, amount: float) -> None:
        """One observation of the child of ``label`` (the histogram's one label)."""
        s = self.series.get(label)
        if s is None:
            s = self.series[label] = [0] * len(self.bounds) + [0.0]
        if amount == amount:   # observe() puts a NaN in no bucket (only in the sum)
            s[bisect_left(self.bounds, amount)] += 1
        s[-1] += amount

    def fold(self) -> None:
        """Move each series' observations since the previous fold into its child."""
        with self._lock:
            for label, s in list(self.series.items()):
                now = list(s)
                done = self._folded.get(label) or [0] * len(self.bounds)
                c = self.metric.labels(label)
                buckets = c._buckets  # noqa: SLF001 - per-bucket (not cumulative) counts
                for i, n in enumerate(now[:-1]):
                    if n != done[i]:
                        buckets[i].inc(n - done[i])
                c._sum.set(now[-1])  # noqa: SLF001 - the running sum, in observation order
                self._folded[label] = now[:-1]

    def _reset(self) -> None:
        with self._lock:
            self.series.clear()
            self._folded.clear()


#: the agent's per-event counters (:class:`CounterTally`)
EVENTS_TALLY = CounterTally(EVENTS_CONSUMED)
TAG_CHANGES_TALLY = CounterTally(TAG_CHANGES)
E2E_TALLY = HistogramTally(E2E_LATENCY)
TALLIES = (EVENTS_TALLY, TAG_CHANGES_TALLY, E2E_TALLY)


def fold_tallies() -> None:
    """Bring every tallied collector's children up to date (a collection does it anyway)."""
    for tally in TALLIES:
        tally.fold()


def biz_event(tenant: str | None, channel: str | None, step: str,
              revenue: float | None = None, refunds: float | None = None) -> None:
    """Count one business funnel event (and its amount: ``revenue`` or ``refunds``, as the
    step's money series in ``config/anomaly.yaml`` says) with bounded labels.

    >>> biz_event("default", "douyin", "order_paid", revenue=1999.0)
    >>> BIZ_REVENUE.labels(tenant="default", channel="douyin")._value.get() >= 1999.0
    True
    >>> biz_event("default", "douyin", "refund", refunds=500.0)
    >>> BIZ_REFUNDS.labels(tenant="default", channel="douyin")._value.get() >= 500.0
    True
    """
    key = (tenant, channel, step)
    hit = _BIZ_BY_RAW.get(key)
    if hit is None:
        t, c = tenant_label(tenant), channel_label(channel)
        hit = _remember(_BIZ_BY_RAW, key, (child(BIZ_EVENTS, t, c, step_label(step)), t, c))
    hit[0].inc()
    if revenue:   # the revenue child only once there is revenue (no series of zeros)
        child(BIZ_REVENUE, hit[1], hit[2]).inc(max(0.0, float(revenue)))
    if refunds:
        child(BIZ_REFUNDS, hit[1], hit[2]).inc(max(0.0, float(refunds)))


def set_anomaly(metric: str, tenant: str | None, channel: str | None, window: str,
                anomalous: bool, score: float) -> None:
    """Publish the state of one monitored business series (``channel`` "all": the series
    over every channel)."""
    gauges = anomaly_gauges(metric, tenant, channel, window)
    gauges[0].set(1.0 if anomalous else 0.0)
    gauges[1].set(score)


def anomaly_gauges(metric: str, tenant: str | None, channel: str | None,
                   window: str) -> tuple[Any, Any]:
    """The ``stream_app_metric_anomaly`` and ``stream_app_anomaly_score`` children of one
    business series (cached by the raw label values).

    >>> a, z = anomaly_gauges("leads", "default", "all", "1h")
    >>> z is ANOMALY_SCORE.labels("leads", "default", "all", "1h")
    True
    """
    key = (metric, tenant, channel, window)
    gauges = _ANOMALY_BY_RAW.get(key)
    if gauges is None:
        # bounded label values (allow-listed tenants and channels, configured metrics and
        # windows)
        lbl = (metric, tenant_label(tenant), _channel_or_all(channel), window)
        gauges = _remember(_ANOMALY_BY_RAW, key,
                           (child(METRIC_ANOMALY, *lbl), child(ANOMALY_SCORE, *lbl)))
    return gauges


_model_versions: dict[tuple[str, str], bool] = {}


def publish_point(point: Any) -> None:
    """Set ``stream_app_biz_rate`` from a closed rate point (a ``business.SeriesPoint``);
    other kinds are counted by :func:`biz_event` as events arrive.

    >>> from stream_app.business import SeriesPoint
    >>> publish_point(SeriesPoint("attendance", "default", "all", "1h", 0, 1, 9, 10, "rate"))
    >>> g = BIZ_RATE.labels(tenant="default", channel="all", rate="attendance", window="1h")
    >>> g._value.get()
    0.9
    """
    if point.kind == "rate" and point.den > 0:
        rate_gauge(point).set(point.value)


def rate_gauge(point: Any) -> Any:
    """The ``stream_app_biz_rate`` child of a rate point's series (cached by the raw label
    values).

    >>> from stream_app.business import SeriesPoint
    >>> g = rate_gauge(SeriesPoint("attendance", "default", "all", "1h", 0, 1, 9, 10, "rate"))
    >>> g is BIZ_RATE.labels("default", "all", "attendance", "1h")
    True
    """
    key = (point.tenant, point.channel, point.metric, point.window)
    gauge = _RATE_BY_RAW.get(key)
    if gauge is None:
        gauge = _remember(_RATE_BY_RAW, key, child(
            BIZ_RATE, tenant_label(point.tenant), _channel_or_all(point.channel),
            point.metric, point.window))
    return gauge


def publish_observation(obs: Any) -> None:
    """Set the anomaly gauges from an ``anomaly.Observation``; count alarms that open."""
    p = obs.point
    set_anomaly(p.metric, p.tenant, p.channel, p.window, obs.anomalous, obs.z)
    if getattr(obs, "change", None) == "open":
        child(ALERTS, "metric_anomaly").inc()


def _channel_or_all(channel: str | None) -> str:
    return channel if channel == "all" else channel_label(channel)


def set_model(target: str, version: str, quality: dict[str, float], gate_open: bool) -> None:
    """Publish the serving model of ``target``: version, quality figures and gate state."""
    for tgt, ver in list(_model_versions):
        if tgt == target and ver != version:
            MODEL_INFO.remove(tgt, ver)
            del _model_versions[(tgt, ver)]
    MODEL_INFO.labels(target=target, version=version).set(1)
    _model_versions[(target, version)] = True
    for metric, value in quality.items():
        MODEL_QUALITY.labels(target=target, metric=metric).set(value)
    MODEL_GATE_OPEN.labels(target=target).set(1 if gate_open else 0)


_lag_keys: set[tuple[str, str]] = set()


def set_consumer_lag(lags: dict[tuple[str, int], int]) -> None:
    """Publish the lag of every partition this worker holds now, ``{(topic, partition):
    end offset - committed offset}``; partitions it no longer holds (after a rebalance) are
    removed, so the sum over workers never counts a partition twice.

    >>> set_consumer_lag({("events.click", 0): 12, ("events.click", 1): 3})
    >>> set_consumer_lag({("events.click", 1): 0})           # partition 0 moved away
    >>> sorted(k for k in _lag_keys)
    [('events.click', '1')]
    """
    keys = {(t, str(p)) for (t, p) in lags}
    for gone in _lag_keys - keys:
        CONSUMER_LAG.remove(*gone)
    for (topic, partition), lag in lags.items():
        CONSUMER_LAG.labels(topic=topic, partition=str(partition)).set(max(0, lag))
    _lag_keys.clear()
    _lag_keys.update(keys)


def set_worker_info(worker: str, version: str) -> None:
    WORKER_INFO.labels(worker=worker, version=version).set(1)


def set_ready(ready: bool) -> None:
    READY.set(1 if ready else 0)


# ---- exposition --------------------------------------------------------------------------
#: text exposition format 0.0.4 without the ``charset`` parameter: aiohttp (Faust's web
#: server) refuses a content type that carries one; the body is UTF-8 either way
CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"


def render(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """Body and content type of a ``/metrics`` response (for any HTTP handler, Faust's
    ``web.bytes(body, content_type=...)`` included).

    >>> render()[1]
    'text/plain; version=0.0.4'
    """
    return generate_latest(registry), CONTENT_TYPE


def asgi_app(registry: CollectorRegistry = REGISTRY) -> Any:
    """An ASGI app serving ``/metrics`` (mount it in the FastAPI app)."""
    return make_asgi_app(registry=registry)


def start_metrics_server(port: int, addr: str = "0.0.0.0",
                         registry: CollectorRegistry = REGISTRY) -> tuple[Any, threading.Thread]:
    """Serve this process's metrics on ``addr:port`` in a daemon thread.

    One port per process: with several workers on a host, give each its own port (or use the
    worker web port 6066 in separate containers). Returns ``(server, thread)``; call
    ``server.shutdown()`` to stop.
    """
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return server, thread
