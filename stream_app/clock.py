"""The worker's clock for time-based tags: event time that keeps moving when input is idle.

``now = max event time seen + wall time elapsed since it was seen``. With live input this is
the wall clock; during a replay it follows the replayed event time, and an idle stream still
advances, so "no visit for 30 days" becomes true without new events.

Example:
    >>> wall = iter([100.0, 105.0]).__next__
    >>> c = HybridClock(wall=wall)
    >>> c.now() is None                       # nothing seen yet
    True
    >>> c.observe(1_000_000)                  # an event at t=1,000,000 ms (wall 100 s)
    >>> c.now()                               # 5 wall seconds later
    1005000
"""

from __future__ import annotations

import time
from collections.abc import Callable


class HybridClock:
    """Event-time watermark plus wall-clock drift since the newest event."""

    def __init__(self, wall: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._event_ms: int | None = None
        self._wall_at: float = 0.0

    def observe(self, ts_ms: int) -> None:
        """Advance the watermark to ``ts_ms`` if it is newer (never moves back)."""
        now = self.now()
        if now is None or ts_ms > now:
            self._event_ms = ts_ms
            self._wall_at = self._wall()

    def now(self) -> int | None:
        """Current stream time in ms, or None before the first event."""
        if self._event_ms is None:
            return None
        return self._event_ms + int((self._wall() - self._wall_at) * 1000)
