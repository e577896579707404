"""How fast the clock sweep sends ticks: in bursts, with pauses that keep ticks to a share of
the worker's time.

A tick re-evaluates one user on the clock; it is processed by the same agent, one record at
a time, as the live events. When many users fall due at once (a worker restarted after a
while, a business day rolled over a million users) a sweep used to send up to 20k ticks in
one go, and every live event that arrived meanwhile waited behind all of them. Time-based
tags can wait a few seconds; live events should not. So a sweep sends at most ``burst``
ticks, waits until they are processed, and then pauses, so that ticks take at most ``share``
of the event loop's time: with share 0.25 a burst that cost 50 ms is followed by a 150 ms
pause. What does not fit into one sweep interval stays due for the next sweep.

What a burst cost is the event loop thread's CPU time from its send until its last tick was
processed, less what the live traffic used in the same time (the loop's CPU rate measured
during the pause before; :meth:`TickPacer.pause_for`). That counts the work a tick causes
outside its own handler too (its tag changes' delivery reports, the Redis writes of the
users it changed): paced by the handler's own time, a day roll's wave went out about twice
as fast as its share (docs/PERFORMANCE.md item 40). The handler's time (a moving average,
:meth:`observe`) is the floor.

Example:
    >>> pacer = TickPacer(share=0.25, burst=500, first_cost_s=100e-6)
    >>> round(pacer.pause_for(500, 0.0), 3)        # at least 500 x 100 µs, then 3x that
    0.15
    >>> round(pacer.pause_for(500, 0.4), 3)        # the loop spent 0.4 s on them
    1.2
    >>> for _ in range(200):
    ...     pacer.observe(300e-6)                  # the handler's own time, the floor
    >>> round(pacer.cost_s * 1e6), round(pacer.pause_for(500, 0.0), 3)
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
        #: one tick's handler time (seconds), a moving average: a floor for a burst's cost
        self.cost_s = first_cost_s
        self.alpha = alpha
        #: ticks measured so far
        self.observed = 0

    def observe(self, seconds: float) -> None:
        """One tick's handler took ``seconds``."""
        self.observed += 1
        self.cost_s += self.alpha * (seconds - self.cost_s)

    def pause_for(self, sent: int, loop_cpu_s: float) -> float:
        """Seconds to pause after a burst of ``sent`` ticks that cost the event loop
        ``loop_cpu_s`` of CPU beyond the live load (at least their handlers' measured time),
        so that ticks take ``share`` of the loop's time (0 with share 1)."""
        spent = max(loop_cpu_s, sent * self.cost_s)
        return spent * (1.0 - self.share) / self.share
