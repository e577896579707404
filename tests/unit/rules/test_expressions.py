"""The expression language: operators, null semantics, functions, parameters, tracing."""

from __future__ import annotations

import pytest
from conftest import DAY, T0

from stream_app.events import Event
from stream_app.rules.compiler import CompileError, EvalContext, compile_expr, parse_duration
from stream_app.state import Requirements, StateUpdater, new_state

OFF = 8 * 3_600_000


def evaluate(expr, events=(), now=T0, params=None, scores=None):
    req = Requirements()
    c = compile_expr(expr, req, params or {})
    up = StateUpdater(req)
    st = new_state("u1")
    for i, (etype, stream, ts, props) in enumerate(events):
        up.apply(st, Event(f"e{i}", "u1", ts, etype, stream, props=props))
    if scores:
        st["scores"] = scores
    ctx = EvalContext(st, now, OFF)
    return c.fn(ctx), ctx


@pytest.mark.parametrize(("expr", "value"), [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("7 / 2", 3.5), ("7 % 4", 3), ("-2 + 1", -1),
    ("1 / 0", None), ("null + 1", None), ("null > 1", False), ("null < 1", False),
    ("null == null", True), ("1 != null", True), ("if(1 > 0, 'a', 1) < 1", False),
    ("2 in [1, 2]", True), ("3 not in [1, 2]", True), ("null in [1]", False),
    ("not 0", True), ("1 and 0", False), ("0 or 'x'", True), ("true and not false", True),
    ("30d", 30 * DAY), ("12h + 30m", 12.5 * 3_600_000), ("2w == 14d", True),
    ("coalesce(null, null, 3)", 3), ("max(1, 5, 2)", 5), ("min(1, null)", None),
    ("round(2.567, 2)", 2.57), ("round(2.5)", 2), ("days(36h)", 1.5),
    ("nullif(0, 0)", None), ("nullif(2, 0)", 2), ("size([1, 2])", 2),
    ("if(1 > 0, 'a', 1 / 0)", "a"), ("if(null, 1, 2)", 2),
    ("$w", 7 * DAY), ("$n * 2", 6), ("$w + 1d", 8 * DAY), ("'a' == \"a\"", True),
])
def test_operators_and_literals(expr, value):
    assert evaluate(expr, params={"w": "7d", "n": 3})[0] == value


def test_counts_windows_and_selectors():
    evs = [("course_view", "click", T0 - 40 * DAY, {}), ("course_view", "click", T0 - 2 * DAY, {}),
           ("search", "click", T0 - 1 * DAY, {}), ("lesson_attended", "study", T0, {}),
           ("order_paid", "order", T0 - 3 * DAY, {"amount": 100}),
           ("order_paid", "order", T0 - 1 * DAY, {"amount": 50.5})]
    assert evaluate("count(course_view)", evs)[0] == 2
    assert evaluate("count(course_view, 30d)", evs)[0] == 1
    assert evaluate("count(stream:click, 7d)", evs)[0] == 2
    assert evaluate("count(click|study, 7d)", evs)[0] == 3        # bare stream names
    assert evaluate("count(any, 1d)", evs)[0] == 1
    labels = evs + [("checkpoint", "label", T0, {}), ("alert_feedback", "feedback", T0, {})]
    assert evaluate("count(any, 1d)", labels)[0] == 1          # system records are not "any"
    assert evaluate("count(stream:label, 1d)", labels)[0] == 1
    assert evaluate("active_days(3d)", evs)[0] == 3
    assert evaluate("active_days(stream:click, 90d)", evs)[0] == 3
    assert evaluate("sum(order_paid.amount, 2d)", evs)[0] == 50.5
    assert evaluate("sum(order_paid.amount)", evs)[0] == 150.5
    assert evaluate("sum(order_paid.amount)", evs + [
        ("order_paid", "order", T0, {"amount": "49.5"}),      # numeric text counts
        ("order_paid", "order", T0, {"amount": True})])[0] == 200
    assert evaluate("avg(order_paid.amount, 30d)", evs)[0] == 75.25
    assert evaluate("peak(order_paid.amount)", evs)[0] == 100
    assert evaluate("since(course_view)", evs)[0] == 2 * DAY
    assert evaluate("since(refund)", evs)[0] is None
    assert evaluate("since_first(any) > 39d", evs)[0] is True
    assert evaluate("rate(lesson_attended, stream:click, 7d)", evs)[0] == 0.5
    assert evaluate("rate(refund, refund, 7d)", evs)[0] is None


