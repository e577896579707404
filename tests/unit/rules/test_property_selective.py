"""Property: the selective engine (only the rules an event, tick or score update can change)
gives exactly the same changes, why records, derived events and state as a full evaluation of
every rule (``TagEngine(full=True)``), step by step, over random sequences of events, clock
ticks, score updates, late and duplicate events, batches, deletions, business-day boundaries
and rule-set switches; also for rules reading ``prev()`` (the tag's value before: hysteresis,
sticky and high-water tags, a hidden one, one that settles over several runs, dependents)."""

from __future__ import annotations

import orjson
from conftest import DAY, STREAM_OF, T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset, ruleset_from_text

# rules that exercise what the default set does not: sub-day windows, the exact clock without
# a threshold, thresholds written the other way round / with == and fractional constants,
# active_days over every event, chains of tag() through a hidden tag, decayed counts, and
# prev(): hysteresis on a hidden daily tag and a score (x_hyst, read by x_hyst_dep), a sticky
# hidden bool with a since() threshold (x_sticky), a high-water mark (x_high), a rule that
# settles over three runs (x_step: two -> one -> zero without its entry)
EXTRA = """
version: "x.1"
tags:
  - {id: x_recent, family: x, zh: 近, en: Recent, kind: number,
     value: "count(page_view|course_view, 6h) + count(stream:click, 90m)"}
  - {id: x_days, family: x, zh: 天, en: Days, kind: number, round: 1,
     value: "days(since(stream:study))"}
  - {id: x_rev, family: x, zh: 反, en: Reversed, kind: bool,
     value: "2d > since_first(any) or since(order_paid) == 3600000
             or since(lesson_missed) >= 1.5d or 5000.5 < since(course_view)"}
  - {id: x_all_days, family: x, zh: 全, en: All days, kind: number,
     value: "active_days(7d)", hidden: true}
  - {id: x_chain, family: x, zh: 链, en: Chain, kind: enum,
     cases: [{value: busy, zh: 忙, en: Busy, when: "tag(x_all_days) >= 2 and tag(x_rev)"},
             {value: scored, zh: 分, en: Scored, when: "score.convert > 0.5"}],
     default: {value: idle, zh: 闲, en: Idle}}
  - {id: x_chain2, family: x, zh: 链2, en: Chain 2, kind: text,
     value: "if(tag(x_chain) == 'busy', 'b', null)"}
  - {id: x_decay, family: x, zh: 衰, en: Decay, kind: number, round: 2,
     value: "count(course_view|stream:study, 10d, half_life: 2d)"}
  - {id: x_peak, family: x, zh: 峰, en: Peak, kind: number, value: "peak(order_paid.amount)"}
  - {id: x_last_amount, family: x, zh: 末, en: Last amount, kind: text,
     value: "last(order_paid.amount)"}
  - {id: x_first, family: x, zh: 首, en: First, kind: text,
     value: "coalesce(first(order.amount), first(click.channel))"}
  - {id: x_percents, family: x, zh: 值, en: Values, kind: set,
     value: "distinct(study.percent)"}
  - {id: x_window, family: x, zh: 窗, en: Window, kind: enum,
     cases: [{value: busy, zh: 忙, en: Busy, when: "count(stream:click, 2d) >= 2"},
             {value: study, zh: 学, en: Study, when: "1 < count(course_view|stream:study, 3d)"}],
     default: {value: calm, zh: 静, en: Calm}}
  - {id: x_mixed, family: x, zh: 混, en: Mixed, kind: text,
     value: "if(last(click.channel) == 'douyin' and count(stream:click, 7d) > 1, 'd', null)"}
  - {id: x_alts, family: x, zh: 选, en: Alternatives, kind: text,
     value: "coalesce(first(any.utm_source|channel|utm_campaign), '-') + '/'
             + coalesce(last(click.utm_source|channel), '-')"}
  - {id: x_hyst, family: x, zh: 滞, en: Hysteresis, kind: enum,
     cases: [{value: null, when: "count(any) == 0"},
             {value: hot, zh: 热, en: Hot,
              when: "tag(x_all_days) >= 3 or score.convert >= 0.8
                     or (prev() == 'hot' and (tag(x_all_days) >= 2 or score.convert >= 0.3))"},
             {value: warm, zh: 温, en: Warm, when: "tag(x_all_days) >= 1"}],
     default: {value: cold, zh: 冷, en: Cold}}
  - {id: x_hyst_dep, family: x, zh: 滞依, en: Hysteresis dependent, kind: bool,
     value: "tag(x_hyst) == 'hot' and count(course_view) > 0"}
  - {id: x_sticky, family: x, zh: 粘, en: Sticky, kind: bool, hidden: true,
     value: "prev() == true or since(order_paid) <= 1d"}
  - {id: x_sticky_dep, family: x, zh: 粘依, en: Sticky dependent, kind: text,
     value: "if(tag(x_sticky), 'paid once', null)"}
  - {id: x_high, family: x, zh: 高水位, en: High water, kind: number,
     value: "max(coalesce(prev(), 0), count(stream:click, 3d))"}
  - {id: x_step, family: x, zh: 阶, en: Step, kind: enum,
     cases: [{value: two, zh: 二, en: Two, when: "count(course_view|stream:study, 3d) >= 2"},
             {value: one, zh: 一, en: One, when: "prev() == 'two'"}],
     default: {value: zero, zh: 零, en: Zero}}
"""

