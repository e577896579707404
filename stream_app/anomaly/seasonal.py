"""A robust seasonal baseline: level + time-of-day profile per day class.

``expected(t) = level + season[day_class(t)][slot_of_day(t)]`` on the stabilised scale, with
day classes weekday / weekend (``week_classes=2``), every weekday (7) or none (1). Every
point first gets a z-score ``(y - expected) / sqrt(var + extra_var)``, then the residual,
clipped to ``clip`` standard deviations (an anomaly teaches the baseline little), updates the
parts. A profile slot is the running mean of ``y - level`` until it has seen
``season_halflife`` days of points, then an exponential average; a slot of a day class not
seen yet borrows the slot of another class. ``extra_var`` is the variance beyond sampling
noise (over-dispersion): during the warm-up the spread within slots, then an exponential
average of squared clipped residuals. During the warm-up (``warmup_periods`` days of event
time from the first point, and at least ``warmup_min_share`` of that span's points learned;
verdicts are ``warming``) the level is held at 0 and each slot is the running mean of ``y``;
at its end the mean of the slots becomes the level. Warm-up follows event time, not a count
of points: a rate series whose night hours rest on too few events (not scored) still warms
up in ``warmup_periods`` days (QA37 F2).

``update(..., hold=True)`` (the monitor passes it while the series' alarm is open or its
CUSUM is building, QA37 F1) scores the point against the baseline but does not learn from
it: an ongoing anomaly does not become "normal" and the alarm stays open until the series is
back in its range. The held points' residuals are followed (an exponential average); when an
excursion of held points has lasted ``adopt_days`` of event time, the level takes that
average: a persisting level shift becomes the new normal after about a day.

Example:
    >>> import math, random
    >>> rng, det = random.Random(1), SeasonalDetector(step_ms=60_000)
    >>> def y(t): return 6 + 2 * math.sin(2 * math.pi * t / 86_400_000) + rng.gauss(0, 1)
    >>> for t in range(0, 3 * 86_400_000, 60_000): v = det.update(t, y(t), 1.0)
    >>> v.warming, abs(v.z) < 4
    (False, True)
    >>> det.update(3 * 86_400_000, 0.0, 1.0).z < -4   # the series collapses
    True
    >>> before = det.expected(3 * 86_400_000 + 60_000)
    >>> for i in range(1, 240): v = det.update(3 * 86_400_000 + i * 60_000, 0.0, 1.0, hold=True)
    >>> det.expected(3 * 86_400_000 + 60_000) == before, v.z < -4   # held: nothing learned
    (True, True)
"""

from __future__ import annotations

import math
from typing import Any

from stream_app.anomaly.base import Verdict

DAY_MS = 86_400_000


