"""Variance-stabilising transforms: each point becomes ``(y, var)`` with ``var`` the sampling
variance of ``y``, so one detector handles counts, rates and amounts alike.

* count ``x``: Anscombe ``y = 2*sqrt(x + 3/8)``, variance ~1 for Poisson counts;
* rate ``k/n``: ``y = asin(sqrt(p))``, variance ~``1/(4n)`` for binomial proportions;
* amount (revenue): ``y = log1p(x)``, no known sampling variance (learned from data).

Example:
    >>> y, v = to_stable("count", 16.0, 16.0)
    >>> round(y, 3), v, round(from_stable("count", y), 6)
    (8.093, 1.0, 16.0)
    >>> y, v = to_stable("rate", 0.25, 100.0)
    >>> round(from_stable("rate", y), 6), v
    (0.25, 0.0025)
"""

from __future__ import annotations

import math


def to_stable(kind: str, value: float, weight: float) -> tuple[float, float]:
    """``(y, sampling variance of y)`` of one point of ``kind`` (count, rate, revenue)."""
    # comparisons instead of max()/min() calls (one per closed point of the anomaly agent),
    # each picking what the call picks, NaN included
    x = value if value > 0.0 else 0.0                 # max(0.0, value)
    if kind == "count":
        return 2.0 * math.sqrt(x + 0.375), 1.0
    if kind == "rate":
        p = x if x < 1.0 else 1.0                     # min(1.0, x)
        return math.asin(math.sqrt(p)), 1.0 / (4.0 * (1.0 if weight < 1.0 else weight))
    return math.log1p(x), 0.0


def from_stable(kind: str, y: float) -> float:
    """Inverse of :func:`to_stable` (clamped to the valid range of ``kind``)."""
    if kind == "count":
        return max(0.0, (max(y, 0.0) / 2.0) ** 2 - 0.375)
    if kind == "rate":
        return math.sin(min(max(y, 0.0), math.pi / 2)) ** 2
    return math.expm1(max(y, 0.0))
