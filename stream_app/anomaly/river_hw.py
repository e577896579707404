"""River's Holt-Winters forecaster behind the :class:`~stream_app.anomaly.base.Detector`
interface (the alternative measured against :class:`SeasonalDetector`; see
``docs/OPERATIONS.md``). The residual scale is an exponential average of squared
one-step errors, clipped like the seasonal baseline's.

River 0.26's additive ``HoltWinters`` initialises its seasonal terms as ``y / level`` (the
multiplicative form) and needs a trend term; at 1-minute resolution each of the 1,440
seasonal cells learns once a day. Measured on the synthetic series it alarms more and
detects less than the seasonal baseline (numbers in ``docs/OPERATIONS.md``).

Example:
    >>> det = RiverHoltWinters(step_ms=3_600_000, period_points=24)
    >>> for t in range(24 * 3): v = det.update(t * 3_600_000, 5.0, 0.01)
    >>> v.warming, round(v.expected, 3)   # a constant series: the seasonal init shows
    (False, 5.091)
"""

from __future__ import annotations

import math
from typing import Any

from river import time_series

from stream_app.anomaly.base import Verdict


class RiverHoltWinters:
    """Additive Holt-Winters (``river.time_series.HoltWinters``) + a learned error scale."""

    def __init__(self, step_ms: int, period_points: int, alpha: float = 0.05,
                 beta: float = 0.001, gamma: float = 0.2, var_halflife: float = 720.0,
                 clip: float = 1e9, warmup_periods: float = 2.0) -> None:
        self.step_ms = step_ms
        self.period_points = period_points
        self.clip = clip  # default: no clipping (plain Holt-Winters learning)
        self._model = time_series.HoltWinters(alpha=alpha, beta=beta, gamma=gamma,
                                              seasonality=period_points)
        self._b = 1.0 - 0.5 ** (1.0 / var_halflife)
        self._extra_var = 0.0
        self._n = 0
        self._warmup = int(warmup_periods * period_points)

    def update(self, ts_ms: int, y: float, var: float, hold: bool = False) -> Verdict:
        # ``hold`` is ignored: River's seasonal cells are indexed by the count of points
        # learned, so every point is learned
        ready = self._n > self.period_points
        exp = self._model.forecast(1)[0] if ready else y
        sd = math.sqrt(var + max(0.0, self._extra_var) + 1e-9)
        r = y - exp
        warming = self._n < self._warmup
        c = self.clip * sd * (3.0 if warming else 1.0)
        rc = max(-c, min(c, r))
        self._model.learn_one(exp + rc if ready else y)
        if ready:
            b = max(self._b, 1.0 / (self._n - self.period_points + 1)) if warming else self._b
            self._extra_var += b * ((rc * rc - var) - self._extra_var)
        self._n += 1
        return Verdict(r / sd if ready else 0.0, exp, sd, warming)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self._n, "extra_var": self._extra_var}
