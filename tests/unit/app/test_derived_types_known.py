"""The workers' own derived referral events (``invitee_*``, :mod:`stream_app.rules.derive`)
are declared in the contract (topics/topics.yaml ``events.profile`` ``derived_types``), so the
worker does not count them in ``stream_app_events_unknown_type_total`` nor as type
``"unknown"`` in ``stream_app_events_consumed_total``; a type nobody declared still is (QA
session 26, F3: 672 "unknown" profile events on the dev stack were all the app's own).

The agent test runs the worker's ``handle_event`` (bench.glue_cost's fakes: no Kafka, no
Redis) in a subprocess: importing the agents builds the Faust app."""

from __future__ import annotations

import json

from stream_app.contract import load_contract
from stream_app.rules.derive import DERIVED_STREAM
from stream_app.rules.engine import DEFAULT_RULES
from stream_app.rules.loader import load_ruleset
from tests.unit.app.snippet import GLUE_FEED, last_line

CODE = GLUE_FEED + r"""
from stream_app.republished import DERIVED

# u2, invited by u1, registers: the worker derives invitee_registered for u1 ...
feed("events.click", "click", {"event_id": "c1", "user_id": "u1", "ts": now,
                               "type": "share", "props": {}})
feed("events.profile", "profile", {"event_id": "r2", "user_id": "u2", "ts": now + 1,
                                   "type": "registered", "props": {"inviter_id": "u1"}})
derived = [orjson.loads(r[2]) for r in side.producer.records
           if r[0] == "events.profile" and b"invitee_registered" in bytes(r[2])]
# ... and reads it back from events.profile, as it does from Kafka
for d in derived:
    feed("events.profile", "profile", d, DERIVED)
# a type nobody declared
feed("events.click", "click", {"event_id": "x1", "user_id": "u3", "ts": now + 2,
                               "type": "brand_new_action", "props": {}})
met.fold_tallies()


def value(name, **labels):
    return side.registry.get_sample_value(name, labels)


print(json.dumps({
    "derived": [d["type"] for d in derived],
    "inviter_tag": agents.load_state("u1", 0)[0]["tags"].get("invited_count"),
    "unknown_profile": value("stream_app_events_unknown_type_total", stream="profile"),
    "unknown_click": value("stream_app_events_unknown_type_total", stream="click"),
    "consumed_derived": value("stream_app_events_consumed_total", stream="profile",
                              type="invitee_registered"),
    "consumed_unknown_profile": value("stream_app_events_consumed_total", stream="profile",
                                      type="unknown"),
    "consumed_unknown_click": value("stream_app_events_consumed_total", stream="click",
                                    type="unknown"),
}))
"""


def test_derived_events_are_not_counted_as_unknown_types(tmp_path) -> None:
    out = json.loads(last_line(CODE, tmp_path))
    assert out["derived"] == ["invitee_registered"] and out["inviter_tag"] == 1
    assert out["consumed_derived"] == 1
    assert not out["unknown_profile"] and not out["consumed_unknown_profile"]
    # an undeclared type still counts as unknown
    assert out["unknown_click"] == 1 and out["consumed_unknown_click"] == 1


def test_every_derived_type_of_the_shipped_rules_is_declared_on_its_topic() -> None:
    """A referral stage added to config/rules needs its derived type in topics.yaml, or the
    worker counts its own events as unknown."""
    contract = load_contract()
    topic = contract.topic(contract.stream_topic(DERIVED_STREAM))
    derived = set(load_ruleset(DEFAULT_RULES).referral.stages.values())
    assert derived and derived <= set(topic.derived_types), derived - set(topic.derived_types)
    assert all(topic.derived_types[t].strip() for t in derived)      # described
    # the producers' types and the workers' own stay apart, and both are known
    assert not set(topic.types) & set(topic.derived_types)
    known = contract.known_types()
    assert derived | set(topic.types) <= known and "brand_new_action" not in known
