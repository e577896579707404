"""Delayed labels are joined to the snapshots the user had when scored, never later ones."""

from dataclasses import replace

from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from tests.unit.scoring.fixtures import DAY, HOUR, T0, config, ev, label


def _scorer(**kw):
    cfg = config()
    return Scorer(cfg, ModelRegistry(cfg), alert_policy=None, **kw)


def _run(sc, events, st=None):
    steps = []
    for e in events:
        s = sc.on_event(st, e)
        st = s.sc_state
        steps.append(s)
    return st, steps


def test_order_paid_learns_from_the_snapshot_before_the_order():
    sc = _scorer()
    st, steps = _run(sc, [ev("u", T0, "course_view"), ev("u", T0 + 2 * DAY, "trial_booked"),
                          ev("u", T0 + 3 * DAY, "order_paid", "order", amount=100)])
    tr = steps[-1].training
    assert tr and all(t.target == "convert" and t.y == 1 for t in tr)
    for t in tr:
        assert "order_paid|n" not in t.x and "#amount|n" not in t.x
        assert t.ts <= T0 + 3 * DAY
    # the snapshots were consumed
    assert not st["sn"]["convert"]


def test_outcome_uses_only_snapshots_before_its_triggering_event():
    sc = _scorer()
    st, _ = _run(sc, [ev("u", T0, "course_view"), ev("u", T0 + 2 * DAY, "search"),
                      ev("u", T0 + 4 * DAY, "live_enter")])
    snap_ts = [s[0] for s in st["sn"]["convert"]]
    # on the schedule (1, 3 days since first seen), as of the schedule point
    assert snap_ts == [T0 + DAY, T0 + 3 * DAY]
    s = sc.on_event(st, label("u", T0 + 9 * DAY, "outcome", target="convert", value=0,
                              event_ts=T0 + 2 * DAY))
    assert [t.ts for t in s.training] == [T0 + DAY]
    assert "search|n" not in s.training[0].x      # the day-2 search came after that point
    assert all(t.y == 0 for t in s.training)


def test_checkpoints_resolve_per_target_and_group():
    sc = _scorer()
    st, _ = _run(sc, [ev("u", T0, "lesson_attended", "study"),
                      label("u", T0 + DAY, "checkpoint", target="at_risk", group="g10"),
                      label("u", T0 + DAY, "checkpoint", target="convert", group="c1"),
                      label("u", T0 + 2 * DAY, "checkpoint", target="at_risk", group="g20")])
    s = sc.on_event(st, label("u", T0 + 5 * DAY, "outcome", target="at_risk", value=1))
    assert sorted(c["group"] for c in s.checkpoints) == ["g10", "g20"]
    assert all(c["y"] == 1 and c["target"] == "at_risk" for c in s.checkpoints)
    # the convert checkpoint is still open
    assert [cp[2] for cp in s.sc_state["cp"]] == ["c1"]


def test_checkpoint_records_without_learning():
    sc = _scorer()
    st, steps = _run(sc, [ev("u", T0, "course_view"),
                          label("u", T0 + DAY, "checkpoint", target="convert", group="g")])
    assert steps[-1].training == [] and steps[-1].checkpoints == []
    assert st["cp"][0][2] == "g"


def test_snapshots_are_bounded():
    sc = _scorer()
    st, _ = _run(sc, [ev("u", T0 + d * DAY, "course_view") for d in range(200)])
    assert [round((s[0] - T0) / DAY) for s in st["sn"]["convert"]] == [1, 3, 7, 14, 30, 60, 120]
    # a daily snapshot as well, bounded by max_per_target
    cfg = config()
    cfg = replace(cfg, snapshots=replace(cfg.snapshots, every_days=1, max_per_target=5))
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    st, _ = _run(sc, [ev("u", T0 + d * DAY, "course_view") for d in range(30)])
    assert len(st["sn"]["convert"]) == 5
    st, _ = _run(sc, [ev("v", T0 + h * HOUR, "course_view") for h in range(20)])
    assert len(st["sn"]["convert"]) == 1       # all within one day: one snapshot


def test_a_repeated_outcome_is_not_learned_twice():
    sc = _scorer()
    st, steps = _run(sc, [ev("u", T0, "course_view"), ev("u", T0 + DAY, "course_view"),
                          ev("u", T0 + 2 * DAY, "order_paid", "order"),
                          label("u", T0 + 2 * DAY + 60_000, "outcome", target="convert",
                                value=1)])
    assert steps[2].training and steps[3].training == []


def test_feedback_flows_back_as_a_label():
    sc = _scorer()
    st, _ = _run(sc, [ev("u", T0, "course_view"), ev("u", T0 + DAY, "course_view")])
    s = sc.on_event(st, ev("u", T0 + 2 * DAY, "alert_feedback", "feedback", verdict="converted"))
    assert s.training and all(t.target == "convert" and t.y == 1 for t in s.training)
    st, _ = _run(sc, [ev("v", T0, "course_view"), ev("v", T0 + 2 * DAY, "course_view")])
    s = sc.on_event(st, ev("v", T0 + 3 * DAY, "alert_feedback", "feedback", verdict="Not useful"))
    assert s.training and all(t.target == "convert" and t.y == 0 for t in s.training)
    s = sc.on_event(s.sc_state, ev("v", T0 + 9 * DAY, "alert_feedback", "feedback",
                                   verdict="useful"))
    assert s.training == []              # "useful" is about the alert, not an outcome


def test_a_scorer_for_some_targets_joins_labels_of_those_only():
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None, targets=["at_risk"])
    st, steps = _run(sc, [ev("u", T0, "course_view"), ev("u", T0 + 2 * DAY, "lesson_missed"),
                          ev("u", T0 + 3 * DAY, "order_paid", "order"),
                          label("u", T0 + 4 * DAY, "outcome", target="convert", value=1)])
    assert all(not s.training for s in steps)
    s = sc.on_event(st, label("u", T0 + 5 * DAY, "outcome", target="at_risk", value=1))
    assert s.training and {t.target for t in s.training} == {"at_risk"}
