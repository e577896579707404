"""``prev()``: the value the tag being evaluated held before this evaluation (hysteresis).

Compiled only in a tag's own rule (a case's ``when`` or a ``value``), null for a user who
never held the tag, read from the values before the evaluation (not from ``ctx.tags``, which
the evaluation writes as it goes), on every path (a first event, later events, clock ticks,
score updates, a full evaluation, a rule-set switch), shown in the why record, and settled:
a rule whose value changes is run again with ``prev()`` = the new value until it gives it
back, so a selective evaluation equals a full one (test_property_selective covers it with
random steps). The default rules use it for ``intent`` (lead.yaml) and ``at_risk``
(learning.yaml): a lead whose points decay from 16 to 13 stays high.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from conftest import DAY, T0

from stream_app.errors import RuleError
from stream_app.rules.compiler import CompileError, EvalContext, compile_expr
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.explain import explain
from stream_app.rules.loader import load_ruleset, ruleset_from_text
from stream_app.rules.model import SETTLE_RUNS
from stream_app.state import Requirements, new_state

DEFAULT = load_ruleset(DEFAULT_RULES)
HIGH_CASE = DEFAULT.by_id["intent"].cases[1].when.text

HYST = """
version: "p.1"
params: {enter: 3, keep: 2}
tags:
  - {id: views, family: p, zh: 看, en: Views, kind: number, hidden: true,
     value: "count(course_view, 7d)"}
  - id: hot
    family: p
    zh: 热
    en: Hot
    kind: enum
    cases:
      - {value: null, when: "count(any) == 0"}
      - {value: hot, zh: 热, en: Hot,
         when: "tag(views) >= $enter or score.convert >= 0.8
                or (prev() == 'hot' and (tag(views) >= $keep or score.convert >= 0.5))"}
    default: {value: cold, zh: 冷, en: Cold}
  - {id: hot_viewer, family: p, zh: 热看, en: Hot viewer, kind: bool,
     value: "tag(hot) == 'hot' and count(course_view) > 0"}
"""


def _step(engine: TagEngine, state: dict[str, Any] | None, kind: str, arg: Any,
          full: TagEngine | None = None, s_full: dict[str, Any] | None = None):
    """One step on ``engine`` (and, when given, the same on the full engine ``full``, whose
    result must be the same): ("event", Event), ("tick", ms) or ("scores", {..}) at the
    state's clock."""
    def go(eng: TagEngine, st: dict[str, Any] | None):
        if kind == "event":
            return eng.on_event(st, arg)
        if kind == "tick":
            return eng.on_tick(st, arg)
        return eng.on_scores(st, arg, st["now"])
    r = go(engine, state)
    if full is not None:
        a = go(full, s_full)
        assert (a.changes, a.why, a.state) == (r.changes, r.why, r.state)
    return r


def _changes(r, tag: str) -> list[tuple[Any, Any]]:
    return [(c["old"], c["new"]) for c in r.changes if c["tag_id"] == tag]


def _roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(state))


# -- compiling -------------------------------------------------------------------------
def test_prev_compiles_in_a_tag_rule_only():
    c = compile_expr("prev() == 'high' or count(x) > 0", Requirements(), {}, tag_id="t")
    assert c.prev and c.deps == set()        # not a dependency (no cycle with itself)
    assert not compile_expr("count(x) > 0", Requirements(), {}, tag_id="t").prev
    with pytest.raises(CompileError) as exc:
        compile_expr("count(x) > 0 or prev() == 'high'", Requirements(), {})
    assert exc.value.column == 17
    assert "prev() is only valid in a tag's rule" in exc.value.message
    with pytest.raises(CompileError, match=r"prev\(\) takes no arguments.*tag\(id\)"):
        compile_expr("prev(intent) == 'high'", Requirements(), {}, tag_id="t")


def test_the_loader_names_file_line_rule_and_column_of_a_misused_prev():
    text = """tags:
  - id: x
    family: f
    zh: 甲
    en: X
    kind: bool
    value: "count(course_view) > 0 and prev(x) != true"
"""
    with pytest.raises(RuleError) as exc:
        ruleset_from_text(text, name="rules/x.yaml")
    assert str(exc.value).startswith("rules/x.yaml:7: rule 'x': value: prev() takes no "
                                     "arguments")
    assert str(exc.value).endswith("(column 28)")


