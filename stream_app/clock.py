"""The worker's clock for time-based tags: event time that keeps moving when input is idle.

Two helpers sit beside it: :func:`reference_ms`, the clock far-future events are judged
against (the wall clock, or ``stream-app dev``'s simulated one), and :class:`AheadCap`, which
keeps what an event may move a clock to within an allowance past that reference.

Each input topic-partition has its own time: the newest event time seen on it plus the wall time
elapsed since, so an idle partition still advances with the wall clock. Lateness is judged
against the event's own topic-partition (``now(source)``): a partition that is behind (e.g.
consumed later during a fast replay) does not see its events as late. ``now()`` is the most
advanced time (what the clock sweep uses for time-based tags), ``watermark()`` the least
advanced. With live input both are the wall clock; during a replay they follow the replayed
event time.

Example:
    >>> wall = [100.0]
    >>> c = HybridClock(wall=lambda: wall[0])
    >>> c.now() is None                       # nothing seen yet
    True
    >>> c.observe(1_000_000, partition=0)
    >>> c.observe(9_000_000, partition=1)     # partition 1 is ahead
    >>> c.watermark(), c.now(partition=0), c.now()
    (1000000, 1000000, 9000000)
    >>> wall[0] = 105.0                       # 5 s of wall time later, no events
    >>> c.watermark(), c.now()
    (1005000, 9005000)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable


class HybridClock:
    """Per-partition event-time watermarks plus wall-clock drift since their newest event."""

    def __init__(self, wall: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._parts: dict[Hashable, tuple[int, float]] = {}   # source -> (event ms, wall at)

    def observe(self, ts_ms: int, partition: Hashable = 0) -> None:
        """Advance ``partition``'s time to ``ts_ms`` if it is newer (never moves back)."""
        # now(partition), inline: called once per event
        entry = self._parts.get(partition)
        if entry is None or ts_ms > entry[0] + int((self._wall() - entry[1]) * 1000):
            self._parts[partition] = (ts_ms, self._wall())

    def advance(self, ts_ms: int, partition: Hashable) -> int | None:
        """``now(partition)``, then ``observe(ts_ms, partition)``, with one wall-clock read:
        the partition's time before ``ts_ms`` (None if unseen). An event the caller then
        finds late (older than that time) has not moved the clock: it is not newer.

        >>> c = HybridClock(wall=lambda: 0.0)
        >>> c.advance(5_000, 0), c.advance(7_000, 0), c.advance(6_000, 0), c.now(0)
        (None, 5000, 7000, 7000)
        """
        entry = self._parts.get(partition)
        if entry is None:
            self._parts[partition] = (ts_ms, self._wall())
            return None
        wall = self._wall()
        now = entry[0] + int((wall - entry[1]) * 1000)
        if ts_ms > now:
            self._parts[partition] = (ts_ms, wall)
        return now

    def now(self, partition: Hashable | None = None) -> int | None:
        """Stream time in ms of one partition, or the most advanced; None if unseen."""
        if partition is not None:
            entry = self._parts.get(partition)
            if entry is None:
                return None
            return entry[0] + int((self._wall() - entry[1]) * 1000)
        return self._fold(max)

    def watermark(self) -> int | None:
        """The least advanced partition's time (everything older has been seen everywhere)."""
        return self._fold(min)

    def least(self, partitions: Iterable[Hashable]) -> int | None:
        """The least advanced time among ``partitions`` that were seen (None if none was):
        e.g. a user's partition on every input topic, which still may hold its older events.

        >>> c = HybridClock(wall=lambda: 0.0)
        >>> c.observe(5_000, ("click", 1)); c.observe(9_000, ("order", 1))
        >>> c.least([("click", 1), ("order", 1), ("study", 1)]), c.least([("study", 1)])
        (5000, None)
        """
        wall, parts = self._wall(), self._parts
        seen = [parts[p] for p in partitions if p in parts]
        return min((ms + int((wall - at) * 1000) for ms, at in seen), default=None)

    def _fold(self, pick: Callable[..., int]) -> int | None:
        if not self._parts:
            return None
        wall = self._wall()
        return pick(ms + int((wall - at) * 1000) for ms, at in self._parts.values())

    def revoke(self, partitions: set[Hashable]) -> None:
        """Forget partitions this worker no longer holds (after a rebalance)."""
        for p in partitions:
            self._parts.pop(p, None)

    def partitions(self) -> list[Hashable]:
        return list(self._parts)


def reference_ms(speed: float = 1.0, origin_ms: int = 0,
                 wall: Callable[[], float] = time.time) -> Callable[[], int]:
    """The clock far-future events are judged against, in epoch ms: the wall clock, or (a
    ``speed`` other than 1: ``stream-app dev``'s simulated time) a clock that equals it at
    ``origin_ms`` and runs ``speed`` times as fast.

    Example:
        >>> t = [1000.0]
        >>> reference_ms(wall=lambda: t[0])()
        1000000
        >>> sim = reference_ms(2880.0, 1_000_000, wall=lambda: t[0])
        >>> t[0] = 1030.0                  # 30 wall seconds later: one simulated day
        >>> sim() - 1_000_000
        86400000
    """
    if speed == 1.0:
        return lambda: int(wall() * 1000)
    return lambda: int(origin_ms + (wall() * 1000 - origin_ms) * speed)


class AheadCap:
    """Cap an event time at the reference clock plus ``ahead_ms`` (None: no cap), before it
    moves one of the worker's clocks: the tag sweep's (:class:`HybridClock`) and the
    business windows' watermark. Events are accepted up to ``STREAM_APP_MAX_FUTURE_MS`` (a
    day) ahead, so without it one event from a producer whose clock is hours ahead (Beijing
    time labelled UTC) would bring every user's time-based rules forward by as much (stalls,
    churn, day rollovers: QA30 F3) and close every business window of its partition early
    (session 26). The event itself is still processed at its own time. The reference is
    read only when a time passes the last cap, :attr:`until` (about once a minute live,
    never on a replay of the past).

    Example (a cap of one minute; the reference clock at 1,000 s):
        >>> cap = AheadCap(60_000, clock=lambda: 1_000_000)
        >>> cap(1_000_000), cap.until
        (1000000, 1060000)
        >>> cap(1_000_000 + 8 * 3_600_000)                      # 8 h ahead: held
        1060000
        >>> AheadCap(None)(10 ** 15)                            # off
        1000000000000000
    """

    __slots__ = ("ahead_ms", "clock", "until")

    def __init__(self, ahead_ms: int | None,
                 clock: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.ahead_ms = ahead_ms
        self.clock = clock   # the reference clock, epoch ms
        #: times up to this pass unchanged without reading the clock
        self.until: float = float("inf") if ahead_ms is None else 0

    def __call__(self, ts: int) -> int:
        if ts <= self.until:
            return ts
        self.until = cap = self.clock() + self.ahead_ms
        return ts if ts <= cap else cap
