"""Derived events: what one user's event means for another user (referral progress).

When an invitee whose events carry a referrer (``props.referrer`` / ``props.inviter_id``)
reaches a configured stage (e.g. ``registered`` -> ``invitee_registered``), an event of the
derived type is emitted for the inviter, once per stage per invitee. The agent re-publishes
it keyed by the inviter, so the inviter's own state and tags change. The derived event id is
deterministic (``ref:<invitee>:<type>``), so re-emission after a retry is de-duplicated.

Example:
    >>> from stream_app.events import Event
    >>> from stream_app.rules.model import Referral
    >>> from stream_app.state import new_state
    >>> st = new_state("u2"); st["n"]["registered"] = 1
    >>> ev = Event("e9", "u2", 1000, "registered", "profile", props={"referrer": "u1"})
    >>> out = referral_events(st, ev, Referral(stages={"registered": "invitee_registered"}))
    >>> [(d["user_id"], d["type"], d["event_id"]) for d in out]
    [('u1', 'invitee_registered', 'ref:u2:invitee_registered')]
    >>> referral_events(st, ev, Referral(stages={"registered": "invitee_registered"}))
    []
"""

from __future__ import annotations

import hashlib
from typing import Any

from stream_app.events import Event
from stream_app.rules.model import Referral

MAX_ID = 128   # event.schema.json: event_id and user_id are at most 128 characters
DERIVED_STREAM = "profile"  # re-published on events.profile: not a visit


def referral_events(state: dict[str, Any], ev: Event, referral: Referral) -> list[dict[str, Any]]:
    """Derived events for the inviter (updates ``state["ref"]``)."""
    if not referral.stages:
        return []
    ref = state.get("ref")
    if ref is None:
        for p in referral.props:
            v = ev.props.get(p)
            if isinstance(v, str) and v and len(v) <= MAX_ID and v != state["uid"]:
                ref = state["ref"] = {"by": v, "at": [ev.ts, ev.event_id], "sent": []}
                break
        else:
            return []
    out = []
    counts = state["n"]
    for stage_type, derived in sorted(referral.stages.items()):
        if counts.get(stage_type) and derived not in ref["sent"]:
            ref["sent"].append(derived)
            out.append({"event_id": _derived_id(state["uid"], derived), "user_id": ref["by"],
                        "ts": ev.ts, "type": derived, "stream": DERIVED_STREAM,
                        "tenant": state.get("tenant", "default"),
                        "props": {"invitee": state["uid"], "invitee_event": stage_type}})
    return out


def _derived_id(uid: str, derived: str) -> str:
    """``ref:<invitee>:<type>``, with the invitee hashed when the id would be too long.

    >>> _derived_id("u2", "invitee_bought")
    'ref:u2:invitee_bought'
    >>> len(_derived_id("x" * 128, "invitee_bought")) <= MAX_ID
    True
    """
    eid = f"ref:{uid}:{derived}"
    if len(eid) > MAX_ID:
        eid = f"ref:#{hashlib.sha1(uid.encode()).hexdigest()}:{derived}"[:MAX_ID]
    return eid
