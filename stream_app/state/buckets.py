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
from typing import Any

Buckets = list  # list[list[int | float]]: [[index, value], ...] sorted by index


#: the integers a state record holds as such (orjson writes 64-bit integers; past them a sum
#: becomes a float), and the largest float (a sum that would be infinite stops there: JSON
#: has no infinity, orjson would write null)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
FLOAT_MAX = 1.7976931348623157e308


def total(a: Any, b: float) -> float:
    """``a + b`` kept writable as JSON: an integer past 64 bits becomes a float, an infinite
    float the largest finite one of its sign; ``a`` None (a sum an earlier release wrote as
    null when it had overflowed) counts as 0.

    >>> total(2**64 - 1, 2**64 - 1), total(1e308, 1e308), total(None, 5), total(2, 3)
    (3.6893488147419103e+19, 1.7976931348623157e+308, 5, 5)
    """
    if a is None:
        a = 0
    r = a + b
    if type(r) is int:
        return r if INT_MIN <= r <= INT_MAX else float(r)
    if -FLOAT_MAX <= r <= FLOAT_MAX:
        return r
    return r if r != r else (FLOAT_MAX if r > 0 else -FLOAT_MAX)


def add(buckets: Buckets, index: int, value: float) -> None:
    """Add ``value`` to the bucket ``index`` (created in sorted position if missing)."""
    if buckets and buckets[-1][0] == index:  # common case: the newest bucket
        buckets[-1][1] = total(buckets[-1][1], value)
        return
    if not buckets or buckets[-1][0] < index:
        buckets.append([index, value])
        return
    i = bisect_left(buckets, index, key=lambda p: p[0])
    if i < len(buckets) and buckets[i][0] == index:
        buckets[i][1] = total(buckets[i][1], value)
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