DEFAULT = load_ruleset(DEFAULT_RULES)
EXTRA_RS = ruleset_from_text(EXTRA)
RULESETS = [DEFAULT, EXTRA_RS]

TYPES = sorted(t for t in STREAM_OF if t != "deletion_requested") + [
    "invitee_registered", "invitee_trialled", "invitee_bought", "mystery"]
PROPS = st.fixed_dictionaries({}, optional={
    "amount": st.sampled_from([9.9, 1999, 1999.0, 4980, 12800, "300", "n/a"]),
    "category": st.sampled_from(["java", "python", "ui"]),
    "class_type": st.sampled_from(["1v1", "small", "video", "odd"]),
    "channel": st.sampled_from(["douyin", "bilibili", "baidu_sem"]),
    "utm_source": st.sampled_from(["douyin", "moments"]),
    "utm_campaign": st.sampled_from(["spring", "618"]),
    "region": st.sampled_from(["bj", "sh"]),
    "education": st.sampled_from(["本科", "master", "other"]),
    "goal": st.sampled_from(["转行", "考证", "x"]),
    "percent": st.integers(0, 100),
    "inviter_id": st.sampled_from(["u7", "u8"]),
})
# clock steps: within minutes, hours, across days, beyond the 7/14/30-day thresholds
MINUTES = st.one_of(st.integers(0, 90), st.integers(0, 36 * 60),
                    st.integers(0, 40 * 24 * 60), st.sampled_from([0, 1, 7 * 24 * 60,
                                                                   30 * 24 * 60]))
STEP = st.one_of(
    st.tuples(st.just("event"), st.sampled_from(TYPES), MINUTES, PROPS),
    st.tuples(st.just("late"), st.sampled_from(TYPES),   # up to beyond the retention
              st.one_of(st.integers(1, 3 * 24 * 60), st.integers(1, 200 * 24 * 60)), PROPS),
    st.tuples(st.just("tick"), MINUTES),
    st.tuples(st.just("scores"), st.sampled_from([None, 0.1, 0.3, 0.55, 0.65, 0.8]), MINUTES,
              st.sampled_from(["convert", "at_risk"])),   # around the keep thresholds too
    st.tuples(st.just("dup"), st.integers(0, 40)),
    st.tuples(st.just("batch"), st.lists(st.tuples(st.sampled_from(TYPES), MINUTES, PROPS),
                                         min_size=1, max_size=3)),
    st.tuples(st.just("delete")),
    st.tuples(st.just("switch"), st.sampled_from([0, 1])),
)


def _starts_kept(engine, state):
    """The since() start times a state keeps (``tg``) are those its events give."""
    if state is not None and "tg" in state and state.get("rv") == engine.ruleset.version:
        assert state["tg"] == engine.ruleset.clock_starts(state)


def _roundtrip(state):
    return None if state is None else orjson.loads(orjson.dumps(state))


def _same(a, b):
    assert a.duplicate == b.duplicate
    assert a.changes == b.changes
    assert a.why == b.why
    assert a.emit == b.emit
    assert a.state == b.state
    if a.state is not None:   # byte-identical as the table writes it (key order too)
        assert orjson.dumps(a.state) == orjson.dumps(b.state)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.sampled_from([0, 1]), steps=st.lists(STEP, min_size=1, max_size=30),
       day_offset_h=st.sampled_from([8, 0]))
