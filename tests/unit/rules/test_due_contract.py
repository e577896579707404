"""The sweep's contract with the engine: when ``due(state, t)`` is False, ``on_tick(state, t)``
changes nothing. The worker ticks a user only when it is due (``state["nd"]``), so a broken
promise delays a flip caused by time alone. QA35 F1: ``nd`` was the next business-day start
(or the expiry) only, so the at_risk stall (``since(stream:study) > 14d``), existing ->
dormant (180 d), rfm recency (90 d) and the 7-day novice period flipped at the next Beijing
midnight, up to a day late; ``nd`` now also takes the clock atoms' next change (``th``)."""

from __future__ import annotations

import copy

from conftest import DAY, STREAM_OF, T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_property_selective import EXTRA

from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset, ruleset_from_text

HOUR = 3_600_000
OFF = 8 * HOUR            # Beijing: the default business day
TYPES = ["course_view", "page_view", "lesson_attended", "lesson_missed", "video_watched",
         "order_paid", "renewal", "refund", "trial_booked", "registered"]


def test_the_at_risk_stall_flips_at_its_threshold_not_at_the_next_day_start() -> None:
    eng = TagEngine(load_ruleset(DEFAULT_RULES))
    st_ = eng.on_event(None, Event("e1", "u1", T0, "lesson_attended", "study")).state
    st_ = eng.on_event(st_, Event("e2", "u1", T0 + 60_000, "order_paid", "order",
                                  props={"amount": 100})).state
    day_starts = [T0 - 10 * HOUR + d * DAY + 1 for d in range(1, 15)]   # Beijing 00:00:00.001
    for t in day_starts:
        if eng.due(st_, t):
            st_ = eng.on_tick(st_, t).state
    assert st_["tags"]["at_risk"] is False
    stall = T0 + 14 * DAY + 1                       # the first ms past 14 days (10:00 Beijing)
    assert st_["nd"] <= stall, "the sweep would wait for the next business-day start"
    assert eng.due(st_, stall)
    flips = [(c["tag_id"], c["new"]) for c in eng.on_tick(st_, stall).changes]
    assert ("at_risk", True) in flips


def _probe(eng: TagEngine, state: dict, t: int) -> None:
    """``t`` is before the state's due time: a tick there must change nothing."""
    assert not eng.due(state, t)
    r = eng.on_tick(copy.deepcopy(state), t)
    assert not r.changes, (
        f"due() False at +{(t - T0) / DAY:.4f} d, but a tick changes "
        f"{[(c['tag_id'], c['old'], c['new']) for c in r.changes]}")


def _check(eng: TagEngine, steps: list[tuple[int, str | None]]) -> None:
    state = None
    n = 0
    for gap, etype in steps:
        if state is not None:   # probe the whole period up to the due time
            now, nd = state["now"], state["nd"]
            for k in range(1, 8):
                _probe(eng, state, now + (nd - now) * k // 8)
            _probe(eng, state, nd - 1)
        base = state["now"] if state else T0
        if gap < 0:   # -k: 1 ms past the k-th Beijing day start ahead (the daily sweep)
            base = (base + OFF) // DAY * DAY - OFF + DAY * -gap
            gap = 1
        t = base + gap
        if etype is None:
            if state is None or not eng.due(state, t):
                continue
            state = eng.on_tick(state, t).state
        else:
            n += 1
            props = {"amount": 199} if etype in ("order_paid", "renewal") else {}
            state = eng.on_event(state, Event(f"e{n}", "u1", t, etype, STREAM_OF[etype],
                                              props=props)).state
        if state is None:
            return


gaps = st.one_of(st.integers(0, 3 * HOUR), st.integers(0, 20 * DAY), st.integers(-30, -1),
                 st.sampled_from([DAY, 7 * DAY, 14 * DAY, 90 * DAY, 180 * DAY]).map(
                     lambda d: d + 1))
steps = st.lists(st.tuples(gaps, st.one_of(st.none(), st.sampled_from(TYPES))),
                 min_size=2, max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_not_due_means_a_tick_changes_nothing_default_rules(s) -> None:
    _check(TagEngine(load_ruleset(DEFAULT_RULES)), s)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_not_due_means_a_tick_changes_nothing_sub_day_rules(s) -> None:
    _check(TagEngine(ruleset_from_text(EXTRA)), s)
