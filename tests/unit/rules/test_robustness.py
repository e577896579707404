"""Odd input never crashes the compiler or the engine."""

from __future__ import annotations

import orjson
from conftest import STREAM_OF, T0
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.events import Event
from stream_app.rules.compiler import CompileError, compile_expr
from stream_app.rules.engine import TagEngine
from stream_app.state import Requirements

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
props_st = st.dictionaries(
    st.sampled_from(["amount", "channel", "campaign", "category", "class_type", "percent",
                     "region", "goal", "education", "inviter_id", "referrer", "utm_source"]),
    st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=6)


@settings(max_examples=80, deadline=None)
@given(events=st.lists(st.tuples(st.sampled_from(sorted(STREAM_OF) + ["weird"]),
                                 st.integers(-5 * 86_400_000, 5 * 86_400_000), props_st),
                       min_size=1, max_size=15))
def test_engine_accepts_any_props(default_ruleset, events):
    engine = TagEngine(default_ruleset)
    state = None
    for i, (etype, dt, props) in enumerate(events):
        r = engine.on_event(state, Event(f"e{i}", "u1", T0 + dt, etype,
                                         STREAM_OF.get(etype, "click"), props=props))
        if r.state is None:        # deletion_requested
            state = None
            continue
        state = orjson.loads(orjson.dumps(r.state))
        for c in r.changes:
            orjson.dumps(c)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="count(any,30d)$x|.:[]'\"+-*/<>=! andornotin1", max_size=30))
def test_compiler_raises_only_compile_errors(text):
    try:
        compile_expr(text, Requirements(), {"x": "7d"})
    except CompileError as exc:
        assert exc.message
