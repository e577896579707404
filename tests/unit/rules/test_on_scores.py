"""Property: ``TagEngine.on_scores`` (the shortcut when the clock stands: the tags reading
scores looked at first) gives exactly what the selective evaluation it short-cuts gives
(``_evaluate`` with the scores touched, as on_scores did before the shortcut): the same
changes, why records, derived events and state bytes, over random event sequences each
followed, as in the worker, by score updates at the event's clock (and sometimes later)."""

from __future__ import annotations

import math

import orjson
import pytest
from conftest import STREAM_OF, T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.events import Event
from stream_app.rules.engine import _SCORES_TOUCHED, DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset, ruleset_from_text

# score reads the default rules do not have: thresholds both ways round and against 0 and
# null (convert, at_risk: read only so), a score read outside a comparison and compared with
# a tag (value), next to a hidden tag, a dependent; prev(): hysteresis on a score compared
# with constants only (s_keep, read by s_dep) and a high-water mark of a score read otherwise
# (s_peak)
SCORED = """
version: "s.1"
params: {hi: 0.5}
tags:
  - {id: s_clicks, family: s, zh: 点, en: Clicks, kind: number, hidden: true,
     value: "count(stream:click)"}
  - {id: s_layer, family: s, zh: 层, en: Layer, kind: enum,
     cases: [{value: none, zh: 无, en: None, when: "count(any) == 0 and score.convert == null"},
             {value: high, zh: 高, en: High, when: "$hi <= score.convert or tag(s_clicks) > 4"},
             {value: zero, zh: 零, en: Zero, when: "score.convert == 0"},
             {value: mid, zh: 中, en: Mid, when: "score.convert > 0.2 and score.at_risk < 0.3"}],
     default: {value: low, zh: 低, en: Low}}
  - {id: s_pct, family: s, zh: 百, en: Percent, kind: number, round: 0,
     value: "score.value * 100"}
  - {id: s_vs, family: s, zh: 比, en: Versus, kind: bool,
     value: "score.value > tag(s_clicks) / 10"}
  - {id: s_risky, family: s, zh: 险, en: Risky, kind: text,
     value: "if(tag(s_clicks) >= 2 and score.at_risk >= 0.3, 'r', null)"}
  - {id: s_keep, family: s, zh: 持, en: Keep, kind: bool,
     value: "score.convert >= $hi or (prev() == true and score.convert >= 0.2)"}
  - {id: s_peak, family: s, zh: 峰, en: Peak, kind: number, round: 2,
     value: "if(score.value > coalesce(prev(), 0), score.value, prev())"}
  - {id: s_dep, family: s, zh: 依, en: Dependent, kind: text,
     value: "if((tag(s_layer) == 'high' or tag(s_keep)) and count(course_view) > 0, 'hc', null)"}
  - {id: s_days, family: s, zh: 天, en: Days, kind: number, value: "active_days(7d)"}
"""
RULESETS = [load_ruleset(DEFAULT_RULES), ruleset_from_text(SCORED)]
TYPES = ["course_view", "page_view", "trial_booked", "order_paid", "lesson_attended",
         "refund", "profile_updated"]
VALUES = [None, 0.0, -0.0, 0.01, 0.19, 0.2, 0.21, 0.29, 0.3, 0.49, 0.5, 0.51, 0.99, 1.0, 1, True,
          "0.7", float("nan"), float("inf")]
SCORE = st.sampled_from(VALUES)
SCORES = st.one_of(st.fixed_dictionaries({"convert": SCORE}),
                   st.fixed_dictionaries({"at_risk": SCORE, "convert": SCORE}),
                   st.fixed_dictionaries({}, optional={"at_risk": SCORE, "convert": SCORE,
                                                       "value": SCORE}))
# minutes after the last step: mostly none (the worker's case: the event's clock)
LATER = st.one_of(st.just(0), st.just(0), st.integers(-60, 3 * 24 * 60))
STEP = st.tuples(st.sampled_from(TYPES), st.integers(0, 3 * 24 * 60),
                 st.lists(st.tuples(SCORES, LATER), max_size=3))


class Reference(TagEngine):
    """``on_scores`` as it was: store the scores, then the selective evaluation; a NaN or
    infinite score is stored as null (as the state's bytes keep it)."""

    def on_scores(self, state, scores, now_ms):
        state.setdefault("scores", {}).update(
            {t: None if isinstance(v, float) and not math.isfinite(v) else v
             for t, v in scores.items()})
        return self._evaluate(state, max(now_ms, state["now"]), trigger=None, reason="score",
                              touched=_SCORES_TOUCHED)


def _out(r):
    return orjson.dumps([r.changes, r.why, r.emit, r.duplicate]) + orjson.dumps(r.state)


def _roundtrip(state):
    return orjson.loads(orjson.dumps(state))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from([0, 1]), steps=st.lists(STEP, min_size=1, max_size=25))
