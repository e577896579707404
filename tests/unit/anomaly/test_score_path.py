"""The anomaly agent's lean path against the reference it replaced: ``AnomalyMonitor.score``
gives what ``observe`` gives (state changes, z-scores, records), and ``observe_ready`` with
gauges flushed before each await publishes the same gauge values, alert counts and records
as the per-point publishing it replaced, at every pause and at the end."""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from typing import Any

import orjson
import pytest

from stream_app import metrics
from stream_app.anomaly.alarm import CusumAlarm
from stream_app.anomaly.base import Verdict
from stream_app.anomaly.monitor import AnomalyMonitor, Observation
from stream_app.anomaly.seasonal import SeasonalDetector
from stream_app.anomaly.synthetic import generate, scenarios
from stream_app.anomaly.transform import from_stable, to_stable
from stream_app.app import business
from stream_app.business import SeriesPoint

MIN = 60_000


@pytest.fixture(scope="module")
def anomalous_points() -> list[SeriesPoint]:
    """Ten days of watched synthetic series with the three injected anomalies (day 8)."""
    cfg = AnomalyMonitor().config
    pts = list(generate(10, ("douyin", "bilibili"), injections=scenarios(8), seed=2,
                        only=cfg.watches))
    # and a series whose alarm opens as a warning and escalates: a dip, then a collapse
    h = 3_600_000
    values = [100.0 + (i % 3) for i in range(24 * 8)] + [75.0] * 8 + [5.0] * 3 + [100.0] * 30
    pts += [SeriesPoint("leads", "default", "baidu_sem", "1h", i * h, (i + 1) * h, v, v,
                        "count") for i, v in enumerate(values)]
    return pts


def reference_observe(mon: AnomalyMonitor, p: SeriesPoint) -> Observation | None:
    """AnomalyMonitor.observe as it was before the lean path (revision 42c7498)."""
    key = p.key
    watched = mon._watched.get(key)
    if watched is None:
        watched = mon._watched[key] = mon.config.watches(p.metric, p.window, p.channel)
    if not watched:
        return None
    kind, weight = p.kind, p.weight
    if weight < mon.config.min_weight.get(kind, 0.0):
        return None
    s = mon._series.get(key) or mon._new(key, p.window, kind)
    y, var = to_stable(kind, p.value, weight)
    # QA37 F1: the detector does not learn while the alarm is open or its CUSUM is building
    h = mon._alarm(p.window)
    hold = s.alarm.open or max(s.alarm.s_up, s.alarm.s_down) >= h.hold_fraction * h.cusum_h
    v = s.detector.update(p.start_ms, y, var, hold)
    lo, hi = v.band(s.band_z)
    low, high = from_stable(kind, lo), from_stable(kind, hi)
    expected = from_stable(kind, v.expected)
    if v.warming:
        s.alarm.reset()
        return Observation(p, v.z, expected, low, high, False, True)
    opened_at, direction = s.alarm.since, s.alarm.direction
    change = s.alarm.step(p.start_ms, v.z)
    record, what = None, None
    if change == "open" or (s.alarm.open and s.severity != "critical"):
        sev = mon._severity(p.value, expected, v)
        if change == "open" or sev != s.severity:
            what = "open" if change == "open" else "escalate"
            s.severity = sev
            record = reference_record(mon, p, expected, low, high, v, sev, "open",
                                      s.alarm.since, s.alarm.direction)
    elif change == "close":
        what = "close"
        record = reference_record(mon, p, expected, low, high, v, "info", "resolved",
                                  opened_at, direction)
        s.severity = None
    return Observation(p, v.z, expected, low, high, s.alarm.open, False, record, what)


def reference_record(mon: AnomalyMonitor, p: SeriesPoint, expected: float, low: float,
                     high: float, v: Any, severity: str, state: str, since: int | None,
                     direction: str | None) -> dict[str, Any]:
    since = since if since is not None else p.start_ms
    watch = mon.config.monitor[p.metric]
    key = "|".join((*p.key, str(since), state, severity))
    return {
        "alert_id": hashlib.sha1(key.encode()).hexdigest()[:20],
        "metric": p.metric,
        "labels": {"tenant": p.tenant, "channel": p.channel, "window": p.window,
                   "direction": direction or "", "state": state,
                   "zh": watch.zh, "en": watch.en,
                   "metric_zh": mon.spec.labels_of(p.metric)["zh"],
                   "metric_en": mon.spec.labels_of(p.metric)["en"]},
        "value": float(p.value),
        "expected": float(expected),
        "expected_low": float(low),
        "expected_high": float(high),
        "z": round(float(v.z), 3),
        "severity": severity,
        "since": int(since),
        "ts": int(p.end_ms),
    }


