"""How fast the clock sweep sends ticks: in bursts, with pauses that keep ticks to a share of
the worker's time.

A tick re-evaluates one user on the clock; it is processed by the same agent, one record at
a time, as the live events. When many users fall due at once (a worker restarted after a
while, a business day rolled over a million users) a sweep used to send up to 20k ticks in
one go, and every live event that arrived meanwhile waited behind all of them (seconds at
~100-200 µs per tick). Time-based tags can wait a few seconds; live events should not. So a
sweep sends at most ``burst`` ticks at a time and then pauses for as long as the burst is
expected to take, scaled so that ticks take at most ``share`` of the worker's time: with
share 0.25 a burst that takes 50 ms is followed by a 150 ms pause. The cost of a tick is
measured by the agent (a moving average of its processing time). What does not fit into one
sweep interval stays due for the next sweep. The agent's measure misses part of a tick's work
(its Redis write, done at the projection's next flush; delivery reports), so a wave goes out
faster than the share asks; measured with ``python -m bench.tick_wave``, the live p99 during
a day roll's wave was still 3.5-6x lower than without pauses (docs/PERFORMANCE.md item 40).

Example:
    >>> pacer = TickPacer(share=0.25, burst=500, first_cost_s=100e-6)
    >>> round(pacer.pause_after(500), 3)      # 500 x 100 µs = 50 ms of ticks, then 150 ms
    0.15
    >>> for _ in range(200):
    ...     pacer.observe(300e-6)                # ticks measured dearer: longer pauses
    >>> round(pacer.cost_s * 1e6), round(pacer.pause_after(500), 3)
    (300, 0.45)
"""

from __future__ import annotations

__all__ = ["TickPacer"]


class TickPacer:
    """Burst size and pauses of the clock sweep (module docstring)."""

    __slots__ = ("share", "burst", "cost_s", "alpha", "observed")

    def __init__(self, share: float = 0.25, burst: int = 500, first_cost_s: float = 200e-6,
                 alpha: float = 0.05) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        #: the share of the worker's time ticks may take while they are being sent
        self.share = share
        #: ticks sent at most in one go
        self.burst = burst
        #: the expected processing time of one tick (seconds), a moving average
        self.cost_s = first_cost_s
        self.alpha = alpha
        #: ticks measured so far
        self.observed = 0

    def observe(self, seconds: float) -> None:
        """One tick took ``seconds`` to process."""
        self.observed += 1
        self.cost_s += self.alpha * (seconds - self.cost_s)

    def pause_after(self, sent: int) -> float:
        """Seconds to wait after sending ``sent`` ticks (0 with share 1)."""
        return sent * self.cost_s * (1.0 - self.share) / self.share