def test_a_rule_reading_its_own_previous_value_is_no_cycle():
    rs = ruleset_from_text("""
tags:
  - {id: once, family: f, zh: 曾, en: Once, kind: bool,
     value: "prev() == true or count(order_paid) > 0"}
  - {id: self_ref, family: f, zh: 自, en: Self, kind: bool, value: "tag(once) and prev() != false"}
""")
    assert [t.id for t in rs.order] == ["once", "self_ref"]
    assert rs.prev_ids == (("once", False), ("self_ref", False))
    assert rs.history_ids == {"once", "self_ref"}
    with pytest.raises(RuleError, match="dependency cycle"):   # tag(own id) still is one
        ruleset_from_text("""
tags:
  - {id: loop, family: f, zh: 环, en: Loop, kind: bool, value: "tag(loop) == true"}
""")


# -- evaluating --------------------------------------------------------------------------
def test_the_first_evaluation_reads_null(make_event):
    """A new user never held the tag: prev() is null (not the tag's value on an empty state,
    which the first evaluation starts from), on the memoised first evaluation too; the why
    record shows it. A value is settled: ``if(prev() == null, 'new', 'known')`` is 'new' for
    one run only, so its value is 'known' from the first event on."""
    rs = ruleset_from_text(HYST + """
  - {id: seen, family: p, zh: 见, en: Seen, kind: text,
     value: "if(prev() == null, 'new', 'known')"}
""")
    assert rs.empty_values["seen"] == "known" and "hot" not in rs.empty_values
    eng, full = TagEngine(rs), TagEngine(rs, full=True)
    for user in ("a", "b"):           # "b": from the first evaluation memo
        r = _step(eng, None, "event", make_event("page_view", user=user), full, None)
        assert _changes(r, "hot") == [(None, "cold")]
        assert r.why["hot"]["values"] == {"count(any)": 1, "tag(views)": 0,
                                          "score.convert": None, "prev()": None}
        assert _changes(r, "seen") == [(None, "known")] and r.why["seen"]["values"] == {
            "prev()": None}
    assert len(eng._fresh) == 1
    ctx = EvalContext(new_state("u"), 0, 0)
    assert rs._run(rs.by_id["seen"], ctx) == ("known", None) and ctx.trace == {"prev()": None}


def test_hysteresis_keeps_the_value_through_events_and_ticks(make_event):
    """Hot from 3 views in 7 days, kept down to 2: the selective engine and the full one agree
    step by step, and a dependent follows."""
    rs = ruleset_from_text(HYST)
    eng, full = TagEngine(rs), TagEngine(rs, full=True)
    st = sf = None
    got = []
    steps = [("event", make_event("course_view")), ("event", make_event("course_view", day=1)),
             ("event", make_event("course_view", day=2)),      # 3 views: hot
             ("tick", T0 + 7 * DAY),                            # day 0 left: 2, kept
             ("tick", T0 + 8 * DAY),                            # 1: cold
             ("event", make_event("course_view", day=8, hour=1)),   # 2 again: stays cold
             ("event", make_event("course_view", day=8, hour=2))]   # 3: hot again
    for kind, arg in steps:
        r = _step(eng, st, kind, arg, full, sf)
        st, sf = _roundtrip(r.state), _roundtrip(r.state)
        got.append(_changes(r, "hot") + _changes(r, "hot_viewer"))
    assert got == [[(None, "cold"), (None, False)], [], [("cold", "hot"), (False, True)], [],
                   [("hot", "cold"), (True, False)], [], [("cold", "hot"), (False, True)]]


def test_on_scores_keeps_and_leaves_by_the_keep_threshold(make_event):
    """The score path at the event's clock (the shortcut: the comparisons with the keep
    threshold are score tests too) and at a later clock, against a full evaluation."""
    rs = ruleset_from_text(HYST)
    assert len(rs.score_tests["convert"]) == 2
    eng, full = TagEngine(rs), TagEngine(rs, full=True)
    r = _step(eng, None, "event", make_event("page_view"), full, None)
    st, sf = _roundtrip(r.state), _roundtrip(r.state)
    got = []
    for score in (0.85, 0.6, 0.5, 0.45, 0.6, 0.79, 0.8, None):
        r = _step(eng, st, "scores", {"convert": score}, full, sf)
        st, sf = _roundtrip(r.state), _roundtrip(r.state)
        got.append(_changes(r, "hot"))
    assert got == [[("cold", "hot")], [], [], [("hot", "cold")], [], [], [("cold", "hot")],
                   [("hot", "cold")]]
    assert eng._scores_moved({"convert": 0.55}, {"convert": 0.45}) == 2    # the keep test
    assert eng._scores_moved({"convert": 0.55}, {"convert": 0.65}) == 0
    r = eng.on_scores(st, {"convert": 0.9}, st["now"] + DAY)   # a later clock: _evaluate
    assert _changes(r, "hot") == [("cold", "hot")]


