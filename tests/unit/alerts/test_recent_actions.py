"""An alert's ``recent_actions`` and ``next_step`` (QA34 F3, F4).

F3: the referral events the workers derive for the inviter (topics.yaml ``derived_types``)
were listed as ``{"zh": "invitee_registered", "en": "invitee_registered"}``: every event type
an alert can list has zh and en words now. F4: the list was the order the worker read the
events in (across topics, not time order), and the next step was picked from it: now newest
first in event time, the next step from the newest action. Actions dated after the alert's
own ``ts`` (read before its triggering event) are listed too and can pick the next step:
they are what the lead did, known when the alert goes out.
"""

from __future__ import annotations

import random
from typing import Any

import jsonschema
import pytest

from stream_app.alerts.policy import HOUR_MS, AlertPolicy
from stream_app.contract import load_contract
from stream_app.events import Event
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer, ScoreStep
from tests.unit.scoring.fixtures import T0, config

HIGH = {"intent": "high", "lead_points": 16}
SCHEMA = load_contract().schema("alerts.hot_lead")


def _types_by_stream() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for spec in load_contract().topics.values():
        if spec.role == "input" and spec.stream:
            out.setdefault(spec.stream, set()).update(spec.types, spec.derived_types)
    return out


def _listed_types() -> set[str]:
    """Every type of the topic contract the scorer keeps among a user's recent actions (the
    ones an alert lists), found by feeding each to a scorer on its topic's stream."""
    cfg = config()
    listed = set()
    for stream, types in _types_by_stream().items():
        for t in types:
            sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
            st = sc.on_event(None, Event("e1", "u1", T0, t, stream,
                                         props={"target": "convert"})).sc_state
            listed.update(etype for _, etype in st.get("ra") or ())
    return listed


def test_every_event_type_an_alert_can_list_has_zh_and_en_words() -> None:
    contract = load_contract().topic("events.profile")
    listed = _listed_types()
    # what the alerts list: the producers' types and the workers' derived referral types
    assert set(contract.derived_types) <= listed
    assert {"course_view", "lesson_missed", "trial_purchased", "registered"} <= listed
    words = AlertPolicy.from_config(config()).words
    actions = {t: words.action(t) for t in listed}
    # (an English word may be the type's name, "search"; the Chinese never is)
    raw = {t: w for t, w in actions.items()
           if not (w["zh"] and w["en"]) or w["zh"] == t
           or not {"zh", "en"} <= set(words.labels.get(t) or {})}
    assert raw == {}


def test_every_type_of_the_producers_and_the_workers_has_words() -> None:
    """Also the types the scorer leaves out of the recent actions (deletion_requested), so a
    type that starts to be listed already has its words: all of the contract's action
    topics (not the labels, checkpoints and feedback verdicts)."""
    labels = AlertPolicy.from_config(config()).words.labels
    types = set().union(*(t for s, t in _types_by_stream().items()
                          if s not in ("label", "feedback")))
    assert {t for t in types if not {"zh", "en"} <= set(labels.get(t) or {})} == set()


def _alert(ra: list[list[Any]], ts: int, etype: str = "trial_booked") -> dict[str, Any]:
    policy = AlertPolicy.from_config(config())
    st: dict[str, Any] = {"tot": {"course_view": 1}, "ra": [list(a) for a in ra]}
    step = ScoreStep(st, {"convert": 0.3}, {"convert": "high"}, {"convert": "rules"})
    [a] = [a for a in policy.decide(st, Event("e9", "u1", ts, etype, "click"), {}, step, None,
                                    HIGH) if a["kind"] == "hot_lead"]
    jsonschema.validate(a, SCHEMA)
    return a


