"""first() / last() over prop alternatives: ``first(click.channel|utm_source)`` is the value of
the earliest event (event time, then event id) carrying any of the props; several on that one
event: the prop listed first. Grammar, validation, compiled readers, guards, late events."""

from __future__ import annotations

import itertools

import pytest
from conftest import DAY, T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.errors import RuleError
from stream_app.events import Event
from stream_app.rules.compiler import (
    CompileError,
    EvalContext,
    _alts_reader,
    compile_expr,
)
from stream_app.rules.diff import missing_history
from stream_app.rules.engine import TagEngine
from stream_app.rules.grammar import parse
from stream_app.rules.loader import ruleset_from_text
from stream_app.state import Requirements, StateUpdater, new_state, query
from stream_app.state.requirements import PropSpec, Selector

OFF = 8 * 3_600_000
PROPS = ("channel", "utm_source", "src")


def state_of(expr: str, events, req: Requirements | None = None):
    """Compile ``expr``, fold ``events`` ((event id, ts, props), all clicks) in the order
    given; return (value, state, compiled)."""
    req = req or Requirements()
    c = compile_expr(expr, req, {})
    up = StateUpdater(req)
    s = new_state("u1")
    for eid, ts, props in events:
        up.apply(s, Event(eid, "u1", ts, "ad_landing", "click", props=props))
    return c.fn(EvalContext(s, T0 + 100 * DAY, OFF)), s, c


def brute(events, props, latest: bool):
    """The reference: sort the events carrying a listed prop (not null) by (ts, id)."""
    carrying = sorted((ts, eid, p) for eid, ts, p in events
                      if any(p.get(k) is not None for k in props))
    if not carrying:
        return None
    _, _, p = carrying[-1] if latest else carrying[0]
    return next(p[k] for k in props if p.get(k) is not None)


# -- grammar ------------------------------------------------------------------------------
def test_grammar_prop_alternatives_and_the_forms_around_them():
    t = parse("last(click.channel|utm_source|src)").children[1]
    assert t.data == "prop_alts" and [str(c) for c in t.children] == [
        "click", "channel", "utm_source", "src"]
    assert parse("count(trial_booked|consult_request)").children[1].data == "selector"
    assert parse("first(click.channel)").children[1].data == "dotted"
    assert parse("a.b.c").data == "dotted"


# -- validation ---------------------------------------------------------------------------
def one(expr: str) -> str:
    return ("tags:\n  - id: t1\n    family: channel\n    zh: 标签\n    en: Tag\n"
            f"    kind: text\n    value: \"{expr}\"\n")


@pytest.mark.parametrize(("expr", "problem"), [
    ("peak(order_paid.amount|price)", "peak() reads one prop: alternatives such as "
                                      "order_paid.amount|price are only valid in first() and "
                                      "last() (column 6)"),
    ("distinct(click.a|b)", "distinct() reads one prop"),
    ("sum(order_paid.amount|price)", "prop alternatives such as order_paid.amount|price are "
                                     "only valid in first() and last() (column 5)"),
    ("avg(order_paid.amount|price, 30d)", "only valid in first() and last()"),
    ("click.channel|utm_source", "only valid as the argument of first() or last() (column 1)"),
    ("coalesce(click.channel|utm_source, 'x')", "only valid as the argument of first()"),
    ("last(click.channel|channel)", "prop 'channel' is listed twice in click.channel|channel"),
    ("first(click|order.channel)", "unexpected '.' (a prop is read from one event type or "
                                   "stream name: click.channel; alternatives of its props: "
                                   "click.channel|utm_source) (column 18)"),
    ("first(click.channel|utm_source, 30d)", "first() takes 1 positional arguments, got 2"),
    ("count(click.channel|utm_source)", "expected an event selector"),
    ("since(click.channel|utm_source) > 1d", "expected an event selector"),
])
def test_misuse_is_refused_with_file_line_rule(expr, problem):
    with pytest.raises(RuleError) as exc:
        ruleset_from_text(one(expr), name="rules/x.yaml")
    msg = str(exc.value)
    assert msg.startswith("rules/x.yaml:7: rule 't1': value: "), msg
    assert problem in msg, msg


