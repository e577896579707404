"""Equivalence of the guards' faster code paths (session 9) with the plain code they replace,
kept here as reference implementations: the since() guard's one-pass start times, the
active-days precheck that reads the newest daily bucket first and stops at two events,
``Selector.extreme`` with a type left out, and the daily windows a new day moves (ticks skip
the daily rules whose windows kept their value). Random states and events (hypothesis) go through
both; any difference fails. The engine-level equivalence (selective = full evaluation, the
first-evaluation memo = no memo) is in test_property_selective.py."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.rules.compiler import (
    DailyWindow,
    Probe,
    _active_days_moved,
    _compare,
    _since_moved,
    compile_expr,
)
from stream_app.state import query
from stream_app.state.requirements import PropSpec, Requirements, Selector

TYPES = ["page_view", "course_view", "lesson_attended", "order_paid", "outcome", "registered"]
STREAM = {"page_view": "click", "course_view": "click", "lesson_attended": "study",
          "order_paid": "order", "outcome": "label", "registered": "profile"}
SELECTORS = [Selector.parse(s) for s in ("any", "stream:click", "stream:click|stream:study",
                                         "course_view", "order_paid|stream:study",
                                         "page_view|course_view")]
DAY = 86_400_000


# -- reference implementations (the code before session 9) -----------------------------
def _ref_since_after(fld: str, sel: Selector, res: Any, points: tuple[int, ...],
                     p: Probe) -> bool:
    latest = fld == "l"
    state, etype, now = p.state, p.etype, p.now
    old = p.old_l if latest else p.old_f
    if old is not None:
        lo, hi = (now - state["lt"], now - old) if latest else (now - old, now - state["ft"])
        if not any(lo < q <= hi for q in points):
            return False
    times = state[fld]
    types = sel.resolve(state["st"])
    post = [times[t] for t in types if t in times]
    pre_ = [times[t] for t in types if t in times and t != etype]
    if old is not None:
        pre_.append(old)
    if latest:
        a, b = (max(pre_) if pre_ else None), max(post)
    else:
        a, b = (min(pre_) if pre_ else None), min(post)
    if a == b:
        return False
    return res(None if a is None else now - a) != res(now - b)


def _ref_active_days_pre(sel: Selector, p: Probe) -> bool:
    total, day = 0, p.day
    for b in query._day_lists(p.state, sel):
        for idx, val in reversed(b):
            if idx == day:
                total += val
            if idx <= day:
                break
    return total == 1


def _ref_extreme(sel: Selector, times: dict, type_streams: dict, latest: bool,
                 skip: str | None) -> int | None:
    vals = [times[t] for t in sel.resolve(type_streams) if t in times and t != skip]
    if not vals:
        return None
    return max(vals) if latest else min(vals)


# -- random states ---------------------------------------------------------------------
BUCKETS = st.lists(st.tuples(st.integers(95, 105), st.integers(1, 3)), max_size=6).map(
    lambda pairs: [[d, n] for d, n in sorted(dict(pairs).items())])


@st.composite
def probes(draw: Any) -> Probe:
    """A state after one event of ``etype`` at ``ts`` (its type tracked), with the type's
    latest / earliest time before it."""
    types = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=5, unique=True))
    etype = types[0]
    times = st.integers(90 * DAY, 106 * DAY)
    lasts = {t: draw(times) for t in types}
    firsts = {t: min(lasts[t], draw(times)) for t in types}
    ts = draw(times)
    old_l = draw(st.one_of(st.none(), st.just(lasts[etype])))
    old_f = None if old_l is None else firsts[etype]
    lasts[etype] = ts if old_l is None else max(old_l, ts)
    firsts[etype] = ts if old_f is None else min(old_f, ts)
    state: dict[str, Any] = {
        "st": {t: STREAM[t] for t in types}, "l": lasts, "f": firsts,
        "lt": max(lasts.values()), "ft": min(firsts.values()),
        "d": {t: b for t in types if (b := draw(BUCKETS))},
        "ds": {s: b for s in ("click", "study") if (b := draw(BUCKETS))},
    }
    now = max(ts, draw(times))
    day, today = ts // DAY, now // DAY
    return Probe(state, etype, ts, day, today, now, old_l, old_f, set())


@settings(max_examples=600, deadline=None)
@given(p=probes(), sel=st.sampled_from(SELECTORS), fld=st.sampled_from(["l", "f"]),
       op=st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
       c=st.sampled_from([0, DAY, 7 * DAY, 3.5 * DAY, 30 * DAY]))
def test_since_guard_after_equals_reference(p, sel, fld, op, c):
    if not sel.matches(p.etype, p.state["st"][p.etype]):
        return   # the engine looks at a guard only for an event its selector reads
    cmp_ = _compare(op)

    def res(v: Any) -> bool:
        return cmp_(v, c)
    points = tuple(sorted({q for q in (int(c), int(c) + 1) if res(q) != res(q - 1)}))
    _, pre, _, after = _since_moved(fld, sel, res, points)
    if pre(p):
        assert after(p) == _ref_since_after(fld, sel, res, points, p)


@settings(max_examples=600, deadline=None)
@given(p=probes(), sel=st.sampled_from(SELECTORS))
def test_active_days_precheck_equals_reference(p, sel):
    _, pre, _, _ = _active_days_moved(sel, 30)
    assert pre(p) == _ref_active_days_pre(sel, p)


@settings(max_examples=400, deadline=None)
@given(p=probes(), sel=st.sampled_from(SELECTORS), latest=st.booleans(),
       skip=st.one_of(st.none(), st.sampled_from(TYPES)))
def test_extreme_with_a_type_left_out_equals_reference(p, sel, latest, skip):
    state = p.state
    times = state["l"] if latest else state["f"]
    order = list(times)
    assert sel.extreme(times, state["st"], latest, skip) == _ref_extreme(
        sel, times, state["st"], latest, skip)
    assert list(times) == order   # the state's dict is read, not reordered


def test_reference_tests_reach_both_outcomes():
    """Guard against vacuous property tests: the since() guard and the active-days precheck
    both say moved and not moved on hand-made probes."""
    sel = Selector.parse("stream:click")
    c = compile_expr("since(stream:click) > 7d", Requirements(), {})
    (guard,) = c.guards
    st_ = {"st": {"page_view": "click"}, "l": {"page_view": 20 * DAY},
           "f": {"page_view": 10 * DAY}, "lt": 20 * DAY, "ft": 10 * DAY,
           "d": {}, "ds": {"click": [[10, 1], [20, 1]]}}
    moved = Probe(st_, "page_view", 20 * DAY, 20, 20, 20 * DAY, 10 * DAY, 10 * DAY, set())
    assert guard.pre(moved) and guard.after(moved)      # silent 10 days, then an event
    st_2 = dict(st_, l={"page_view": 11 * DAY}, lt=11 * DAY, ds={"click": [[10, 1], [11, 2]]})
    still = Probe(st_2, "page_view", 11 * DAY, 11, 11, 11 * DAY, 11 * DAY - 1, 10 * DAY, set())
    assert guard.pre(still) and not guard.after(still)   # a second event the same day
    _, ad_pre, _, _ = _active_days_moved(sel, 30)
    assert ad_pre(moved) and not ad_pre(still)


# -- daily windows on a new day (ticks) ----------------------------------------------------
@settings(max_examples=800, deadline=None)
@given(buckets=st.lists(st.tuples(st.integers(80, 110), st.integers(1, 3)), max_size=8),
       days=st.integers(1, 12), old_today=st.integers(100, 110), step=st.integers(1, 15),
       decayed=st.booleans(), by_sum=st.booleans())
def test_a_daily_window_that_did_not_move_keeps_its_value(buckets, days, old_today, step,
                                                          decayed, by_sum):
    """``DailyWindow.moved`` false on a day change (no bucket after the old day, as after an
    evaluation) means the window's value at the new day equals the old one, for counts,
    active days, sums and decayed counts; true means some read differs (not too eager)."""
    b = [[d, n] for d, n in sorted(dict(buckets).items()) if d <= old_today]
    sel = Selector.parse("course_view")
    spec = PropSpec(sel, "amount")
    state: dict[str, Any] = {"st": {"course_view": "click"}, "d": {"course_view": b} if b else {},
                             "s": {spec.key: b} if b else {}}
    today = old_today + step
    window = DailyWindow(None, spec, days) if by_sum else DailyWindow(sel, None, days, decayed)

    def reads(day: int) -> tuple:
        if by_sum:
            return (query.prop_sum(state, spec, day, days),)
        if decayed:
            return (query.count_days(state, sel, day, days, 2.0),)
        return (query.count_days(state, sel, day, days), query.active_days(state, sel, day, days))
    assert window.moved(state, old_today, today) == (reads(today) != reads(old_today))


# -- the day's moved windows of a whole rule set (session 10: bucket lists read in place) ----
_RS = None


def _default_ruleset() -> Any:
    global _RS
    if _RS is None:
        from stream_app.rules.engine import DEFAULT_RULES  # noqa: PLC0415
        from stream_app.rules.loader import load_ruleset  # noqa: PLC0415
        _RS = load_ruleset(DEFAULT_RULES)
    return _RS


WINDOW_TYPES = ["course_view", "page_view", "refund", "trial_booked", "order_paid",
                "lesson_attended", "video_watched", "renewal", "homework_submitted", "search"]
WSTREAM = {"course_view": "click", "page_view": "click", "refund": "order",
           "trial_booked": "click", "order_paid": "order", "lesson_attended": "study",
           "video_watched": "study", "renewal": "order", "homework_submitted": "study",
           "search": "click"}
LONG_BUCKETS = st.lists(st.tuples(st.integers(0, 110), st.integers(0, 3)), max_size=8).map(
    lambda pairs: [[d, n] for d, n in sorted(dict(pairs).items())])


@settings(max_examples=600, deadline=None)
@given(types=st.lists(st.sampled_from(WINDOW_TYPES), max_size=6, unique=True),
       data=st.data(), old_today=st.integers(60, 110), step=st.sampled_from([1, 2, 7, 31, 400]))
def test_daily_moved_equals_every_window_checked_alone(types, data, old_today, step):
    rs = _default_ruleset()
    state: dict[str, Any] = {
        "st": {t: WSTREAM[t] for t in types},
        "d": {t: data.draw(LONG_BUCKETS) for t in types},
        "ds": {s: b for s in ("click", "study") if (b := data.draw(LONG_BUCKETS))},
        "s": {k: b for k in ("order_paid.amount", "refund.amount", "renewal.amount",
                             "video_watched.percent") if (b := data.draw(LONG_BUCKETS))},
    }
    today = old_today + step
    want: set[str] = set()
    for window, tags in rs._windows.items():
        if window.moved(state, old_today, today):
            want |= tags
    assert rs.daily_moved(state, old_today, today) == frozenset(want)
