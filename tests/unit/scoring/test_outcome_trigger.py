"""QA33 F2 and F4: what an outcome is learned from depends on when it happened (its
triggering event), not on when, or in which topic order, its label was read."""

import pytest

from stream_app.events import Event
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from tests.unit.scoring.fixtures import DAY, T0, config, ev, label

MIN = 60_000


def _scorer(**kw):
    cfg = config()
    return Scorer(cfg, ModelRegistry(cfg), alert_policy=None, **kw)


def _run(sc, events):
    st, training, checkpoints = None, [], []
    for e in events:
        s = sc.on_event(st, e)
        st = s.sc_state
        training += s.training
        checkpoints += s.checkpoints
    return st, training, checkpoints


@pytest.mark.parametrize(("target", "trigger", "stream"), [
    ("at_risk", "unregistered", "profile"), ("convert", "order_paid", "order")])
def test_checkpoint_after_the_trigger_is_neither_learned_nor_evaluated(target, trigger,
                                                                       stream):
    """F2: a checkpoint between the outcome (event_ts) and its delayed label holds the
    outcome event; the one before it is still resolved and learned."""
    sc = _scorer(targets=[target])
    _, training, cps = _run(sc, [
        Event("a", "u", T0, "course_started", "study"),
        Event("b", "u", T0 + 1 * DAY, "lesson_attended", "study"),
        label("u", T0 + 2 * DAY, "checkpoint", target=target, group="before"),
        Event("w", "u", T0 + 5 * DAY, trigger, stream),
        label("u", T0 + 6 * DAY, "checkpoint", target=target, group="after"),
        label("u", T0 + 8 * DAY, "outcome", target=target, value=1, event_ts=T0 + 5 * DAY)])
    assert [c["group"] for c in cps] == ["before"]
    assert training and all(t.ts < T0 + 5 * DAY for t in training)
    assert not any(k.startswith(trigger) or k == f"funnel|{trigger}"
                   for t in training for k in t.x)
    assert sum(t.gate for t in training) == 1


def test_checkpoint_after_the_trigger_is_dropped_not_left_for_the_next_outcome():
    sc = _scorer(targets=["at_risk"])
    st, _, _ = _run(sc, [
        Event("a", "u", T0, "course_started", "study"),
        label("u", T0 + 6 * DAY, "checkpoint", target="at_risk", group="after"),
        label("u", T0 + 8 * DAY, "outcome", target="at_risk", value=1, event_ts=T0 + 5 * DAY)])
    assert not st.get("cp")


def _pairs(training):
    return sorted((t.ts, t.y, t.gate, sorted(t.x.items())) for t in training)


def _order_and_label(order_ts, label_ts):
    order = Event("o", "u", order_ts, "order_paid", "order", props={"amount": 999})
    crm = label("u", label_ts, "outcome", target="convert", value=1, event_ts=order_ts)
    return order, crm


@pytest.mark.parametrize("order_day", [2.0, 3.0])   # 3.0: the order passes a schedule point
def test_a_label_read_before_its_order_is_learned_once_as_in_file_order(order_day):
    """F4: the CRM outcome (label topic) and its order_paid (order topic) in either order
    give the same training pairs, one gate pair."""
    base = [ev("u", T0, "course_view"), ev("u", T0 + 2 * DAY - 5 * MIN, "cart_add")]
    order, crm = _order_and_label(T0 + int(order_day * DAY), T0 + int(order_day * DAY) + MIN)
    _, file_order, _ = _run(_scorer(targets=["convert"]), [*base, order, crm])
    _, label_first, _ = _run(_scorer(targets=["convert"]), [*base, crm, order])
    assert sum(t.gate for t in file_order) == sum(t.gate for t in label_first) == 1
    assert len(file_order) == len(label_first)
    strip = lambda pairs: [(ts, y, x) for ts, y, _, x in pairs]  # noqa: E731
    assert strip(_pairs(file_order)) == strip(_pairs(label_first))
    if order_day == 2.0:
        assert _pairs(file_order) == _pairs(label_first)


def test_a_crm_label_days_after_its_order_is_not_learned_again():
    """Keyed on when the outcome happened: a CRM label three days late, naming the order's
    time, is the same truth."""
    base = [ev("u", T0, "course_view"), ev("u", T0 + 2 * DAY, "cart_add")]
    order, crm = _order_and_label(T0 + 2 * DAY + 10 * MIN, T0 + 5 * DAY)
    later = ev("u", T0 + 4 * DAY, "course_view")
    _, training, _ = _run(_scorer(targets=["convert"]), [*base, order, later, crm])
    assert sum(t.gate for t in training) == 1
    assert all(t.ts <= T0 + 2 * DAY + 10 * MIN for t in training)


def test_another_outcome_later_is_learned():
    base = [ev("u", T0, "course_view"), ev("u", T0 + 2 * DAY, "cart_add")]
    order, _ = _order_and_label(T0 + 2 * DAY + 10 * MIN, 0)
    again = [ev("u", T0 + 20 * DAY, "course_view"),
             Event("o2", "u", T0 + 30 * DAY, "order_paid", "order", props={"amount": 5})]
    _, training, _ = _run(_scorer(targets=["convert"]), [*base, order, *again])
    assert sum(t.gate for t in training) == 2


def test_a_state_of_an_earlier_release_still_dedupes():
    """``yo`` entries written before QA33 hold [label ts, y] (no trigger time)."""
    sc = _scorer(targets=["convert"])
    st, _, _ = _run(sc, [ev("u", T0, "course_view"), ev("u", T0 + 2 * DAY, "cart_add")])
    order, crm = _order_and_label(T0 + 2 * DAY + 10 * MIN, T0 + 2 * DAY + 11 * MIN)
    s = sc.on_event(st, order)
    assert sum(t.gate for t in s.training) == 1
    s.sc_state["yo"]["convert"] = s.sc_state["yo"]["convert"][:2]
    assert sc.on_event(s.sc_state, crm).training == []
