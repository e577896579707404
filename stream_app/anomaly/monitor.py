"""One detector and one alarm per watched business series; produces
``alerts.metric_anomaly`` records (``topics/schemas/metric_anomaly.schema.json``).

Feed every closed :class:`~stream_app.business.SeriesPoint` to :meth:`AnomalyMonitor.observe`;
it answers an :class:`Observation` for watched series (``None`` otherwise): the z-score,
whether the series is anomalous now, and a record to publish when an alarm opens, escalates
to critical, or closes (closing is published with severity ``info`` and
``labels.state = "resolved"``). Record ids are deterministic (series + since), so a replay
after a crash republishes the same ids. Pure: no Faust, Redis or Prometheus.

Example:
    >>> from stream_app.business import SeriesPoint
    >>> mon = AnomalyMonitor()
    >>> H = 3_600_000
    >>> def pt(i, n): return SeriesPoint("leads", "default", "douyin", "1h", i*H, (i+1)*H,
    ...                                  n, n, "count")
    >>> obs = [mon.observe(pt(i, 100.0 + (i % 2))) for i in range(24 * 8)]   # warm-up: 7 days
    >>> any(o.anomalous for o in obs), obs[-1].warming
    (False, False)
    >>> o = mon.observe(pt(24 * 8, 5.0))          # leads collapse
    >>> o.anomalous, o.record["severity"], o.record["labels"]["direction"]
    (True, 'critical', 'down')
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from stream_app.anomaly.alarm import CusumAlarm
from stream_app.anomaly.base import Detector, Verdict
from stream_app.anomaly.config import AlarmConfig, AnomalyConfig, load_anomaly_config
from stream_app.anomaly.seasonal import SeasonalDetector
from stream_app.anomaly.transform import from_stable, to_stable
from stream_app.business.series import SeriesKey, SeriesPoint
from stream_app.business.spec import BusinessSpec, load_business_spec
from stream_app.config import get_settings

DAY_MS = 86_400_000


@dataclass(slots=True, unsafe_hash=True)
class Observation:
    """Outcome of one point of a watched series.

    Not frozen (one per point scored; a frozen dataclass costs ~1 µs more to make); treat
    observations as immutable."""

    point: SeriesPoint
    z: float
    expected: float
    low: float
    high: float
    anomalous: bool
    warming: bool
    record: dict[str, Any] | None = None
    change: str | None = None  # "open" | "escalate" | "close" when ``record`` is set


class _Series:
    """Detector and alarm of one series, its window's ``band_z`` and the CUSUM level at
    which its detector stops learning (``hold_fraction * cusum_h``; looked up once)."""

    __slots__ = ("alarm", "band_z", "detector", "hold_at", "kind", "severity")

    def __init__(self, detector: Detector, alarm: CusumAlarm, kind: str,
                 band_z: float, hold_at: float = float("inf")) -> None:
        self.detector, self.alarm, self.kind, self.band_z = detector, alarm, kind, band_z
        self.hold_at = hold_at
        self.severity: str | None = None


class AnomalyMonitor:
    """Parameters:
        config: detection policy (default: ``config/anomaly.yaml``).
        spec: business spec, for window sizes and zh/en labels.
    """

    def __init__(self, config: AnomalyConfig | None = None,
                 spec: BusinessSpec | None = None, day_offset_ms: int | None = None) -> None:
        self.config = config or load_anomaly_config()
        self.spec = spec or load_business_spec()
        #: the business day's offset from UTC, for the seasonal detectors' slots and
        #: weekdays (None: the setting STREAM_APP_DAY_OFFSET_MINUTES, as the tags use)
        self.day_offset_ms = (get_settings().day_offset_ms if day_offset_ms is None
                              else day_offset_ms)
        self._series: dict[SeriesKey, _Series] = {}
        self._alarms: dict[str, AlarmConfig] = {}   # window -> its alarm settings (merged once)
        #: series key -> whether the config watches it (decided once per series)
        self._watched: dict[SeriesKey, bool] = {}

    def _alarm(self, window: str) -> AlarmConfig:
        a = self._alarms.get(window)
        if a is None:
            a = self._alarms[window] = self.config.alarm_for(window)
        return a

    # ---- detectors ----
    def make_detector(self, window: str) -> Detector:
        w = self.config.windows[window]
        step = self.spec.windows[window].size_ms
        if self.config.detector == "river_hw":
            from stream_app.anomaly.river_hw import RiverHoltWinters  # noqa: PLC0415

            return RiverHoltWinters(step_ms=step, period_points=max(2, DAY_MS // step),
                                    var_halflife=w.var_halflife,
                                    warmup_periods=max(2.0, w.warmup_days))
        return SeasonalDetector(step_ms=step, slot_ms=int(w.slot_minutes * 60_000),
                                week_classes=w.week_classes, level_halflife=w.level_halflife,
                                season_halflife=w.season_halflife_days,
                                var_halflife=w.var_halflife, warmup_periods=w.warmup_days,
                                tz_offset_ms=self.day_offset_ms,
                                warmup_min_share=w.warmup_min_share, adopt_days=w.adopt_days)

    def _new(self, key: SeriesKey, window: str, kind: str) -> _Series:
        a = self._alarm(window)
        s = self._series[key] = _Series(
            self.make_detector(window),
            CusumAlarm(a.cusum_k, a.cusum_h, a.z_spike, a.close_fraction), kind, a.band_z,
            a.hold_fraction * a.cusum_h)
        return s

    # ---- input ----
    def observe(self, p: SeriesPoint) -> Observation | None:
        """Score, learn and alarm on one closed point; None if the series is not watched,
        the point rests on too few events (see ``min_weight``) or its window is incomplete
        (``SeriesPoint.complete``).

        >>> from stream_app.business import SeriesPoint
        >>> AnomalyMonitor().observe(SeriesPoint("leads", "default", "all", "1h", 0, 3_600_000,
        ...                                      1, 1, "count", complete=False)) is None
        True
        """
        u = self._update(p)
        if u is None:
            return None
        s, v, value = u
        kind = p.kind
        lo, hi = v.band(s.band_z)
        low, high = from_stable(kind, lo), from_stable(kind, hi)
        expected = from_stable(kind, v.expected)
        if v.warming:
            s.alarm.reset()
            return Observation(p, v.z, expected, low, high, False, True)
        record, what = self._alarm_change(p, s, v, value)
        return Observation(p, v.z, expected, low, high, s.alarm.open, False, record, what)

    def score(self, p: SeriesPoint) -> tuple[bool, float, dict[str, Any] | None,
                                             str | None] | None:
        """:meth:`observe` without the :class:`Observation`: ``(anomalous, z, record,
        change)`` (what the anomaly agent publishes); the expected range is only worked out
        for a record or a severity. Same state changes and records as :meth:`observe`.

        >>> from stream_app.business import SeriesPoint
        >>> mon = AnomalyMonitor()
        >>> anomalous, z, record, change = mon.score(SeriesPoint(
        ...     "leads", "default", "douyin", "1h", 0, 3_600_000, 9, 9, "count"))
        >>> anomalous, record, change      # warming up: no alarm yet
        (False, None, None)
        """
        u = self._update(p)
        if u is None:
            return None
        s, v, value = u
        if v.warming:
            s.alarm.reset()
            return False, v.z, None, None
        record, what = self._alarm_change(p, s, v, value)
        return s.alarm.direction is not None, v.z, record, what

    def _update(self, p: SeriesPoint) -> tuple[_Series, Verdict, float] | None:
        """The series of a watched point heavy enough to score, its detector's verdict
        (the detector learns the point) and the point's value; None otherwise, and for a
        point of an incomplete window (``p.complete`` False: a partition's counter started
        inside it, e.g. after a worker restart), which is neither scored nor learned: its
        alarm keeps its state until the next complete window."""
        if not p.complete:
            return None
        key = (p.metric, p.tenant, p.channel, p.window)
        watched = self._watched.get(key)
        if watched is None:
            watched = self._watched[key] = self.config.watches(p.metric, p.window, p.channel)
        if not watched:
            return None
        kind = p.kind
        if kind == "rate":   # SeriesPoint.weight and .value, without the property calls
            weight = den = p.den
            value = p.num / den if den > 0 else float("nan")
        else:
            weight = value = p.num
        if weight < self.config.min_weight.get(kind, 0.0):
            return None
        s = self._series.get(key) or self._new(key, p.window, kind)
        y, var = to_stable(kind, value, weight)
        # QA37 F1: no learning while the alarm is open or its CUSUM is building (the state
        # before this point), so an ongoing anomaly does not become the baseline
        alarm = s.alarm
        hold = (alarm.direction is not None or alarm.s_up >= s.hold_at
                or alarm.s_down >= s.hold_at)
        return s, s.detector.update(p.start_ms, y, var, hold), value

    def _alarm_change(self, p: SeriesPoint, s: _Series, v: Verdict,
                      value: float) -> tuple[dict[str, Any] | None, str | None]:
        """Step the series' alarm on a scored (not warming) point: the record to publish and
        its change (open, escalate, close), or ``(None, None)``."""
        alarm = s.alarm
        opened_at, direction = alarm.since, alarm.direction
        change = alarm.step(p.start_ms, v.z)
        if change == "open" or (alarm.direction is not None and s.severity != "critical"):
            kind = p.kind
            expected = from_stable(kind, v.expected)
            sev = self._severity(value, expected, v)
            if change == "open" or sev != s.severity:
                s.severity = sev
                return self._record(p, expected, v, s.band_z, sev, "open", alarm.since,
                                    alarm.direction), (
                    "open" if change == "open" else "escalate")
        elif change == "close":
            record = self._record(p, from_stable(p.kind, v.expected), v, s.band_z, "info",
                                  "resolved", opened_at, direction)
            s.severity = None
            return record, "close"
        return None, None

    def _severity(self, value: float, expected: float, v: Verdict) -> str:
        """Critical when the value is ``critical_relative`` off the expected value and at
        least ``critical_min_z`` sd off (QA37 F5: on a series expecting 1-3 events, 0 is
        100 % off yet inside the expected range), or ``critical_z`` sd off."""
        a = self.config.alarm
        rel = abs(value - expected) / max(abs(expected), 1e-9)
        z = abs(v.z)
        return "critical" if (rel >= a.critical_relative and z >= a.critical_min_z) \
            or z >= a.critical_z else "warning"

    def _record(self, p: SeriesPoint, expected: float, v: Verdict, band_z: float,
                severity: str, state: str, since: int | None,
                direction: str | None) -> dict[str, Any]:
        lo, hi = v.band(band_z)
        low, high = from_stable(p.kind, lo), from_stable(p.kind, hi)
        since = since if since is not None else p.start_ms
        watch = self.config.monitor[p.metric]
        key = "|".join((*p.key, str(since), state, severity))
        return {
            "alert_id": hashlib.sha1(key.encode()).hexdigest()[:20],
            "metric": p.metric,
            "labels": {"tenant": p.tenant, "channel": p.channel, "window": p.window,
                       "direction": direction or "", "state": state,
                       "zh": watch.zh, "en": watch.en,
                       "metric_zh": self.spec.labels_of(p.metric)["zh"],
                       "metric_en": self.spec.labels_of(p.metric)["en"]},
            "value": float(p.value),
            "expected": float(expected),
            "expected_low": float(low),
            "expected_high": float(high),
            "z": round(float(v.z), 3),
            "severity": severity,
            "since": int(since),
            "ts": int(p.end_ms),
        }

    # ---- state ----
    def anomalous(self) -> list[SeriesKey]:
        """Keys of the series whose alarm is open."""
        return [k for k, s in self._series.items() if s.alarm.open]

    def series_kinds(self) -> dict[SeriesKey, str]:
        """Key -> kind of every series with a detector (seen in a complete window, or
        restored): what a restarted anomaly agent's merger seeds as seen before.

        >>> from stream_app.business import SeriesPoint
        >>> mon = AnomalyMonitor()
        >>> _ = mon.observe(SeriesPoint("visits", "default", "douyin", "1m", 0, 60_000, 9, 9,
        ...                             "count"))
        >>> mon.series_kinds()
        {('visits', 'default', 'douyin', '1m'): 'count'}
        """
        return {k: s.kind for k, s in self._series.items()}

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state of every series (seasonal detectors only)."""
        return {"|".join(k): {"kind": s.kind, "severity": s.severity,
                              "alarm": s.alarm.to_dict(), "detector": s.detector.to_dict()}
                for k, s in self._series.items()}

    def restore(self, state: dict[str, Any]) -> None:
        for k, d in state.items():
            key = tuple(k.split("|"))
            if len(key) != 4 or key[3] not in self.config.windows:
                continue
            det = self.make_detector(key[3])
            if not isinstance(det, SeasonalDetector):
                continue
            a = self._alarm(key[3])
            s = _Series(det.load(d["detector"]),
                        CusumAlarm(a.cusum_k, a.cusum_h, a.z_spike, a.close_fraction)
                        .load(d["alarm"]), d["kind"], a.band_z, a.hold_fraction * a.cusum_h)
            s.severity = d.get("severity")
            self._series[key] = s  # type: ignore[index]