def test_selective_equals_full_evaluation(first, steps, day_offset_h):
    kw = {"day_offset_ms": day_offset_h * 3_600_000}
    full = TagEngine(RULESETS[first], full=True, **kw)
    sel = TagEngine(RULESETS[first], **kw)
    s_full = s_sel = None
    clock = T0
    seen: list[Event] = []
    n = 0

    def event(etype, ts, props):
        nonlocal n
        n += 1
        return Event(f"e{n:03d}", "u1", ts, etype, STREAM_OF.get(etype, "click"),
                     props=dict(props))

    for step in steps:
        kind = step[0]
        if kind in ("tick", "scores") and s_full is None:
            continue
        if kind == "event":
            clock += step[2] * 60_000
            ev = event(step[1], clock, step[3])
            seen.append(ev)
            a, b = full.on_event(s_full, ev), sel.on_event(s_sel, ev)
        elif kind == "late":
            ev = event(step[1], clock - step[2] * 60_000, step[3])
            seen.append(ev)
            a, b = full.on_event(s_full, ev), sel.on_event(s_sel, ev)
        elif kind == "dup":
            if not seen:
                continue
            ev = seen[step[1] % len(seen)]
            a, b = full.on_event(s_full, ev), sel.on_event(s_sel, ev)
        elif kind == "batch":
            evs = []
            for etype, minutes, props in step[1]:
                clock += minutes * 60_000
                evs.append(event(etype, clock, props))
            seen += evs
            a, b = full.on_events(s_full, evs), sel.on_events(s_sel, evs)
        elif kind == "delete":
            ev = event("deletion_requested", clock, {})
            a, b = full.on_event(s_full, ev), sel.on_event(s_sel, ev)
        elif kind == "tick":
            clock += step[1] * 60_000
            a, b = full.on_tick(s_full, clock), sel.on_tick(s_sel, clock)
            assert full.due(s_full, clock) == sel.due(s_sel, clock) if a.state else True
        elif kind == "scores":
            clock += step[2] * 60_000
            a = full.on_scores(s_full, {step[3]: step[1]}, clock)
            b = sel.on_scores(s_sel, {step[3]: step[1]}, clock)
        else:  # switch rule sets (hot reload): the next step re-evaluates everything
            full.ruleset = sel.ruleset = RULESETS[step[1]]
            continue
        _same(a, b)
        _starts_kept(sel, b.state)
        s_full, s_sel = _roundtrip(a.state), _roundtrip(b.state)   # as stored in the table
    if s_full is not None:   # and a final look far ahead
        _same(full.on_tick(s_full, clock + 400 * DAY), sel.on_tick(s_sel, clock + 400 * DAY))


def test_selective_runs_fewer_rules(engine, make_event):
    """Guard against a vacuous property: a same-day click re-runs only what reads clicks or
    the clock; a tick before any threshold or day change runs nothing; a day later only the
    decayed windows run (no bucket left the others); past 30 days without a click the
    since() thresholds and the windows the click left run."""
    rs = engine.ruleset
    r = engine.on_event(None, make_event("registered", region="bj"))
    r = engine.on_event(r.state, make_event("course_view", hour=1, channel="douyin"))
    state = r.state
    must, cands, _ = rs.plan((("course_view", "click"),), False, False, True)
    assert {"activity", "lead_points", "first_channel"} <= must
    assert not {"region", "price_band", "attendance_rate", "at_risk"} & set(must)
    assert state["th"] is not None and state["th"] > T0

    ran = []
    orig = rs.evaluate_some

    def spy(*a, **k):
        out = orig(*a, **k)
        ran.append([t.id for t, _ in out[0]])
        return out
    rs.evaluate_some = spy
    try:
        engine.on_tick(state, T0 + 2 * 3_600_000)          # same day, nothing due
        assert ran == []                                    # not even an empty run
        engine.on_tick(state, T0 + DAY)                     # next day: daily windows
        engine.on_tick(state, T0 + 31 * DAY)                # past 30d: thresholds too
    finally:
        del rs.evaluate_some
    assert "lead_points" in ran[0] and not {"activity", "region", "first_channel",
                                            "at_risk"} & set(ran[0])
    assert {"lifecycle", "demand_stage", "lead_points"} <= set(ran[1])