class SeasonalDetector:
    """Parameters:
        step_ms: spacing of the series (window size).
        slot_ms: width of a time-of-day profile slot (default: 10 minutes or ``step_ms``).
        week_classes: 1 (every day alike), 2 (weekday / weekend) or 7 (each weekday).
        level_halflife: points for the level to move half-way to a new value.
        season_halflife: days for a profile slot to move half-way.
        var_halflife: points for the extra variance to move half-way.
        clip: residuals are clipped to this many standard deviations before learning.
        warmup_periods: days of event time before verdicts count (``warming`` is True
            until then).
        warmup_min_share: the warm-up also needs this share of its span's points learned.
        adopt_days: an excursion of held points (``update(hold=True)``) this long (event
            time) becomes the new level.
        tz_offset_ms: offset of the business day (UTC+8 by default).
    """

    def __init__(self, step_ms: int, slot_ms: int | None = None, week_classes: int = 2,
                 level_halflife: float = 60.0, season_halflife: float = 3.0,
                 var_halflife: float = 720.0, clip: float = 3.0, warmup_periods: float = 1.0,
                 tz_offset_ms: int = 8 * 3_600_000, warmup_min_share: float = 0.25,
                 adopt_days: float = 1.0) -> None:
        if week_classes not in (1, 2, 7):
            raise ValueError("week_classes must be 1, 2 or 7")
        self.step_ms = step_ms
        self.slot_ms = slot_ms or max(step_ms, 600_000)
        self.week_classes = week_classes
        self.level_halflife = level_halflife
        self.season_halflife = season_halflife
        self.var_halflife = var_halflife
        self.clip = clip
        self.warmup_periods = warmup_periods
        self.tz_offset_ms = tz_offset_ms
        self.warmup_min_share = warmup_min_share
        self.adopt_days = adopt_days
        self._n_slots = max(1, DAY_MS // self.slot_ms)
        pts_per_slot_day = max(1.0, self.slot_ms / step_ms)
        self._a_level = _rate(level_halflife)
        self._g_season = _rate(season_halflife * pts_per_slot_day)
        self._mean_until = int(season_halflife * pts_per_slot_day)
        self._b_var = _rate(var_halflife)
        warmup_points = max(1, int(warmup_periods * DAY_MS / step_ms))
        # the span is a whole number of steps: a dense series warms up after as many points
        # as when the warm-up was counted in points
        self._warmup_ms = warmup_points * step_ms
        self._warmup_min_n = max(1, int(warmup_min_share * warmup_points))
        self._adopt_ms = adopt_days * DAY_MS
        self._t0: int | None = None          # event time of the first point
        # excursion of held points: start (event time), mean residual
        self._exc_since: int | None = None
        self._exc_r = 0.0
        self._level: float | None = None
        self._season = [[0.0] * self._n_slots for _ in range(week_classes)]
        self._seen = [[0] * self._n_slots for _ in range(week_classes)]
        self._extra_var = 0.0
        self._var_n = 0
        self._n = 0

    def _index(self, ts_ms: int) -> tuple[int, int]:
        local = ts_ms + self.tz_offset_ms
        slot = (local % DAY_MS) // self.slot_ms % self._n_slots
        weekday = (local // DAY_MS + 3) % 7  # 0 = Monday
        wc = self.week_classes
        return (0 if wc == 1 else int(weekday >= 5) if wc == 2 else weekday), slot

    def _profile(self, cls: int, slot: int) -> float:
        if self._seen[cls][slot] or self.week_classes == 1:
            return self._season[cls][slot]
        seen = [c for c in range(self.week_classes) if self._seen[c][slot]]
        return sum(self._season[c][slot] for c in seen) / len(seen) if seen else 0.0

    def expected(self, ts_ms: int) -> float:
        return (self._level or 0.0) + self._profile(*self._index(ts_ms))

    def update(self, ts_ms: int, y: float, var: float, hold: bool = False) -> Verdict:
        """Score ``y`` at ``ts_ms``, then learn from it unless ``hold`` (outside the
        warm-up; see the module docstring)."""
        cls, slot = self._index(ts_ms)
        season, seen_of = self._season[cls], self._seen[cls]
        seen = seen_of[slot]
        level = self._level
        # _profile(cls, slot) without the call when the slot has been seen
        exp = (level or 0.0) + (season[slot] if seen or self.week_classes == 1
                                else self._profile(cls, slot))
        extra_var = self._extra_var
        sd = math.sqrt(var + (extra_var if extra_var > 0.0 else 0.0) + 1e-9)
        r = y - exp
        z = r / sd
        c = self.clip * sd
        rc = r if r < c else c          # max(-c, min(c, r)), without the calls
        if not rc > -c:
            rc = -c
        self._n += 1
        t0 = self._t0
        if t0 is None:
            # the first point; for a state saved before t0 was kept, the points learned
            # are taken as consecutive
            t0 = self._t0 = ts_ms - (self._n - 1) * self.step_ms
        if level is None:
            # level stays 0: each slot is the running mean of y, the spread around it
            # estimates the extra variance; the mean level is split off when warm-up ends
            if seen:
                self._var_n += 1
                spread = r * r * seen / (seen + 1) - var
                self._extra_var = extra_var + (spread - extra_var) / self._var_n
                season[slot] += r / (seen + 1)
            else:
                season[slot] = y
            seen_of[slot] = seen + 1
            if (ts_ms + self.step_ms - t0 >= self._warmup_ms
                    and self._n >= self._warmup_min_n):
                self._end_warmup()
            return Verdict(z, exp, sd, True)
        a_level = self._a_level
        if hold:
            # score only: follow the excursion's residual; adopt it once it has lasted
            if self._exc_since is None:
                self._exc_since, self._exc_r = ts_ms, r
            else:
                self._exc_r += a_level * (r - self._exc_r)
            if ts_ms - self._exc_since >= self._adopt_ms and math.isfinite(self._exc_r):
                self._level = level + self._exc_r
                self._exc_since, self._exc_r = None, 0.0
            return Verdict(z, exp, sd, False)
        if self._exc_since is not None:   # the excursion ended before it was adopted
            self._exc_since, self._exc_r = None, 0.0
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

    def _end_warmup(self) -> None:
        vals = [v for c in range(self.week_classes) for v, n in
                zip(self._season[c], self._seen[c], strict=True) if n]
        self._level = sum(vals) / len(vals) if vals else 0.0
        for c in range(self.week_classes):
            self._season[c] = [v - self._level if n else 0.0
                               for v, n in zip(self._season[c], self._seen[c], strict=True)]

    # ---- state ----
    def to_dict(self) -> dict[str, Any]:
        return {"level": self._level, "season": self._season, "seen": self._seen,
                "extra_var": self._extra_var, "n": self._n, "var_n": self._var_n,
                "t0": self._t0, "exc_since": self._exc_since, "exc_r": self._exc_r}

    def load(self, state: dict[str, Any]) -> SeasonalDetector:
        if len(state["season"]) != self.week_classes:
            return self  # configuration changed: start learning again
        self._level = state["level"]
        self._season = [list(s) for s in state["season"]]
        self._seen = [list(s) for s in state["seen"]]
        self._extra_var = float(state["extra_var"])
        self._n = int(state["n"])
        self._var_n = int(state.get("var_n", 0))
        # keys added by QA37 F1/F2; a state saved before has none of them (t0 is then
        # reconstructed at the next point, and no excursion is open)
        t0 = state.get("t0")
        self._t0 = None if t0 is None else int(t0)
        since = state.get("exc_since")
        self._exc_since = None if since is None else int(since)
        self._exc_r = float(state.get("exc_r", 0.0))
        return self


def _rate(halflife: float) -> float:
    """Smoothing factor whose weight halves after ``halflife`` updates."""
    return 1.0 - 0.5 ** (1.0 / max(halflife, 1e-9))