def test_recent_actions_are_newest_first_and_the_next_step_is_the_newest_s() -> None:
    """hot_lead:u0008297:s42-8297-10 of the QA run: the trial purchase (the order topic, read
    first) is the lead's latest action; the alert came on the trial booking read after it."""
    h = HOUR_MS
    ra = [[T0 + 9 * h, "trial_purchased"], [T0 + h, "course_view"],
          [T0 + 3 * h, "consult_request"], [T0 + 2 * h, "trial_booked"]]
    a = _alert(ra, T0 + 2 * h)
    assert [r["type"] for r in a["recent_actions"]] == [
        "trial_purchased", "consult_request", "trial_booked", "course_view"]
    # dated after the alert (read before the trigger): listed, and it picks the next step
    assert a["recent_actions"][0]["ts"] > a["ts"]
    assert a["next_step"]["en"] == "Follow up within 24 hours of the trial"
    assert a["recent_actions"][0]["en"] == "trial purchase"


def test_actions_of_one_time_keep_the_later_read_first() -> None:
    a = _alert([[T0, "cart_add"], [T0, "trial_booked"], [T0 - 1, "course_view"]], T0)
    assert [r["type"] for r in a["recent_actions"]] == ["trial_booked", "cart_add",
                                                        "course_view"]
    assert a["next_step"]["en"].startswith("Call before the trial lesson")


@pytest.mark.parametrize("seed", range(20))
def test_any_read_order_gives_time_order(seed: int) -> None:
    rng = random.Random(seed)
    types = ["course_view", "trial_booked", "cart_add", "consult_request", "trial_purchased",
             "coupon_claimed", "page_view", "invitee_registered"]
    ra = [[T0 + rng.randrange(0, 48) * HOUR_MS, rng.choice(types)] for _ in range(5)]
    a = _alert(ra, T0 + 24 * HOUR_MS)
    ts = [r["ts"] for r in a["recent_actions"]]
    assert ts == sorted(ts, reverse=True) and len(ts) == len(ra)
    steps = AlertPolicy.from_config(config()).kinds["hot_lead"].next_steps
    want = next((steps[r["type"]] for r in a["recent_actions"] if r["type"] in steps),
                steps["default"])
    assert a["next_step"] == want


def test_a_derived_referral_action_reads_in_words_in_an_alert() -> None:
    """The inviter's derived events (stream_app.rules.derive), through the scorer."""
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=AlertPolicy.from_config(cfg))
    st = None
    events = [Event("ref:u2:invitee_registered", "u1", T0, "invitee_registered", "profile",
                    props={"invitee": "u2"})]
    events += [Event(f"e{i}", "u1", T0 + (i + 1) * 60_000, t, "click")
               for i, t in enumerate(["course_view", "trial_booked", "consult_request",
                                      "cart_add"])]
    alerts = []
    for e in events:
        step = sc.on_event(st, e, HIGH if e.type == "cart_add" else {"intent": "medium"})
        st = step.sc_state
        alerts += step.alerts
    [a] = [a for a in alerts if a["kind"] == "hot_lead"]
    jsonschema.validate(a, SCHEMA)
    ref = [r for r in a["recent_actions"] if r["type"] == "invitee_registered"]
    assert ref == [{"ts": T0, "type": "invitee_registered", "zh": "邀请的好友注册",
                    "en": "invitee sign-up"}]


def test_an_old_event_read_late_does_not_push_a_newer_action_off_the_list() -> None:
    """The scorer keeps the five newest actions in event time, not the last five read."""
    from stream_app.scoring.scorer import RECENT_ACTIONS

    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    t0 = T0
    st = None
    for i in range(RECENT_ACTIONS):
        st = sc.on_event(st, Event(f"e{i}", "u1", t0 + i * 60_000, "course_view", "click")).sc_state
    late = Event("late", "u1", t0 - 86_400_000, "trial_booked", "click")   # a day older
    st = sc.on_event(st, late).sc_state
    kept = sorted(ts for ts, _ in st["ra"])
    assert kept == [t0 + i * 60_000 for i in range(RECENT_ACTIONS)]