def test_a_full_evaluation_and_a_rule_set_switch_read_the_state_s_values(make_event):
    """A full evaluation (and the one after a hot reload) reads prev() from the values the
    state holds: a hot user stays hot when a new rule set with the same tag comes in."""
    rs = ruleset_from_text(HYST)
    eng = TagEngine(rs)
    st = None
    for d in (0, 1, 2):
        st = eng.on_event(st, make_event("course_view", day=d)).state
    st = eng.on_tick(st, T0 + 7 * DAY).state
    assert st["tags"]["hot"] == "hot" and st["hid"]["views"] == 2
    assert rs.evaluate(st, st["now"])["hot"].value == "hot"
    eng.ruleset = ruleset_from_text(HYST.replace('"p.1"', '"p.2"'))
    r = eng.on_tick(st, st["now"] + 1)
    assert r.state["rv"] == eng.ruleset.version and _changes(r, "hot") == []
    assert r.state["tags"]["hot"] == "hot"


def test_the_why_record_shows_the_value_before_when_it_decided(make_event):
    rs = ruleset_from_text(HYST)
    eng = TagEngine(rs)
    st = None
    for d in (0, 1, 2):
        st = eng.on_event(st, make_event("course_view", day=d)).state
    again = eng.on_event(_roundtrip(st), make_event("course_view", day=2, hour=1))
    assert "hot" not in again.why         # no change: no why record
    r = eng.on_tick(st, T0 + 8 * DAY)     # 1 view left: the keep term read prev() and failed
    w = r.why["hot"]
    assert w["value"] == "cold" and w["case"] == "default"
    assert w["values"]["prev()"] == "hot" and w["values"]["tag(views)"] == 1
    assert "  prev() = Hot (the value before)" in explain(w, rs, "en").splitlines()
    assert "  prev() = 热 (此前的值)" in explain(w, rs, "zh").splitlines()


def test_a_rule_that_settles_over_several_runs_and_one_that_never_does(make_event, caplog):
    """``two`` without its entry steps down to ``one``, then ``zero``: the value is the one
    it settles at (a full and a selective evaluation agree); an oscillating rule keeps its
    last run's value after SETTLE_RUNS runs, and is logged once."""
    rs = ruleset_from_text("""
tags:
  - id: step
    family: f
    zh: 阶
    en: Step
    kind: enum
    cases:
      - {value: two, zh: 二, en: Two, when: "count(course_view, 2d) >= 2"}
      - {value: one, zh: 一, en: One, when: "prev() == 'two'"}
    default: {value: zero, zh: 零, en: Zero}
  - {id: flip, family: f, zh: 翻, en: Flip, kind: bool, value: "prev() != true"}
""")
    eng, full = TagEngine(rs), TagEngine(rs, full=True)
    st = sf = None
    seen = []
    with caplog.at_level(logging.WARNING, logger="stream_app.rules.model"):
        for kind, arg in [("event", make_event("course_view")),
                          ("event", make_event("course_view", hour=1)),
                          ("tick", T0 + 2 * DAY)]:
            r = eng.on_event(st, arg) if kind == "event" else eng.on_tick(st, arg)
            a = full.on_event(sf, arg) if kind == "event" else full.on_tick(sf, arg)
            assert _changes(r, "step") == _changes(a, "step")
            seen.append(_changes(r, "step"))
            st, sf = _roundtrip(r.state), _roundtrip(a.state)
    assert seen == [[(None, "zero")], [("zero", "two")], [("two", "zero")]]
    assert SETTLE_RUNS == 4
    assert st["tags"]["flip"] is False     # from null: True, False, True, False (4th run)
    warned = [m for m in caplog.messages if "does not settle" in m]
    assert len(warned) == 1 and "'flip'" in warned[0]
    ctx = EvalContext(new_state("u"), 0, 0)
    ctx.prev = {"flip": True}              # False, True, False, True
    assert rs._run(rs.by_id["flip"], ctx) == (True, None) and ctx.prev == {"flip": True}


