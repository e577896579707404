"""Turning z-scores into alarms: a two-sided CUSUM with a spike shortcut and hysteresis.

``s_up = max(0, s_up + z - k)`` and ``s_down = max(0, s_down - z - k)``: a sustained shift
of ``d`` standard deviations crosses ``h`` after about ``h / (d - k)`` points, while on
normal data crossings are rare (the average run length grows exponentially with ``h``).
A single point beyond ``z_spike`` alarms at once. An open alarm closes when its sum falls
below ``close_fraction * h`` (the sum is capped at ``h`` while open, so closing follows
recovery by about ``h * (1 - close_fraction) / k`` points). ``since`` is the time the
excursion that led to the alarm began.

Example:
    >>> a = CusumAlarm(k=0.5, h=4.0, z_spike=6.0)
    >>> [a.step(t, z) for t, z in enumerate([0.1, -2.0, -2.0, -2.0, 0.0, 0.0])]
    [None, None, None, 'open', None, None]
    >>> a.direction, a.since
    ('down', 1)
    >>> [a.step(t, 0.0) for t in range(6, 12)]
    [None, None, None, None, 'close', None]
"""

from __future__ import annotations

from typing import Any


class CusumAlarm:
    """Alarm state of one series (see the module docstring)."""

    def __init__(self, k: float = 0.5, h: float = 12.0, z_spike: float = 7.0,
                 close_fraction: float = 0.25) -> None:
        self.k, self.h, self.z_spike, self.close_fraction = k, h, z_spike, close_fraction
        self.s_up = 0.0
        self.s_down = 0.0
        self._start_up: int | None = None
        self._start_down: int | None = None
        self.direction: str | None = None  # None | "up" | "down" while open
        self.since: int | None = None

    @property
    def open(self) -> bool:
        return self.direction is not None

    def step(self, ts: int, z: float) -> str | None:
        """Feed one z-score; return ``"open"``, ``"close"`` or None."""
        if self.s_up == 0.0:
            self._start_up = ts
        if self.s_down == 0.0:
            self._start_down = ts
        up = self.s_up + z - self.k       # max(0.0, ...), without the calls
        down = self.s_down - z - self.k
        self.s_up = up if up > 0.0 else 0.0
        self.s_down = down if down > 0.0 else 0.0
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

    def reset(self) -> None:
        self.s_up = self.s_down = 0.0
        self.direction = self.since = None

    def to_dict(self) -> dict[str, Any]:
        return {"s_up": self.s_up, "s_down": self.s_down, "start_up": self._start_up,
                "start_down": self._start_down, "direction": self.direction,
                "since": self.since}

    def load(self, d: dict[str, Any]) -> CusumAlarm:
        self.s_up, self.s_down = float(d["s_up"]), float(d["s_down"])
        self._start_up, self._start_down = d.get("start_up"), d.get("start_down")
        self.direction, self.since = d.get("direction"), d.get("since")
        return self