def test_threshold_crossing_inside_a_day_is_caught(make_event):
    """A since() threshold crossed between two events of the same business day changes the
    tag on the second event (no day boundary between them)."""
    rs = ruleset_from_text("""
tags:
  - {id: fresh, family: f, zh: 新, en: Fresh, kind: bool, value: "since(course_view) <= 2h"}
""")
    eng = TagEngine(rs)
    r = eng.on_event(None, make_event("course_view"))
    assert r.state["tags"]["fresh"] is True and r.state["th"] == T0 + 2 * 3_600_000 + 1
    r2 = eng.on_event(r.state, make_event("page_view", hour=3))
    assert [(c["tag_id"], c["old"], c["new"]) for c in r2.changes] == [("fresh", True, False)]
    assert r2.state["th"] is None


def test_late_event_beyond_retention_after_a_tick(make_event):
    """The clock ran ahead of the last event (a tick); a late event older than the retention
    at that clock leaves no daily bucket (a full evaluation would prune it at once, the
    selective one does not prune within a business day)."""
    full, sel = TagEngine(DEFAULT, full=True), TagEngine(DEFAULT)
    states = []
    for eng in (full, sel):
        s = eng.on_event(None, make_event("course_view", event_id="a")).state
        s = eng.on_tick(s, T0 + 40 * DAY).state
        s = eng.on_event(s, make_event("page_view", day=-100, event_id="b")).state
        states.append(s)
    assert states[0] == states[1]
    assert "page_view" not in states[1]["d"] and states[1]["n"]["page_view"] == 1


def _both(rs, steps):
    """Run ``steps`` (("event", Event) / ("tick", ms)) through a full and a selective engine;
    check each step gives the same result; return the selective engine's changes."""
    full, sel = TagEngine(rs, full=True), TagEngine(rs)
    s_full = s_sel = None
    out = []
    for kind, arg in steps:
        if kind == "event":
            a, b = full.on_event(s_full, arg), sel.on_event(s_sel, arg)
        else:
            a, b = full.on_tick(s_full, arg), sel.on_tick(s_sel, arg)
        _same(a, b)
        s_full, s_sel = _roundtrip(a.state), _roundtrip(b.state)
        out.append([(c["tag_id"], c["old"], c["new"]) for c in b.changes])
    return out


def test_since_guard_moves_for_a_repeated_event_after_a_silence(make_event):
    """A since() threshold already crossed (and evaluated) is undone by a new event of a type
    seen before: the guard must notice although the type's latest time only moved forward."""
    rs = ruleset_from_text("""
tags:
  - {id: quiet, family: f, zh: 静, en: Quiet, kind: bool, value: "since(lesson_missed) >= 1.5d"}
""")
    got = _both(rs, [("event", make_event("lesson_missed")), ("tick", T0 + 2 * DAY),
                     ("event", make_event("lesson_missed", day=2, hour=1)),
                     ("event", make_event("lesson_missed", day=2, hour=2))])
    assert got == [[("quiet", None, False)], [("quiet", False, True)], [("quiet", True, False)],
                   []]


def test_prop_guards_run_only_when_the_value_moves(make_event):
    """last(click.channel) re-runs its rule only for a click that changes the latest channel,
    first() only for an earlier event with the prop; outputs equal a full evaluation."""
    rs = ruleset_from_text("""
tags:
  - {id: ch_last, family: f, zh: 末, en: Last, kind: text, value: "last(click.channel)"}
  - {id: ch_first, family: f, zh: 首, en: First, kind: text, value: "first(click.channel)"}
  - {id: top, family: f, zh: 峰, en: Peak, kind: number, value: "peak(order_paid.amount)"}
""")
    got = _both(rs, [
        ("event", make_event("page_view", channel="douyin")),
        ("event", make_event("page_view", hour=1, channel="douyin")),
        ("event", make_event("course_view", hour=2, channel="baidu")),
        ("event", make_event("page_view", hour=-1, channel="wechat")),     # late: first moves
        ("event", make_event("order_paid", hour=3, amount=100)),
        ("event", make_event("order_paid", hour=4, amount=50)),
    ])
    assert got == [[("ch_last", None, "douyin"), ("ch_first", None, "douyin")], [],
                   [("ch_last", "douyin", "baidu")], [("ch_first", "douyin", "wechat")],
                   [("top", None, 100)], []]
    guards = {g.text for t in rs.order for g in t.guards}
    assert guards == {"last(click.channel)", "first(click.channel)", "peak(order_paid.amount)"}
    assert all(not t.reads for t in rs.order)
    ran = []
    orig = rs.evaluate_some

    def spy(*a, **k):
        out = orig(*a, **k)
        ran.append(sorted(t.id for t, _ in out[0]))
        return out
    rs.evaluate_some = spy
    try:
        eng = TagEngine(rs)
        r = eng.on_event(None, make_event("page_view", channel="a"))
        r = eng.on_event(r.state, make_event("page_view", hour=1, channel="a"))
        eng.on_event(r.state, make_event("page_view", hour=2, channel="b"))
    finally:
        del rs.evaluate_some
    assert ran == [["ch_first", "ch_last"], ["ch_last"]]   # the same channel: no rule run