# -- the default rules: intent and at_risk ------------------------------------------------
def _lead(make_event, eng: TagEngine, full: TagEngine):
    """A lead at 16 points on day 0 (a cart add, a trial booking, three course views)."""
    st = sf = None
    for i, t in enumerate(["course_view", "course_view", "trial_booked", "course_view",
                           "cart_add"]):
        r = _step(eng, st, "event", make_event(t, hour=i), full, sf)
        st, sf = _roundtrip(r.state), _roundtrip(r.state)
    assert st["tags"]["lead_points"] == 16 and st["tags"]["intent"] == "high"
    return st


def test_a_lead_decaying_from_16_to_13_stays_high_and_leaves_below_12(make_event):
    """The regression test of lead.yaml's hysteresis (intent version 2): the points halve
    every 14 days; 13 keeps a high lead high (below intent_high_points, 15, at or above
    intent_keep_high_points, 12), 11 makes it medium, and actions back to 16 make it enter
    high again (a hot-lead alert's enter_layer trigger). Before, 13 made it medium."""
    eng, full = TagEngine(DEFAULT), TagEngine(DEFAULT, full=True)
    st = _lead(make_event, eng, full)
    sf = _roundtrip(st)
    got = []
    for day in (2, 4, 6, 7):
        r = _step(eng, st, "tick", T0 + day * DAY, full, sf)
        st, sf = _roundtrip(r.state), _roundtrip(r.state)
        got.append((st["tags"]["lead_points"], st["tags"]["intent"], _changes(r, "intent")))
    assert got == [(14, "high", []), (13, "high", []), (12, "high", []),
                   (11, "medium", [("high", "medium")])]
    w = r.why["intent"]
    assert w["values"]["prev()"] == "high" and w["values"]["tag(lead_points)"] == 11
    got = []
    for i in range(5):            # 11 + 5 course views: 16; high again from 15
        r = _step(eng, st, "event", make_event("course_view", day=7, hour=i), full, sf)
        st, sf = _roundtrip(r.state), _roundtrip(r.state)
        got.append((st["tags"]["lead_points"], _changes(r, "intent")))
        if _changes(r, "intent"):
            assert r.why["intent"]["case"] == HIGH_CASE
            # the entry term decided (the keep term, after it, did not run): no prev()
            assert r.why["intent"]["values"]["tag(lead_points)"] == 15
            assert "prev()" not in r.why["intent"]["values"]
    assert got == [(12, []), (13, []), (14, []), (15, [("medium", "high")]), (16, [])]


def test_a_medium_lead_at_13_points_does_not_enter_high(make_event):
    """The keep thresholds hold a high lead only: one that reaches 13 from below stays
    medium (hysteresis, not a lower entry threshold)."""
    eng = TagEngine(DEFAULT)
    st = None
    for i, t in enumerate(["course_view", "cart_add", "course_view", "course_view"]):
        st = eng.on_event(st, make_event(t, hour=i)).state
    assert (st["tags"]["lead_points"], st["tags"]["intent"]) == (13, "medium")


def _through_scores(make_event, etype: str, target: str, tag: str,
                    scores: tuple[float, ...]) -> tuple[list, tuple, dict, dict]:
    """A user with one ``etype`` event, then ``scores`` of ``target`` one after the other
    (the selective engine checked against a full one at each step): ``tag`` after each, the
    engines and the two states."""
    eng, full = TagEngine(DEFAULT), TagEngine(DEFAULT, full=True)
    r = _step(eng, None, "event", make_event(etype), full, None)
    st, sf = _roundtrip(r.state), _roundtrip(r.state)
    got = []
    for score in scores:
        r = _step(eng, st, "scores", {target: score}, full, sf)
        st, sf = _roundtrip(r.state), _roundtrip(r.state)
        got.append(st["tags"][tag])
    return got, (eng, full), st, sf


def test_the_model_score_keeps_a_high_lead_down_to_0_5(make_event):
    got, *_ = _through_scores(make_event, "course_view", "convert", "intent",
                              (0.6, 0.55, 0.5, 0.49, 0.55, 0.6))
    assert got == ["high", "high", "high", "medium", "medium", "high"]