def test_accepted_forms_compile_to_one_guard_and_keep_each_prop():
    req = Requirements()
    c = compile_expr("coalesce(first(click.channel|utm_source), 'none') != "
                     "last(any.channel|utm_source|src)", req, {})
    assert sorted(g.text for g in c.guards) == ["first(click.channel|utm_source)",
                                                "last(any.channel|utm_source|src)"]
    assert c.reads == set()          # the selectors are read only through the guards
    assert sorted(s.key for s in req.firsts) == ["stream:click.channel",
                                                 "stream:click.utm_source"]
    assert sorted(s.key for s in req.lasts) == ["any.channel", "any.src", "any.utm_source"]
    with pytest.raises(CompileError, match="listed twice"):
        compile_expr("first(x.a|b|a)", Requirements(), {})


def test_switch_from_coalesce_needs_no_new_history():
    """The same per-prop records as the coalesce() form: a hot reload to the new rules
    evaluates every user's existing state at once (no aggregate starts empty)."""
    old = ruleset_from_text(one("coalesce(last(click.channel), last(click.utm_source))"))
    new = ruleset_from_text(one("last(click.channel|utm_source)"))
    assert missing_history(old, new) == []


# -- semantics ----------------------------------------------------------------------------
def test_both_neither_and_null_props():
    both = [("e1", T0, {"utm_source": "u", "channel": "c"})]
    assert state_of("first(click.channel|utm_source)", both)[0] == "c"
    assert state_of("last(click.utm_source|channel)", both)[0] == "u"   # order listed
    neither = [("e1", T0, {"campaign": "x"}), ("e2", T0 + DAY, {})]
    assert state_of("first(click.channel|utm_source)", neither)[0] is None
    assert state_of("last(click.channel|utm_source)", [])[0] is None
    # a null prop is not carried: the utm_source of the later click is the last touch
    nulls = [("e1", T0, {"channel": "a"}), ("e2", T0 + DAY, {"channel": None,
                                                               "utm_source": "b"})]
    assert state_of("last(click.channel|utm_source)", nulls)[0] == "b"


def test_the_two_qa_scenarios_and_the_reading_of_a_late_event_in_every_order():
    events = [("e1", T0, {"channel": "A"}), ("e2", T0 + DAY, {"utm_source": "B"}),
              ("e3", T0 - DAY, {"utm_source": "X"})]    # e3: late, the earliest
    for order in itertools.permutations(events):
        assert state_of("last(click.channel|utm_source)", order)[0] == "B"
        assert state_of("first(click.channel|utm_source)", order)[0] == "X"
        assert state_of("first(click.channel|utm_source|src)", order)[0] == "X"


def test_ties_between_events_of_one_millisecond_go_by_event_id():
    events = [("e2", T0, {"channel": "A"}), ("e1", T0, {"utm_source": "B"})]
    for order in (events, events[::-1]):
        assert state_of("first(click.channel|utm_source)", order)[0] == "B"
        assert state_of("last(click.channel|utm_source)", order)[0] == "A"
        assert state_of("last(click.utm_source|channel|src)", order)[0] == "A"


EVENTS = st.lists(st.tuples(
    st.integers(0, 6),                                        # ms offset: many ties
    st.fixed_dictionaries({}, optional={p: st.sampled_from(["a", "b", "c", None])
                                        for p in PROPS})),
    max_size=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=EVENTS, data=st.data())
