"""Sorted ``[[index, value], ...]`` bucket lists: daily counts and sums inside a user's state.

JSON has no integer keys, so per-day aggregates are kept as lists of ``[day, value]`` pairs,
sorted by day. Adding is order-independent: applying the same (day, value) additions in any
order gives the same list.

Example:
    >>> b = []
    >>> add(b, 10, 1); add(b, 8, 2); add(b, 10, 1)
    >>> b
    [[8, 2], [10, 2]]
    >>> window_total(b, first=9, last=10), window_days(b, first=0, last=10)
    (2, 2)
    >>> prune(b, keep_from=9); b
    [[10, 2]]
"""

from __future__ import annotations

from bisect import bisect_left

Buckets = list  # list[list[int | float]]: [[index, value], ...] sorted by index


def add(buckets: Buckets, index: int, value: float) -> None:
    """Add ``value`` to the bucket ``index`` (created in sorted position if missing)."""
    if buckets and buckets[-1][0] == index:  # common case: the newest bucket
        buckets[-1][1] += value
        return
    if not buckets or buckets[-1][0] < index:
        buckets.append([index, value])
        return
    i = bisect_left(buckets, index, key=lambda p: p[0])
    if i < len(buckets) and buckets[i][0] == index:
        buckets[i][1] += value
    else:
        buckets.insert(i, [index, value])


def window_total(buckets: Buckets, first: int, last: int) -> float:
    """Sum of the values of buckets with ``first <= index <= last``."""
    total = 0
    for idx, val in reversed(buckets):
        if idx > last:
            continue
        if idx < first:
            break
        total += val
    return total


def window_days(buckets: Buckets, first: int, last: int) -> int:
    """Number of non-empty buckets with ``first <= index <= last``."""
    n = 0
    for idx, val in reversed(buckets):
        if idx > last:
            continue
        if idx < first:
            break
        if val:
            n += 1
    return n


def window_indexes(buckets: Buckets, first: int, last: int) -> set[int]:
    """Indexes of the non-empty buckets with ``first <= index <= last``."""
    out = set()
    for idx, val in reversed(buckets):
        if idx > last:
            continue
        if idx < first:
            break
        if val:
            out.add(idx)
    return out


def decayed_total(buckets: Buckets, first: int, last: int, half_life: float) -> float:
    """Sum of values weighted by ``0.5 ** ((last - index) / half_life)`` (index units).

    >>> decayed_total([[0, 4], [10, 1]], 0, 10, half_life=10)
    3.0
    """
    weights = _WEIGHTS.get(half_life)
    if weights is None:
        weights = _WEIGHTS[half_life] = []
    total = 0.0
    for idx, val in reversed(buckets):
        if idx > last:
            continue
        if idx < first:
            break
        age = last - idx
        if age >= len(weights):   # the same float as 0.5 ** (age / half_life), computed once
            weights.extend(0.5 ** (a / half_life) for a in range(len(weights), age + 1))
        total += val * weights[age]
    return total


#: half-life -> [weight of age 0, 1, ...]: decayed windows are read on many events
_WEIGHTS: dict[float, list[float]] = {}


def prune(buckets: Buckets, keep_from: int) -> None:
    """Drop buckets with ``index < keep_from`` (in place)."""
    if buckets and buckets[0][0] < keep_from:
        i = bisect_left(buckets, keep_from, key=lambda p: p[0])
        del buckets[:i]