def test_on_scores_equals_the_selective_evaluation(which, steps):
    fast, ref = TagEngine(RULESETS[which]), Reference(RULESETS[which])
    states = [None, None]
    clock = T0
    for n, (etype, minutes, updates) in enumerate(steps):
        clock += minutes * 60_000
        ev = Event(f"e{n}", "u1", clock, etype, STREAM_OF[etype],
                   props={"amount": 100} if etype == "order_paid" else {})
        a, b = ref.on_event(states[0], ev), fast.on_event(states[1], ev)
        assert _out(a) == _out(b)
        states = [a.state, b.state]
        at = clock
        for scores, later in updates:
            at += later * 60_000
            a, b = ref.on_scores(states[0], dict(scores), at), fast.on_scores(
                states[1], dict(scores), at)
            assert _out(a) == _out(b), (scores, at - clock)
            assert b.state is states[1]
        states = [_roundtrip(a.state), _roundtrip(b.state)]


def test_the_shortcut_runs(make_event):
    """Guard against a vacuous property: at the event's clock a score update takes the
    shortcut (the selective evaluation is not called): a score that crosses no threshold
    runs no rule, a first score included (a null score is compared as null: the tags are
    not run to look), one that crosses one runs the plan at once; a later clock does not
    take it."""
    calls, runs = [], []

    class Counting(TagEngine):
        def _evaluate(self, *args, **kwargs):
            calls.append(kwargs.get("touched"))
            return super()._evaluate(*args, **kwargs)

        def _scores_kept(self, *args):
            runs.append(args[2])
            return super()._scores_kept(*args)
    eng = Counting(RULESETS[0])
    st_ = eng.on_event(None, make_event("course_view")).state
    calls.clear()
    assert eng.on_scores(st_, {"convert": 0.1}, st_["now"]).changes == []   # None -> 0.1
    assert eng.on_scores(st_, {"convert": 0.15, "at_risk": 0.9}, st_["now"]).changes == []
    assert [c["tag_id"] for c in eng.on_scores(st_, {"convert": 0.9}, st_["now"]).changes] == [
        "intent", "demand_stage"]
    # (the first scores, convert's read by intent and at_risk's by at_risk, cross nothing)
    assert calls == [] and runs == []
    assert eng.on_scores(st_, {"convert": 0.8}, st_["now"] + 1).changes == []
    assert calls == [_SCORES_TOUCHED]


@pytest.mark.parametrize("edit", ["passed", "absent"])
def test_no_shortcut_past_the_horizon(make_event, edit):
    """States the engine does not write at their own clock: the clock atoms' horizon
    (``th``) has come, or is not kept (written before horizons were): the evaluation moves
    or sets it (selective, resp. full), so the shortcut must not be taken."""
    fast, ref = TagEngine(RULESETS[0]), Reference(RULESETS[0])
    st_ = fast.on_event(None, make_event("course_view")).state
    if edit == "passed":
        st_["th"] = st_["now"]
    else:
        del st_["th"]
    a = ref.on_scores(_roundtrip(st_), {"convert": 0.1}, st_["now"])
    b = fast.on_scores(_roundtrip(st_), {"convert": 0.1}, st_["now"])
    assert _out(a) == _out(b) and b.state["th"] > b.state["now"]


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("history", [("profile_updated",), ("course_view",),
                                     ("course_view", "trial_booked", "page_view", "page_view",
                                      "page_view", "order_paid")])
def test_every_pair_of_scores(which, history):
    """Each score value to each other one (both targets), at the clock of the last event:
    the same as the selective evaluation (every threshold crossed either way)."""
    values = VALUES
    fast, ref = TagEngine(RULESETS[which]), Reference(RULESETS[which])
    state = None
    for n, etype in enumerate(history):
        state = fast.on_event(state, Event(f"e{n}", "u1", T0 + n * 60_000, etype,
                                           STREAM_OF[etype], props={"amount": 100})).state
    for target in ("convert", "at_risk", "value"):
        for old in values:
            for new in values:
                st_ = _roundtrip(state)
                fast.on_scores(st_, {target: old}, st_["now"])   # (as the reference would)
                a = ref.on_scores(_roundtrip(st_), {target: new}, st_["now"])
                b = fast.on_scores(_roundtrip(st_), {target: new}, st_["now"])
                assert _out(a) == _out(b), (target, old, new)


@pytest.mark.parametrize("first", [0, 1])
def test_no_shortcut_after_a_rule_set_switch(make_event, first):
    """A state last evaluated under another rule set (hot reload) gets the full evaluation
    (every tag, the rule set's version written), so the shortcut must not be taken."""
    fast, ref = TagEngine(RULESETS[first]), Reference(RULESETS[first])
    st_ = fast.on_event(None, make_event("course_view")).state
    fast.ruleset = ref.ruleset = RULESETS[1 - first]
    a = ref.on_scores(_roundtrip(st_), {"convert": 0.1}, st_["now"])
    b = fast.on_scores(_roundtrip(st_), {"convert": 0.1}, st_["now"])
    assert _out(a) == _out(b) and b.state["rv"] == RULESETS[1 - first].version
