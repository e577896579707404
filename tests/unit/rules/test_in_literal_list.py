"""``x in [literals]`` / ``x not in [...]``: the compiler builds a list of literals once (a
tuple) instead of per evaluation. Results must equal the reference: the list built from the
literals' values at every evaluation, then ``x in list`` (null left side: false), on random
lists and left values (profile fields of every JSON type).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.rules.compiler import EvalContext, compile_expr
from stream_app.state import Requirements, new_state

LITERALS = st.one_of(st.sampled_from(["null", "true", "false", "$p", "30d", "'30d'"]),
                     st.integers(-3, 3).map(str), st.sampled_from(["1.0", "0.5", "-0.0"]),
                     st.text("ab1", max_size=2).map(lambda s: f"'{s}'"))
LEFT = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.0, 0.5, -0.0]),
                 st.text("ab1", max_size=2), st.lists(st.integers(0, 2), max_size=2),
                 st.just({"a": 1}))
PARAMS = {"p": "a"}


def _reference(value: Any, items: list[str], negate: bool) -> bool:
    """``value in [items]`` as the rule language defines it, the list built anew."""
    built = [compile_expr(i, Requirements(), PARAMS).fn(None) for i in items]
    if value is None:
        found = False
    else:
        try:
            found = value in built
        except TypeError:
            found = False
    return not found if negate else found


@settings(max_examples=400, deadline=None)
@given(items=st.lists(LITERALS, max_size=6), value=LEFT, negate=st.booleans())
def test_in_a_literal_list_equals_the_list_built_each_time(items, value, negate):
    op = "not in" if negate else "in"
    c = compile_expr(f"profile.x {op} [{', '.join(items)}]", Requirements(), PARAMS)
    state = new_state("u")
    if value is not None:
        state["pr"] = {"x": [1, "e1", json.loads(json.dumps(value))]}
    ctx = EvalContext(state, 0, 0)
    got = c.fn(ctx)
    assert type(got) is bool
    assert got == _reference(state.get("pr", {}).get("x", [0, 0, None])[2], items, negate)
    assert ctx.trace == {"profile.x": state.get("pr", {}).get("x", [0, 0, None])[2]}


def test_a_list_with_a_read_stays_an_expression():
    c = compile_expr("'a' in [profile.x, 'b']", Requirements(), {})
    state = new_state("u")
    assert c.fn(EvalContext(state, 0, 0)) is False
    state["pr"] = {"x": [1, "e1", "a"]}
    assert c.fn(EvalContext(state, 0, 0)) is True