def test_compiled_readers_equal_the_reference_in_any_arrival_order(raw, data):
    events = [(f"e{i}", T0 + off, props) for i, (off, props) in enumerate(raw)]
    arrival = data.draw(st.permutations(events))
    for props in (PROPS[:2], PROPS[1::-1], PROPS):      # two (inline reader) and three
        text = "|".join(props)
        for fname, latest in (("first", False), ("last", True)):
            v, s, _ = state_of(f"{fname}(click.{text})", arrival)
            assert v == brute(events, props, latest), (fname, props)
            specs = tuple(PropSpec(Selector.parse("click"), p) for p in props)
            general = query.prop_last_of if latest else query.prop_first_of
            assert general(s, specs) == v


@settings(max_examples=100, deadline=None)
@given(recs=st.lists(st.one_of(st.none(), st.tuples(st.integers(0, 3), st.sampled_from(
    ["e1", "e2"]), st.sampled_from(["x", "y"]))), min_size=2, max_size=2))
def test_inline_two_prop_reader_equals_the_general_one(recs):
    specs = tuple(PropSpec(Selector.parse("click"), p) for p in ("a", "b"))
    for kind, general in (("fp", query.prop_first_of), ("lp", query.prop_last_of)):
        s = {kind: {sp.key: list(r) for sp, r in zip(specs, recs, strict=True) if r}}

        class Ctx:
            state = s
        assert _alts_reader(kind, specs, general)(Ctx) == general(s, specs)


RULES = """
version: "x.1"
tags:
  - {id: f2, family: channel, zh: 首, en: First, kind: text,
     value: "first(click.channel|utm_source)"}
  - {id: l2, family: channel, zh: 末, en: Last, kind: text,
     value: "last(click.channel|utm_source)"}
  - {id: l3, family: channel, zh: 末3, en: Last 3, kind: text,
     value: "last(click.src|channel|utm_source)"}
  - {id: other, family: x, zh: 它, en: Other, kind: number, value: "count(stream:click)"}
"""


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=EVENTS, data=st.data())
def test_engine_tags_equal_the_reference_with_late_events(raw, data):
    """Through the engine (selective evaluation, guards, changes): any arrival order, late
    events included, ends with the reference's tags; the selective engine's changes equal a
    full evaluation's."""
    rs = ruleset_from_text(RULES)
    events = [Event(f"e{i}", "u1", T0 + off * 3_600_000, "ad_landing", "click", props=p)
              for i, (off, p) in enumerate(raw)]
    arrival = data.draw(st.permutations(events))
    sel, full = TagEngine(rs), TagEngine(rs, full=True)
    a = b = None
    for ev in arrival:
        ra, rb = sel.on_event(a, ev), full.on_event(b, ev)
        assert ra.changes == rb.changes and ra.why == rb.why
        a, b = ra.state, rb.state
    ref = [(e.event_id, e.ts, e.props) for e in events]
    want = {"f2": brute(ref, ("channel", "utm_source"), False),
            "l2": brute(ref, ("channel", "utm_source"), True),
            "l3": brute(ref, ("src", "channel", "utm_source"), True)}
    got = a["tags"] if a else {}
    assert {k: got.get(k) for k in want} == want


def test_a_click_without_the_props_does_not_rerun_the_rule():
    """The guard: a click that moves neither prop's record leaves the rule unevaluated
    (its trace is not in the step's why records)."""
    eng = TagEngine(ruleset_from_text(RULES))
    r = eng.on_event(None, Event("e1", "u1", T0, "ad_landing", "click",
                                 props={"utm_source": "u"}))
    assert r.state["tags"]["l2"] == "u"
    r = eng.on_event(r.state, Event("e2", "u1", T0 + 1, "page_view", "click", props={}))
    assert "l2" not in r.why and "other" in r.why
    r = eng.on_event(r.state, Event("e3", "u1", T0 + 2, "page_view", "click",
                                    props={"channel": "c"}))
    assert r.state["tags"]["l2"] == "c" and r.changes[0]["evidence"]["values"] == {
        "last(click.channel|utm_source)": "c"}