# a small pool of first events, so that new users share first evaluations (memo hits)
FIRST_PROPS = st.fixed_dictionaries({}, optional={
    "amount": st.sampled_from([1999, 1999.0, -0.0, 0.0, "300", True]),
    "channel": st.sampled_from(["douyin", "baidu_sem", ["a"]]),   # a list: not memoised
    "campaign": st.sampled_from(["spring"]),
    "percent": st.sampled_from([0, 50, None]),
    "region": st.sampled_from(["bj", "sh"]),
    "education": st.sampled_from(["本科", "master"]),
    "inviter_id": st.sampled_from(["u7", "u1"]),
    "unused": st.sampled_from([[1], {"a": 1}, "x"]),   # unhashable: not memoised if read
})
USERS = st.lists(st.tuples(st.sampled_from(["ad_landing", "page_view", "registered",
                                            "order_paid", "lesson_attended", "checkpoint",
                                            "video_watched", "mystery"]),
                           st.integers(-3 * DAY, 3 * DAY), FIRST_PROPS,
                           st.lists(st.tuples(st.sampled_from(TYPES), MINUTES), max_size=2)),
                 min_size=2, max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(users=USERS, which=st.sampled_from([0, 1]), day_offset_h=st.sampled_from([8, 0]))
def test_new_users_share_first_evaluations(users, which, day_offset_h):
    """Many new users through one engine: a first evaluation taken from an earlier user's
    (same type, stream and read props; other user, ids, times, days) gives exactly the
    changes, why records, derived events and state of a full evaluation, and of the same
    engine without the memo; what follows a memoised first event is unaffected."""
    kw = {"day_offset_ms": day_offset_h * 3_600_000}
    rs = RULESETS[which]
    full, sel = TagEngine(rs, full=True, **kw), TagEngine(rs, **kw)
    for i, (etype, dt, props, more) in enumerate(users):
        uid = f"u{i % 5}" if i % 3 else f"user-{i}"     # also user ids seen before
        ev = Event(f"{uid}-e0", uid, T0 + dt, etype, STREAM_OF.get(etype, "click"),
                   tenant="t1" if i % 2 else "default", props=dict(props))
        plain = TagEngine(rs, **kw)
        a, b, c = full.on_event(None, ev), sel.on_event(None, ev), plain.on_event(None, ev)
        _same(a, b)
        _same(c, b)
        s_full, s_sel = _roundtrip(a.state), _roundtrip(b.state)
        clock = ev.ts
        for j, (etype2, minutes) in enumerate(more):
            clock += minutes * 60_000
            ev2 = Event(f"{uid}-e{j + 1}", uid, clock, etype2, STREAM_OF.get(etype2, "click"))
            a, b = full.on_event(s_full, ev2), sel.on_event(s_sel, ev2)
            _same(a, b)
            s_full, s_sel = _roundtrip(a.state), _roundtrip(b.state)


def test_first_evaluation_memo_is_used_and_keyed_by_what_is_read(make_event):
    """Guard against a vacuous memo test: a second new user with the same first event reuses
    the first's evaluation (the memo does not grow); a prop the rules keep (channel) is part
    of the key, one they do not (page) is not, and neither are ids, users or times."""
    eng, full = TagEngine(DEFAULT), TagEngine(DEFAULT, full=True)
    evs = [make_event("ad_landing", user="a", channel="douyin", page="/x"),
           make_event("ad_landing", day=3, hour=5, user="b", channel="douyin", page="/y"),
           make_event("ad_landing", user="c", channel="baidu", page="/x")]
    sizes = []
    for ev in evs:
        _same(full.on_event(None, ev), eng.on_event(None, ev))
        sizes.append(len(eng._fresh))
    assert sizes == [1, 1, 2]
    r = eng.on_event(None, make_event("ad_landing", user="d", channel="douyin"))
    assert r.changes[0]["user_id"] == "d" and r.why["first_channel"]["trigger"] == r.changes[0][
        "trigger"] and r.state["tags"]["first_channel"] == "douyin"
    r.state["tags"]["first_channel"] = "changed"      # states do not share the memo's values
    assert eng.on_event(None, make_event("ad_landing", user="e", channel="douyin")).state[
        "tags"]["first_channel"] == "douyin"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.sampled_from([0, 1]),
       steps=st.lists(st.tuples(STEP, st.booleans()), min_size=1, max_size=25))