def test_observe_and_score_equal_the_reference_through_alarms(anomalous_points) -> None:
    ref, a, b = AnomalyMonitor(), AnomalyMonitor(), AnomalyMonitor()
    changes = []
    for p in anomalous_points:
        want, o, s = reference_observe(ref, p), a.observe(p), b.score(p)
        assert o == want
        if want is None:
            assert s is None
            continue
        assert s == (want.anomalous, want.z, want.record, want.change)
        changes.append(want.change)
    # the comparison saw records of each kind
    assert {"open", "escalate", "close"} <= set(changes)
    assert orjson.dumps(ref.snapshot()) == orjson.dumps(a.snapshot()) == orjson.dumps(
        b.snapshot())


# ---- observe_ready: the reference (per point, as before) and the gauges it leaves -------
async def reference_observe_ready(merger: Any, monitor: AnomalyMonitor, send: Any,
                                  clock: Any, pause: Any) -> int:
    """observe_ready as it was: every point's gauges set at once, Observation objects."""
    slices, total = business.Slices(clock, pause), 0
    for points in merger.ready_windows():
        for point in points:
            metrics.publish_point(point)
            obs = monitor.observe(point)
            if obs is None:
                continue
            metrics.publish_observation(obs)
            if obs.record is not None:
                await send(point.metric, obs.record)
        total += len(points)
        await slices.step(len(points))
    slices.end()
    return total


def alerts_counted() -> float:
    return metrics.ALERTS.labels("metric_anomaly")._value.get()


def gauge_values(alerts_before: float) -> list[tuple[Any, ...]]:
    """Every business gauge's value, and the alerts counted since ``alerts_before``."""
    out: list[tuple[Any, ...]] = [("alerts", alerts_counted() - alerts_before)]
    for collector in (metrics.BIZ_RATE, metrics.METRIC_ANOMALY, metrics.ANOMALY_SCORE):
        for m in collector.collect():
            out.extend((s.name, tuple(sorted(s.labels.items())), s.value) for s in m.samples)
    return sorted(out)


def reset_gauges() -> None:
    for collector in (metrics.BIZ_RATE, metrics.METRIC_ANOMALY, metrics.ANOMALY_SCORE):
        for m in collector.collect():
            for s in m.samples:
                collector.labels(**s.labels).set(-1.0)


def partials(points: list[SeriesPoint], rng: random.Random) -> list[list[SeriesPoint]]:
    """``points`` cut into messages of random size, rates among them (the merger's input)."""
    out, i = [], 0
    while i < len(points):
        n = rng.randint(1, 400)
        out.append(points[i:i + n])
        i += n
    return out


def run_agent(observe_ready: Any, messages: list[list[SeriesPoint]]) -> dict[str, Any]:
    """Messages through a merger and ``observe_ready``; what was published, and the gauge
    values seen at every pause and at the end."""
    reset_gauges()
    before = alerts_counted()
    merger = business.Merger(wall=lambda: 0.0)
    monitor = AnomalyMonitor(spec=business.spec)
    sent: list[bytes] = []
    at_pause: list[Any] = []
    tick = [0.0]

    def clock() -> float:   # 0.4 ms per call: a slice every dozen windows or so
        tick[0] += 0.0004
        return tick[0]

    async def pause(seconds: float) -> None:
        at_pause.append(gauge_values(before))

    async def send(metric: str, record: dict[str, Any]) -> None:
        sent.append(orjson.dumps([metric, record]))
        at_pause.append(gauge_values(before))

    async def agent() -> int:
        total = 0
        for i, msg in enumerate(messages):
            ts = max(p.end_ms for p in msg) + 10 * MIN
            merger.add("click:0", ts if i < len(messages) - 1 else 10**13, msg)
            total += await observe_ready(merger, monitor, send, clock=clock, pause=pause)
        return total

    total = asyncio.run(agent())
    return {"total": total, "sent": sent, "at_pause": at_pause, "end": gauge_values(before)}


