"""The value of a clock tick on ``internal.ticks``: the sweep's clock, so the tick is
evaluated at the time it was meant for.

A re-delivered tick (a crash lost the state write while the tick was not committed) then
makes the same tag changes as the first time, not copies carrying the restarted worker's
clock under the same ``event_id`` (QA34 F2: 9 such copies after a kill -9 under
``stream-app dev``, ``ts`` 75.8 h of event time later, other evidence).

Example:
    >>> tick_value(1_700_000_000_123)
    b'tick:1700000000123'
    >>> tick_time(b'tick:1700000000123'), tick_time(b'tick'), tick_time(b'backfill')
    (1700000000123, None, None)
"""

from __future__ import annotations

#: a sweep's tick: ``b"tick:<epoch ms>"``
TICK_PREFIX = b"tick:"


def tick_value(now_ms: int) -> bytes:
    """The value of a sweep's tick for the clock ``now_ms``."""
    return b"tick:%d" % now_ms


def tick_time(value: bytes | None) -> int | None:
    """The clock a tick was sent for, or None (a backfill tick, a tick of an earlier release:
    ``b"tick"``, or no value)."""
    if value and value.startswith(TICK_PREFIX):
        try:
            return int(value[len(TICK_PREFIX):])
        except ValueError:
            return None
    return None
