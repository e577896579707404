"""Points of business series: one closed window of one (metric, tenant, channel, window).

A point carries its numerator and denominator, so partial points computed by several
workers (each sees only its partitions) merge exactly with :func:`merge_points`.

Example:
    >>> a = SeriesPoint("lead_to_trial", "default", "douyin", "1m", 0, 60_000, 3, 10, "rate")
    >>> b = SeriesPoint("lead_to_trial", "default", "douyin", "1m", 0, 60_000, 1, 10, "rate")
    >>> [p.value for p in merge_points([a, b])]
    [0.2]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

SeriesKey = tuple[str, str, str, str]  # metric, tenant, channel, window
ALL = "all"  # channel label of a tenant-wide series


@dataclass(slots=True, unsafe_hash=True)
class SeriesPoint:
    """``kind`` is ``count`` (value = num), ``revenue`` (value = num) or ``rate`` (num/den).

    ``complete`` is False for a merged window some partition did not count in full (its
    counter started after the window began: a restart, a rebalance, see
    :class:`~stream_app.business.Merger`): shown on dashboards, neither scored nor learned
    by the anomaly detector.

    Not frozen: a frozen dataclass sets each field through ``object.__setattr__`` (~0.8 µs
    more per point), and a replay makes a few points per event; treat points as immutable
    (they hash by value, as frozen ones did)."""

    metric: str
    tenant: str
    channel: str
    window: str
    start_ms: int
    end_ms: int
    num: float
    den: float
    kind: str
    complete: bool = True

    @property
    def key(self) -> SeriesKey:
        return (self.metric, self.tenant, self.channel, self.window)

    @property
    def value(self) -> float:
        if self.kind == "rate":
            return self.num / self.den if self.den > 0 else float("nan")
        return self.num

    @property
    def weight(self) -> float:
        """Sample size behind the value (denominator of a rate, count otherwise)."""
        return self.den if self.kind == "rate" else self.num

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = self.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeriesPoint:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d or k != "complete"})


def merge_points(points: Iterable[SeriesPoint]) -> list[SeriesPoint]:
    """Sum partial points of the same series and window (order of first appearance)."""
    merged: dict[tuple[SeriesKey, int], SeriesPoint] = {}
    for p in points:
        k = (p.key, p.start_ms)
        q = merged.get(k)
        merged[k] = p if q is None else SeriesPoint(
            p.metric, p.tenant, p.channel, p.window, p.start_ms, p.end_ms,
            q.num + p.num, q.den + p.den, p.kind, q.complete and p.complete)
    return list(merged.values())
