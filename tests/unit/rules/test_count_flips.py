"""The count guards keep, per count, whether their comparison flips at it (``_flip``):
the kept answers must equal the comparison run at every call, ``res(n) != res(n - 1)``,
for every operator, constant (ints, floats, NaN, a string, null, a bool) and sequence of
counts (ints and equal floats, past the memo's cap).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.rules import compiler
from stream_app.rules.compiler import _compare, _flip

CONSTANTS = st.one_of(st.integers(-2, 6), st.sampled_from([2.5, 0.0, float("nan"), float("inf"),
                                                            "3", None, True]))
COUNTS = st.one_of(st.integers(1, 9), st.integers(1, 9).map(float))


def _guard_after(flips: dict[Any, bool], res: Any, n: Any) -> bool:
    """What the count guards' ``after`` does with a count ``n``."""
    f = flips.get(n)
    return _flip(flips, res, n) if f is None else f


@settings(max_examples=500, deadline=None)
@given(op=st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), c=CONSTANTS,
       left=st.booleans(), counts=st.lists(COUNTS, max_size=30), cap=st.sampled_from([2, 1024]))
def test_kept_flips_equal_the_comparison_each_time(op, c, left, counts, cap):
    cmp_ = _compare(op)

    def res(v: Any) -> Any:
        return cmp_(v, c) if left else cmp_(c, v)
    old, compiler.FLIP_MEMO = compiler.FLIP_MEMO, cap
    try:
        flips: dict[Any, bool] = {}
        for n in counts:
            assert _guard_after(flips, res, n) == (res(n) != res(n - 1))
        assert len(flips) <= cap
    finally:
        compiler.FLIP_MEMO = old
