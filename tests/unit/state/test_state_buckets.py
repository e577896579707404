"""Daily bucket lists: sorted, order-independent, windowed, pruned."""

from __future__ import annotations

import random

from stream_app.state import buckets


def test_add_in_any_order_gives_the_same_sorted_list():
    adds = [(5, 1), (3, 2), (5, 1), (9, 4), (1, 1), (3, 1)]
    lists = []
    for seed in range(5):
        order = adds[:]
        random.Random(seed).shuffle(order)
        b: list = []
        for day, n in order:
            buckets.add(b, day, n)
        lists.append(b)
    assert all(b == [[1, 1], [3, 3], [5, 2], [9, 4]] for b in lists)


def test_windows():
    b = [[1, 1], [3, 3], [5, 2], [9, 4]]
    assert buckets.window_total(b, 3, 5) == 5
    assert buckets.window_total(b, 6, 8) == 0
    assert buckets.window_total(b, 0, 4) == 4           # later buckets are skipped
    assert buckets.window_days(b, 2, 9) == 3
    assert buckets.window_indexes(b, 0, 5) == {1, 3, 5}
    assert buckets.decayed_total(b, 5, 9, half_life=4) == 2 * 0.5 + 4


def test_prune():
    b = [[1, 1], [3, 3], [5, 2]]
    buckets.prune(b, 3)
    assert b == [[3, 3], [5, 2]]
    buckets.prune(b, 100)
    assert b == []
