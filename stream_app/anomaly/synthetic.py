"""Synthetic business series with known anomalies, for measuring detectors.

Per channel, minute counts of visits, leads, trial bookings, trial purchases, orders and
revenue, plus hourly lesson attendance and homework, with what real series have: an evening
peak and a lunch bump (business time, UTC+8), busier weekends, a slow trend, day-to-day and
hour-to-hour over-dispersion on top of Poisson/binomial noise. :class:`Injection` changes
one factor for a while: a channel's lead rate drops, a funnel step collapses, traffic spikes.
Output is the stream of closed :class:`~stream_app.business.SeriesPoint` (1m, 10m, 1h) in the
order the aggregator would emit them, so it feeds :class:`~stream_app.anomaly.AnomalyMonitor`
directly.

Example:
    >>> pts = list(generate(days=1, channels=("douyin",), seed=1))
    >>> sorted({p.metric for p in pts if p.window == "1h"})[:3]
    ['attendance', 'homework', 'lead_to_trial']
    >>> sum(p.value for p in pts if p.key == ("leads", "default", "douyin", "1m")) > 100
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from stream_app.business.series import ALL, SeriesPoint

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
TZ = 8 * HOUR
#: 2024-05-06 00:00 UTC+8, a Monday
EPOCH0 = 1_714_924_800_000

#: peak leads per minute of each channel
CHANNEL_LEADS = {"douyin": 3.0, "bilibili": 1.5, "baidu_sem": 2.0, "wechat_oa": 1.0,
                 "moments_ads": 0.8, "offline": 0.3, "referral": 0.5, "organic": 1.2}


@dataclass(frozen=True)
class Injection:
    """Multiply ``factor`` (``leads``, ``visits``, ``book``: lead->trial probability,
    ``buy``, ``order``, ``attend``) by ``scale`` on ``channel`` (None: all channels) during
    ``[start_ms, start_ms + duration_ms)``."""

    name: str
    factor: str
    scale: float
    start_ms: int
    duration_ms: int
    channel: str | None = None

    def active(self, ts: np.ndarray) -> np.ndarray:
        return (ts >= self.start_ms) & (ts < self.start_ms + self.duration_ms)

    def target(self) -> tuple[str, str]:
        """(metric, channel) an alarm must fire on for the injection to count as detected."""
        metric = {"leads": "leads", "visits": "visits", "book": "lead_to_trial",
                  "buy": "trial_to_purchase", "order": "orders",
                  "attend": "attendance"}[self.factor]
        return metric, self.channel or ALL


def scenarios(day: int = 8) -> list[Injection]:
    """The three injected anomalies of the measurement (on simulated day ``day``)."""
    t0 = EPOCH0 + day * DAY
    return [
        Injection("lead_rate_drop", "leads", 0.4, t0 + 14 * HOUR, 3 * HOUR, "douyin"),
        Injection("funnel_step_collapse", "book", 0.3, t0 + 10 * HOUR, 4 * HOUR, None),
        Injection("traffic_spike", "visits", 4.0, t0 + 20 * HOUR + 10 * MIN, 30 * MIN,
                  "bilibili"),
    ]


def daily_shape(minute_of_day: np.ndarray) -> np.ndarray:
    """Relative activity by local minute of day: night trough, lunch bump, evening peak."""
    h = minute_of_day / 60.0
    evening = np.exp(-0.5 * ((h - 20.5) / 1.8) ** 2)
    lunch = 0.45 * np.exp(-0.5 * ((h - 12.5) / 1.2) ** 2)
    day = 0.35 / (1 + np.exp(-(h - 8.5) * 1.5)) * (1 / (1 + np.exp((h - 23.5) * 2)))
    return 0.06 + evening + lunch + day


def generate(days: int = 14, channels: Sequence[str] = tuple(CHANNEL_LEADS),
             injections: Sequence[Injection] = (), seed: int = 0,
             tenant: str = "default",
             only: Callable[[str, str], bool] | None = None) -> Iterator[SeriesPoint]:
    """Closed 1m and 1h points of ``days`` simulated days from ``EPOCH0``; ``only(metric,
    window)`` keeps just the series a monitor watches (faster)."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    ts = EPOCH0 + np.arange(n, dtype=np.int64) * MIN
    local_min = ((ts + TZ) % DAY) // MIN
    weekday = ((ts + TZ) // DAY + 3) % 7
    shape = daily_shape(local_min) * np.where(weekday >= 5, 1.25, 1.0)
    trend = 1.0 + 0.004 * np.arange(n) / 1440
    per_ch: dict[str, dict[str, np.ndarray]] = {}
    for ch in channels:
        day_noise = np.repeat(rng.lognormal(0, 0.06, days), 1440)
        hour_noise = np.repeat(rng.lognormal(0, 0.08, days * 24), 60)
        mult = {f: np.ones(n) for f in ("leads", "visits", "book", "buy", "order", "attend")}
        for inj in injections:
            if inj.channel in (None, ch):
                mult[inj.factor] = np.where(inj.active(ts), mult[inj.factor] * inj.scale,
                                            mult[inj.factor])
        lam = CHANNEL_LEADS.get(ch, 1.0) * shape * trend * day_noise * hour_noise
        leads = rng.poisson(lam * mult["leads"])
        visits = rng.poisson(lam * 9.0 * mult["visits"] * rng.lognormal(0, 0.05, n))
        p_book = np.clip(0.25 * mult["book"] * np.repeat(rng.lognormal(0, 0.05, days * 24), 60),
                         0, 1)
        book = rng.binomial(leads, p_book)
        buy = rng.binomial(book, np.clip(0.4 * mult["buy"], 0, 1))
        order = rng.binomial(buy, np.clip(0.3 * mult["order"], 0, 1))
        revenue = np.array([rng.lognormal(8.0, 0.3, k).sum() if k else 0.0 for k in order])
        lessons = rng.poisson(CHANNEL_LEADS.get(ch, 1.0) * 4 * shape)
        attended = rng.binomial(lessons, np.clip(0.85 * mult["attend"], 0, 1))
        missed = lessons - attended
        homework = rng.binomial(attended, 0.6)
        per_ch[ch] = {"visits": visits, "leads": leads, "trial_bookings": book,
                      "trial_purchases": buy, "orders": order, "revenue": revenue,
                      "attended": attended, "missed": missed, "homework": homework}
    per_ch[ALL] = {k: sum(per_ch[c][k] for c in channels) for k in per_ch[channels[0]]}
    keep = only or (lambda _m, _w: True)
    yield from _points(per_ch, ts, tenant, keep)


_RATES = (("lead_to_trial", "trial_bookings", ("leads",)),
          ("trial_to_purchase", "trial_purchases", ("trial_bookings",)),
          ("purchase_to_order", "orders", ("trial_purchases",)),
          ("attendance", "attended", ("attended", "missed")),
          ("homework", "homework", ("attended",)))
_COUNTS = ("leads", "visits", "trial_bookings", "trial_purchases", "orders")


def _emit(series: dict[str, dict[str, float]], start: int, size: int, window: str,
          tenant: str, keep: Callable[[str, str], bool]) -> Iterator[SeriesPoint]:
    counts = [m for m in _COUNTS if keep(m, window)]
    rates = [r for r in _RATES if keep(r[0], window)]
    revenue = keep("revenue", window)
    for ch, c in series.items():
        for name in counts:
            yield SeriesPoint(name, tenant, ch, window, start, start + size, c[name], c[name],
                              "count")
        if revenue:
            yield SeriesPoint("revenue", tenant, ch, window, start, start + size,
                              c["revenue"], c["revenue"], "revenue")
        for name, num, den in rates:
            d = sum(c[x] for x in den)
            if d > 0:
                yield SeriesPoint(name, tenant, ch, window, start, start + size, c[num], d,
                                  "rate")


#: windows emitted, in minutes
WINDOWS = {"1m": 1, "10m": 10, "1h": 60}


def _points(per_ch: dict[str, dict[str, np.ndarray]], ts: np.ndarray, tenant: str,
            keep: Callable[[str, str], bool]) -> Iterator[SeriesPoint]:
    n = len(ts)
    for i in range(n):
        for window, size in WINDOWS.items():
            if (i + 1) % size:
                continue
            if not any(keep(m, window) for m in (*_COUNTS, "revenue", *(r[0] for r in _RATES))):
                continue
            agg = {ch: {k: float(v[i + 1 - size:i + 1].sum()) for k, v in d.items()}
                   for ch, d in per_ch.items()}
            yield from _emit(agg, int(ts[i + 1 - size]), size * MIN, window, tenant, keep)
