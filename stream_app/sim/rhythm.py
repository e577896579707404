"""Time in the simulated world: local days, the diurnal and weekly rhythm, arrival processes.

All times are epoch milliseconds; "local" means shifted by the company's UTC offset.

Example:
    >>> rh = Rhythm([1.0] * 24, [1.0] * 7, utc_offset_minutes=480)
    >>> rh.day_start(1714528800000)          # 2024-05-01T10:00+08:00 -> that local midnight
    1714492800000
    >>> rh.weekday(1714528800000)            # a Wednesday
    2
    >>> import random
    >>> times = rh.bulk_arrivals(random.Random(1), 0, 2 * DAY_MS, 100)
    >>> len(times), times == sorted(times), 0 <= times[0] and times[-1] < 2 * DAY_MS
    (100, True, True)
"""

from __future__ import annotations

import itertools
import random
from bisect import bisect
from collections.abc import Callable, Iterator, Sequence

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
# 1970-01-01 was a Thursday: weekday index 3 with Monday = 0
_EPOCH_WEEKDAY = 3


class Rhythm:
    """Relative activity by local hour of day and weekday, and samplers that follow it."""

    def __init__(self, hourly: Sequence[float], weekly: Sequence[float],
                 utc_offset_minutes: int = 480) -> None:
        self.hourly = list(hourly)
        self.weekly = list(weekly)
        self.offset_ms = utc_offset_minutes * MINUTE_MS
        self._hour_cum = list(itertools.accumulate(self.hourly))
        self._hour_total = self._hour_cum[-1]
        self._week_mean = sum(self.weekly) / 7
        self._hour_mean = self._hour_total / 24
        self.max_weight = max(self.hourly) * max(self.weekly) / (self._hour_mean * self._week_mean)

    def day_start(self, ts: int) -> int:
        """Epoch ms of the local midnight starting the day of ``ts``."""
        off = self.offset_ms
        return (ts + off) // DAY_MS * DAY_MS - off

    def weekday(self, ts: int) -> int:
        """Local weekday of ``ts``, Monday = 0."""
        return ((ts + self.offset_ms) // DAY_MS + _EPOCH_WEEKDAY) % 7

    def hour(self, ts: int) -> int:
        """Local hour of day of ``ts``."""
        return (ts + self.offset_ms) % DAY_MS // HOUR_MS

    def weight(self, ts: int) -> float:
        """Activity at ``ts`` relative to the average hour of the average week (mean 1)."""
        return (self.hourly[self.hour(ts)] * self.weekly[self.weekday(ts)]
                / (self._hour_mean * self._week_mean))

    def day_factor(self, weekday: int) -> float:
        """Activity factor of a weekday (Monday = 0; mean 1 over the week)."""
        return self.weekly[weekday] / self._week_mean

    def time_in_day(self, rand: Callable[[], float], day_start: int) -> int:
        """A moment in the local day starting at ``day_start``, following the hourly rhythm."""
        h = bisect(self._hour_cum, rand() * self._hour_total)
        return day_start + min(h, 23) * HOUR_MS + int(rand() * HOUR_MS)

    def bulk_arrivals(self, rng: random.Random, start_ms: int, end_ms: int, n: int) -> list[int]:
        """``n`` sorted arrival times in ``[start_ms, end_ms)`` drawn from the rhythm."""
        if n <= 0 or end_ms <= start_ms:
            return []
        bins, weights = self._hour_bins(start_ms, end_ms)
        cum = list(itertools.accumulate(weights))
        picks = rng.choices(range(len(bins)), cum_weights=cum, k=n)
        rand = rng.random
        out = []
        for i in picks:
            lo, hi = bins[i]
            out.append(lo + int(rand() * (hi - lo)))
        out.sort()
        return out

    def mass(self, start_ms: int, end_ms: int) -> float:
        """Total rhythm weight of ``[start_ms, end_ms)`` in average hours."""
        if end_ms <= start_ms:
            return 0.0
        return sum(self._hour_bins(start_ms, end_ms)[1])

    def _hour_bins(self, start_ms: int, end_ms: int) -> tuple[list[tuple[int, int]], list[float]]:
        bins: list[tuple[int, int]] = []
        weights: list[float] = []
        b = start_ms - (start_ms % HOUR_MS)
        while b < end_ms:
            lo, hi = max(b, start_ms), min(b + HOUR_MS, end_ms)
            bins.append((lo, hi))
            weights.append(self.weight(lo) * (hi - lo) / HOUR_MS)
            b += HOUR_MS
        return bins, weights

    def poisson_arrivals(self, rng: random.Random, start_ms: int,
                         per_day: float) -> Iterator[int]:
        """Endless arrival times of a Poisson process of ``per_day`` average rate, modulated by
        the rhythm, by thinning."""
        lam_max = per_day / DAY_MS * self.max_weight
        t = float(start_ms)
        rand = rng.random
        while True:
            t += rng.expovariate(lam_max)
            ts = int(t)
            if rand() * self.max_weight < self.weight(ts):
                yield ts