def test_observe_ready_publishes_what_the_per_point_reference_did(anomalous_points) -> None:
    rng = random.Random(5)
    rates = [SeriesPoint("attendance", "default", ch, "1h", t, t + 3_600_000,
                         rng.randint(0, 30), rng.randint(0, 40), "rate")
             for t in range(anomalous_points[0].start_ms, anomalous_points[-1].start_ms,
                            3_600_000) for ch in ("all", "douyin")]
    points = sorted(anomalous_points + rates, key=lambda p: p.end_ms)
    messages = partials(points, rng)
    run_agent(reference_observe_ready, messages)   # every gauge child exists from here on
    want = run_agent(reference_observe_ready, messages)
    got = run_agent(business.observe_ready, messages)
    assert want["sent"] and want["at_pause"]
    assert got == want


def test_gauges_are_flushed_when_scoring_fails(monkeypatch) -> None:
    merger = business.Merger(wall=lambda: 0.0)
    merger.add("click:0", 10**9, [
        SeriesPoint("attendance", "default", "all", "1h", 0, 3_600_000, 7, 8, "rate"),
        SeriesPoint("leads", "default", "douyin", "1h", 0, 3_600_000, 4, 4, "count")])
    monitor = AnomalyMonitor(spec=business.spec)

    def broken(p: SeriesPoint) -> Any:
        if p.metric == "leads":
            raise RuntimeError("planted")
        return monitor.__class__.score(monitor, p)
    monkeypatch.setattr(monitor, "score", broken)
    gauge = metrics.BIZ_RATE.labels("default", "all", "attendance", "1h")
    gauge.set(-1.0)

    async def send(metric: str, record: dict[str, Any]) -> None:
        pass
    with pytest.raises(RuntimeError):
        asyncio.run(business.observe_ready(merger, monitor, send))
    assert gauge._value.get() == 7 / 8


@pytest.mark.parametrize("week_classes", [1, 2, 7])
@pytest.mark.parametrize("step_ms", [60_000, 600_000, 3_600_000])
def test_detector_update_learns_the_slot_of_its_index(week_classes: int, step_ms: int) -> None:
    """``SeasonalDetector.update`` works out (day class, slot) inline: the same as
    ``_index``, for any time (the weekday and time-of-day boundaries included)."""
    rng = random.Random(week_classes * step_ms)
    times = [rng.randrange(0, 40 * 86_400_000) for _ in range(300)]
    times += [d * 86_400_000 + off for d in range(8) for off in (-28_800_001, -28_800_000, 0)]
    for ts in times:
        det = SeasonalDetector(step_ms=step_ms, week_classes=week_classes)
        det.update(ts, 3.0, 1.0)
        cls, slot = det._index(ts)
        assert det._seen[cls][slot] == 1
        assert sum(map(sum, det._seen)) == 1


class ReferenceSeasonal(SeasonalDetector):
    """SeasonalDetector.update as it was (42c7498)."""

    def update(self, ts_ms: int, y: float, var: float) -> Any:
        cls, slot = self._index(ts_ms)
        season, seen_of = self._season[cls], self._seen[cls]
        seen = seen_of[slot]
        level = self._level
        exp = (level or 0.0) + (season[slot] if seen or self.week_classes == 1
                                else self._profile(cls, slot))
        extra_var = self._extra_var
        sd = math.sqrt(var + (extra_var if extra_var > 0.0 else 0.0) + 1e-9)
        r = y - exp
        z = r / sd
        c = self.clip * sd
        rc = max(-c, min(c, r))
        self._n += 1
        if level is None:
            if seen:
                self._var_n += 1
                spread = r * r * seen / (seen + 1) - var
                self._extra_var = extra_var + (spread - extra_var) / self._var_n
                season[slot] += r / (seen + 1)
            else:
                season[slot] = y
            seen_of[slot] = seen + 1
            if self._n >= self._warmup_ms // self.step_ms:   # (was counted in points)
                self._end_warmup()
            return Verdict(z, exp, sd, True)
        a_level = self._a_level
        level += a_level * rc
        self._level = level
        if seen == 0:
            season[slot] = exp + rc - level
        elif seen < self._mean_until:
            season[slot] += (exp + rc - level - season[slot]) / (seen + 1)
        else:
            season[slot] += self._g_season * rc * (1.0 - a_level)
        seen_of[slot] = seen + 1
        self._extra_var = extra_var + self._b_var * ((rc * rc - var) - extra_var)
        return Verdict(z, exp, sd, False)