def test_states_written_before_kept_start_times_load(first, steps):
    """States of the layout before ``tg`` (the kept since() start times) still load: with
    ``tg`` dropped from the stored state before any step, the selective engine gives the
    changes, why records and derived events of a full evaluation of the state with it, and
    the same state apart from ``tg``, which it restores as soon as it needs the horizon."""
    rs = RULESETS[first]
    full, sel = TagEngine(rs, full=True), TagEngine(rs)
    s_full = s_sel = None
    clock, n = T0, 0
    for step, drop in steps:
        kind = step[0]
        if kind in ("tick", "scores") and s_full is None or kind in ("dup", "switch"):
            continue
        if s_sel is not None and drop:
            s_sel.pop("tg", None)     # as written before the key existed
        if kind in ("event", "late"):
            n += 1
            clock += step[2] * 60_000 if kind == "event" else 0
            ts = clock if kind == "event" else clock - step[2] * 60_000
            ev = Event(f"e{n:03d}", "u1", ts, step[1], STREAM_OF.get(step[1], "click"),
                       props=dict(step[3]))
            a, b = full.on_event(s_full, ev), sel.on_event(s_sel, ev)
        elif kind == "batch":
            evs = []
            for etype, minutes, props in step[1]:
                n += 1
                clock += minutes * 60_000
                evs.append(Event(f"e{n:03d}", "u1", clock, etype,
                                 STREAM_OF.get(etype, "click"), props=dict(props)))
            a, b = full.on_events(s_full, evs), sel.on_events(s_sel, evs)
        elif kind == "delete":
            ev = Event("del", "u1", clock, "deletion_requested", "profile")
            a, b = full.on_event(s_full, ev), sel.on_event(s_sel, ev)
        elif kind == "tick":
            clock += step[1] * 60_000
            a, b = full.on_tick(s_full, clock), sel.on_tick(s_sel, clock)
        else:
            clock += step[2] * 60_000
            a = full.on_scores(s_full, {step[3]: step[1]}, clock)
            b = sel.on_scores(s_sel, {step[3]: step[1]}, clock)
        assert (a.changes, a.why, a.emit, a.duplicate) == (b.changes, b.why, b.emit, b.duplicate)
        if a.state is not None:
            assert {k: v for k, v in a.state.items() if k != "tg"} == {
                k: v for k, v in b.state.items() if k != "tg"}
            _starts_kept(sel, b.state)
        s_full, s_sel = _roundtrip(a.state), _roundtrip(b.state)


def test_an_old_state_gets_its_start_times_back(make_event):
    """A state of the old layout (no ``tg``) evaluated by an event that moves a since()
    input is written with the start times its events give, and the same horizon."""
    eng = TagEngine(DEFAULT)
    r = eng.on_event(None, make_event("order_paid", amount=100))
    r = eng.on_event(r.state, make_event("course_view", hour=1))
    old = _roundtrip(r.state)
    assert old["tg"] == DEFAULT.clock_starts(old) and old["tg"][1] == T0
    del old["tg"]
    new = _roundtrip(r.state)
    ev = make_event("page_view", hour=2)
    a, b = eng.on_event(old, ev), eng.on_event(new, ev)
    assert a.changes == b.changes and a.state == b.state
    assert a.state["tg"] == [T0, T0, T0 + 2 * 3_600_000, None]
