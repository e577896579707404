"""QA41 F1: an outcome label's ``value`` and ``event_ts`` are read at the door and fail closed.
Before, ``int(bool(value))`` made ``"0"``, ``"false"``, ``-1`` and ``0.3`` positives, and an ISO
``event_ts`` was ignored (the snapshots taken after the outcome were learned)."""

from __future__ import annotations

import orjson
import pytest

from stream_app.errors import EventError
from stream_app.events import Event, parse_event
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from tests.unit.scoring.fixtures import DAY, T0, config


def _outcome(value, **props):
    return orjson.dumps({"event_id": "l1", "user_id": "u", "ts": T0, "type": "outcome",
                         "props": {"target": "convert", "value": value, **props}})


@pytest.mark.parametrize(("value", "y"), [
    (0, 0), (1, 1), (True, 1), (False, 0), (0.0, 0), (1.0, 1), ("0", 0), ("1", 1),
    (" False ", 0), ("TRUE", 1)])
def test_a_truth_is_read_as_its_value(value, y) -> None:
    assert parse_event(_outcome(value), "label").props["value"] == y


@pytest.mark.parametrize("value", ["no", "", "2", 2, -1, 0.3, [0], None, "ture"])
def test_anything_else_is_dead_lettered_as_bad_label(value) -> None:
    with pytest.raises(EventError) as exc:
        parse_event(_outcome(value), "label")
    assert exc.value.reason == "bad_label"


def test_event_ts_is_read_as_ts_is() -> None:
    ev = parse_event(_outcome(1, event_ts="2024-05-01T10:00:00+08:00"), "label")
    assert ev.props["event_ts"] == 1714528800000
    for bad in ("garbage", True, "2024-05-01T10:00:00", 1.5):
        with pytest.raises(EventError) as exc:
            parse_event(_outcome(1, event_ts=bad), "label")
        assert exc.value.reason == "bad_label"


def test_a_checkpoint_and_other_streams_are_not_read_as_outcomes() -> None:
    raw = orjson.dumps({"event_id": "c", "user_id": "u", "ts": T0, "type": "checkpoint",
                        "props": {"target": "convert", "group": "d1", "value": "x"}})
    assert parse_event(raw, "label").props["value"] == "x"
    raw = orjson.dumps({"event_id": "c", "user_id": "u", "ts": T0, "type": "outcome",
                        "props": {"value": "x"}})
    assert parse_event(raw, "click").props["value"] == "x"


def test_the_scorer_learns_no_pair_from_an_unread_truth() -> None:
    """The offline path without validation hands the scorer raw props: no pairs, no flip."""
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None, targets=["convert"])
    st = sc.on_event(None, Event("a", "u", T0, "course_view", "click")).sc_state
    st = sc.on_event(st, Event("c", "u", T0 + DAY, "checkpoint", "label",
                               props={"target": "convert", "group": "g"})).sc_state
    s = sc.on_event(st, Event("o", "u", T0 + 2 * DAY, "outcome", "label",
                              props={"target": "convert", "value": "0"}))
    assert s.training and {t.y for t in s.training} == {0}
    st = sc.on_event(s.sc_state, Event("c2", "u", T0 + 3 * DAY, "checkpoint", "label",
                                       props={"target": "convert", "group": "g2"})).sc_state
    s = sc.on_event(st, Event("o2", "u", T0 + 4 * DAY, "outcome", "label",
                              props={"target": "convert", "value": "maybe"}))
    assert s.training == [] and s.checkpoints == []