class ReferenceAlarm(CusumAlarm):
    """CusumAlarm.step as it was (42c7498)."""

    def step(self, ts: int, z: float) -> str | None:
        if self.s_up == 0.0:
            self._start_up = ts
        if self.s_down == 0.0:
            self._start_down = ts
        self.s_up = max(0.0, self.s_up + z - self.k)
        self.s_down = max(0.0, self.s_down - z - self.k)
        if self.direction is None:
            if self.s_down > self.h or z < -self.z_spike:
                self.direction, self.since = "down", self._start_down
            elif self.s_up > self.h or z > self.z_spike:
                self.direction, self.since = "up", self._start_up
            else:
                return None
            return "open"
        spike = z < -self.z_spike if self.direction == "down" else z > self.z_spike
        if self.direction == "down":
            self.s_down = min(self.s_down, self.h)
            s = self.s_down
        else:
            self.s_up = min(self.s_up, self.h)
            s = self.s_up
        if s <= self.close_fraction * self.h and not spike:
            self.direction = self.since = None
            self.s_up = self.s_down = 0.0
            return "close"
        return None


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (by the bytes of their repr, signs included)."""
    return repr(a) == repr(b)


ODD = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e300, -1e300, 50.0, -50.0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_detector_and_alarm_equal_the_reference_on_odd_values(seed: int) -> None:
    rng = random.Random(seed)
    wc = rng.choice([1, 2, 7])
    ref, new = (cls(step_ms=600_000, week_classes=wc, warmup_periods=0.3)
                for cls in (ReferenceSeasonal, SeasonalDetector))
    ref_a, new_a = ReferenceAlarm(1.0, 6.0, 6.0), CusumAlarm(1.0, 6.0, 6.0)
    changes = set()
    for i in range(3000):
        late = i > 2900   # infinities and NaN poison the state: only at the end
        y = rng.choice(ODD if late else ODD[:2] + ODD[5:]) if rng.random() < 0.01 else (
            rng.gauss(5, 1) + (8 if 1500 < i < 1600 else 0))
        var = rng.choice([0.0, 0.01, math.nan if late else 1.0]) if rng.random() < 0.01 \
            else 1.0
        ts = i * 600_000
        v_ref, v_new = ref.update(ts, y, var), new.update(ts, y, var)
        assert same(v_ref, v_new)
        z = rng.choice(ODD) if rng.random() < 0.02 else v_ref.z
        c_ref, c_new = ref_a.step(ts, z), new_a.step(ts, z)
        assert c_ref == c_new and same(ref_a.to_dict(), new_a.to_dict())
        changes.add(c_ref)
    # the reference keeps no event time (t0) and never holds (no excursion)
    new_state = {k: v for k, v in new.to_dict().items() if k != "t0"}
    assert same({k: v for k, v in ref.to_dict().items() if k != "t0"}, new_state)
    assert {"open", "close"} <= changes


def reference_to_stable(kind: str, value: float, weight: float) -> tuple[float, float]:
    """transform.to_stable as it was (42c7498)."""
    if kind == "count":
        return 2.0 * math.sqrt(max(0.0, value) + 0.375), 1.0
    if kind == "rate":
        p = min(1.0, max(0.0, value))
        return math.asin(math.sqrt(p)), 1.0 / (4.0 * max(weight, 1.0))
    return math.log1p(max(0.0, value)), 0.0


@pytest.mark.parametrize("kind", ["count", "rate", "revenue"])
def test_to_stable_equals_the_reference(kind: str) -> None:
    rng = random.Random(kind)
    values = ODD + [1.0, 0.5, 0.999, 1.5, -0.5, 0.375, 1e-300, -1e-300] + [
        rng.uniform(-2, 50) for _ in range(500)]
    for value in values:
        for weight in [*ODD, 1.0, 0.5, 20.0, rng.uniform(0, 100)]:
            try:
                want = reference_to_stable(kind, value, weight)
            except (ValueError, OverflowError) as exc:
                with pytest.raises(type(exc)):
                    to_stable(kind, value, weight)
                continue
            assert same(to_stable(kind, value, weight), want)
