"""Alternating throughput rounds: the pass-through and one stream-app worker measured in
turn, several times in one run, so that the "1 worker >= 50% of pass-through" target is
judged on several pairs instead of one.

Why: on this shared two-core machine the pass-through's own rate moved between 9,851 and
12,550 events/s from one run to the next (docs/PERFORMANCE.md, session 10), which decided a
single pair's ratio more than stream-app did. Each extra round runs both systems on fresh
stacks, in the opposite order of the round before (ABBA...), so a drift of the machine during
the run does not favour one side; the verdict is the median of the rounds' ratios.

Example:
    >>> [order(i)[0] for i in range(1, 5)]  # round 1: the run's own pass-through + pipeline
    ['passthrough', 'stream_app_1w', 'passthrough', 'stream_app_1w']
    >>> s = summarize([{"passthrough": {"eps": 1000}, "stream_app_1w": {"eps": 480}},
    ...                {"passthrough": {"eps": 900}, "stream_app_1w": {"eps": 470}},
    ...                {"passthrough": {"eps": 950}, "stream_app_1w": {"eps": 500}}])
    >>> s["ratios"], s["median"], s["met"], s["rounds"]
    ([0.48, 0.522, 0.526], 0.522, 2, 3)
"""

from __future__ import annotations

import statistics
from typing import Any

#: the two systems of a round, by their results keys
SYSTEMS = ("passthrough", "stream_app_1w")
TARGET = 0.5


def order(round_no: int) -> tuple[str, str]:
    """The order the two systems run in, in round ``round_no`` (1-based): round 1 is the
    run's own order (pass-through phase before the pipeline phase), then it alternates."""
    return SYSTEMS if round_no % 2 else (SYSTEMS[1], SYSTEMS[0])


def ratio(one: dict[str, Any]) -> float | None:
    """One round's stream-app / pass-through events/s, 3 significant digits (None if either
    side did not measure).

    >>> ratio({"passthrough": {"eps": 10469}, "stream_app_1w": {"eps": 4866}})
    0.465
    >>> ratio({"passthrough": {"eps": 0}, "stream_app_1w": {"eps": 4866}}) is None
    True
    """
    pt = (one.get("passthrough") or {}).get("eps")
    sa = (one.get("stream_app_1w") or {}).get("eps")
    return float(f"{sa / pt:.3g}") if pt and sa is not None else None


def summarize(rounds: list[dict[str, Any]], target: float = TARGET) -> dict[str, Any]:
    """Each round's ratio, their median and how many rounds met ``target``."""
    ratios = [r for r in (ratio(x) for x in rounds) if r is not None]
    return {"ratios": ratios, "rounds": len(ratios),
            "median": round(statistics.median(ratios), 3) if ratios else None,
            "met": sum(r >= target for r in ratios), "target": target}