def test_sub_day_windows_use_timestamps():
    evs = [("page_view", "click", T0 - 13 * 3_600_000, {}),
           ("page_view", "click", T0 - 11 * 3_600_000, {}),
           ("page_view", "click", T0 - 30 * 60_000, {})]
    assert evaluate("count(page_view, 12h)", evs)[0] == 2
    assert evaluate("count(page_view, 1h)", evs)[0] == 1
    assert evaluate("count(page_view, 1d)", evs)[0] == 1   # whole days: today (from 00:00)


def test_decayed_count():
    evs = [("course_view", "click", T0 - 10 * DAY, {}), ("course_view", "click", T0, {})]
    assert evaluate("count(course_view, 30d, half_life: 10d)", evs)[0] == 1.5


def test_first_last_distinct_profile_scores():
    evs = [("ad_landing", "click", T0 + 5, {"channel": "b"}),
           ("ad_landing", "click", T0 + 1, {"channel": "a"}),
           ("page_view", "click", T0 + 9, {"channel": "c"}),
           ("order_paid", "order", T0, {"category": "java"}),
           ("order_paid", "order", T0, {"category": "python"}),
           ("order_paid", "order", T0, {"category": "java"}),
           ("registered", "profile", T0, {"region": "bj"}),
           ("profile_updated", "profile", T0 + 1, {"region": "sh"})]
    now = T0 + 10
    assert evaluate("first(click.channel)", evs, now)[0] == "a"
    assert evaluate("last(click.channel)", evs, now)[0] == "c"
    assert evaluate("last(ad_landing.channel)", evs, now)[0] == "b"
    assert evaluate("distinct(order_paid.category)", evs, now)[0] == ["java", "python"]
    assert evaluate("'java' in distinct(order_paid.category)", evs, now)[0] is True
    assert evaluate("profile.region", evs, now)[0] == "sh"
    assert evaluate("profile.goal", evs, now)[0] is None
    assert evaluate("score.convert >= 0.5", evs, now, scores={"convert": 0.7})[0] is True
    assert evaluate("score.convert >= 0.5", evs, now)[0] is False


def test_streak_and_seq():
    m, a = ("lesson_missed", "study"), ("lesson_attended", "study")
    evs = [(*m, T0 + 1, {}), (*a, T0 + 2, {}), (*m, T0 + 3, {}), (*m, T0 + 4, {})]
    assert evaluate("streak(lesson_missed, reset: lesson_attended)", evs, T0 + 9)[0] == 2
    tb, op = ("trial_booked", "click"), ("order_paid", "order")
    evs = [(*tb, T0, {}), (*op, T0 + 3 * DAY, {})]
    assert evaluate("seq(trial_booked, order_paid, within: 7d)", evs, T0 + 5 * DAY)[0] is True
    assert evaluate("seq(trial_booked, order_paid, within: 2d)", evs, T0 + 5 * DAY)[0] is False
    assert evaluate("seq(order_paid, trial_booked)", evs, T0 + 5 * DAY)[0] is False


def test_trace_records_call_values_once_per_evaluation():
    value, ctx = evaluate("count(page_view, 7d) + count(page_view, 7d) >= 0")
    assert value is True and ctx.trace == {"count(page_view, 7d)": 0}


@pytest.mark.parametrize(("expr", "col"), [
    ("count(x, 7d) >", 14), ("foo(1)", 1), ("1 + profile", 5), ("count(x, $w2)", 11),
    ("a|b", 1), ("count(x, y)", 10),
])
def test_compile_errors_carry_the_column(expr, col):
    with pytest.raises(CompileError) as exc:
        compile_expr(expr, Requirements(), {"w": "7d"})
    assert exc.value.column == col


def test_parse_duration():
    assert parse_duration("1.5h") == 5_400_000 and parse_duration("250ms") == 250
    assert parse_duration(30) is None