def test_at_risk_from_the_model_stays_until_the_score_drops_below_0_6(make_event):
    """learning.yaml's at_risk (version 3): the model's score makes a learner at risk from
    0.7 and keeps one at risk down to 0.6; the missed-lessons and stall terms keep none."""
    got, (eng, full), st, sf = _through_scores(make_event, "lesson_attended", "at_risk",
                                               "at_risk", (0.65, 0.7, 0.65, 0.6, 0.59, 0.65))
    assert got == [False, True, True, True, False, False]
    # three missed lessons in a row, then one attended: at risk while the score keeps it (the
    # keep term reads the value before, not why it was true), else no longer
    for day, score, after in ((1, 0.65, True), (2, 0.5, False)):
        for i in range(3):
            r = _step(eng, st, "event", make_event("lesson_missed", day=day, hour=i), full, sf)
            st, sf = _roundtrip(r.state), _roundtrip(r.state)
        r = _step(eng, st, "scores", {"at_risk": score}, full, sf)
        st, sf = _roundtrip(r.state), _roundtrip(r.state)
        assert st["tags"]["at_risk"] is True and st["tags"]["consecutive_absences"] >= 3
        r = _step(eng, st, "event", make_event("lesson_attended", day=day, hour=5), full, sf)
        st, sf = _roundtrip(r.state), _roundtrip(r.state)
        assert st["tags"]["at_risk"] is after, (day, st["tags"], st["scores"])
    assert r.why["at_risk"]["values"]["prev()"] is True


def test_a_score_hovering_at_0_3_no_longer_flips_medium_and_low(make_event):
    """lead.yaml's medium band (intent version 5): the model's score makes a lead medium from
    intent_medium_score (0.3) and keeps one medium down to intent_keep_medium_score (0.25).
    Before, each score update across 0.3 flipped the tag: medium, low, medium, low..."""
    got, (eng, full), st, sf = _through_scores(
        make_event, "course_view", "convert", "intent",
        (0.31, 0.28, 0.32, 0.27, 0.3, 0.26, 0.24, 0.28, 0.29, 0.3))
    assert got == ["medium"] * 6 + ["low", "low", "low", "medium"]
    r = _step(eng, st, "scores", {"convert": 0.26}, full, sf)
    assert r.state["tags"]["intent"] == "medium" and _changes(r, "intent") == []


def test_decaying_points_keep_a_medium_lead_down_to_4(make_event):
    """The same band on the points: 5 course views make a lead medium (intent_medium_points);
    decayed to 4 it stays medium, below 4 it is low, and 4 from below is low (the band holds
    a medium lead only); a fifth point makes it enter medium again."""
    eng, full = TagEngine(DEFAULT), TagEngine(DEFAULT, full=True)
    st = sf = None
    for i in range(5):
        r = _step(eng, st, "event", make_event("course_view", hour=i), full, sf)
        st, sf = _roundtrip(r.state), _roundtrip(r.state)
    assert (st["tags"]["lead_points"], st["tags"]["intent"]) == (5, "medium")
    got = []
    for day in (4, 7, 10, 13):    # 14 days' half-life: 4.1, 3.5, 3.1, 2.6 (rounded)
        r = _step(eng, st, "tick", T0 + day * DAY, full, sf)
        st, sf = _roundtrip(r.state), _roundtrip(r.state)
        got.append((st["tags"]["lead_points"], st["tags"]["intent"], _changes(r, "intent")))
    assert got == [(4, "medium", []), (4, "medium", []), (3, "low", [("medium", "low")]),
                   (3, "low", [])]
    r = _step(eng, st, "event", make_event("course_view", day=13), full, sf)
    st, sf = _roundtrip(r.state), _roundtrip(r.state)
    assert (st["tags"]["lead_points"], st["tags"]["intent"]) == (4, "low")
    r = _step(eng, st, "event", make_event("course_view", day=13, hour=1), full, sf)
    assert (r.state["tags"]["lead_points"], r.state["tags"]["intent"]) == (5, "medium")
    assert _changes(r, "intent") == [("low", "medium")]


def test_the_keep_thresholds_lie_below_the_entry_ones() -> None:
    """Each band's keep thresholds lie below its entry ones (or an entry would not keep the
    value at the next evaluation: the rule would not settle), and medium's below high's."""
    p = DEFAULT.params
    assert p["intent_keep_medium_points"] < p["intent_medium_points"] \
        <= p["intent_keep_high_points"] < p["intent_high_points"]
    assert p["intent_keep_medium_score"] < p["intent_medium_score"] \
        <= p["intent_keep_high_score"] < p["intent_high_score"]
