"""Redis key layout of the profile/segment projection (shared by writers and the API).

All keys of a tenant start with ``sa:{tenant}:`` so tenants never see each other's data.

=================================  ======  ==============================================
key                                type    content
=================================  ======  ==============================================
``sa:{t}:user:{uid}``              hash    ``tag:<tag_id>`` -> JSON value, ``score:<target>``
                                           -> float, ``layer:<target>`` -> str, ``upd`` -> ms
``sa:{t}:seg:{tag_id}={value}``    set     user ids holding that (enumerated/boolean) value
``sa:{t}:num:{tag_id}``            zset    user id -> value, for numeric tags
``sa:{t}:why:{uid}``               hash    tag_id -> compact JSON "why" record of the current
                                           value (see ``compact_why``)
``sa:{t}:timeline:{uid}``          list    newest-first compact tag changes (the last
                                           ``TIMELINE_MAX``; the full history is the
                                           ``tags.changes`` topic)
``sa:{t}:vals:{tag_id}``           set     values present of enumerated/text/set tags
``sa:{t}:users``                   set     every user id of the tenant (for NOT)
``sa:tenants``                     set     tenant names
=================================  ======  ==============================================

Example:
    >>> user_key("default", "u1"), seg_key("default", "activity", "high")
    ('sa:default:user:u1', 'sa:default:seg:activity=high')
    >>> seg_key("t1", "refund", True)
    'sa:t1:seg:refund=true'
"""

from __future__ import annotations

from typing import Any

import orjson

PREFIX = "sa"
TIMELINE_MAX = 8
"""Tag changes kept per user in Redis (newest first); older ones are on ``tags.changes``."""
WHY_VALUES_MAX = 64
"""The evidence (``values``) of a why record is kept in Redis when its JSON is this short."""
TIMELINE_FIELDS = ("tag_id", "old", "new", "reason", "ts", "seq", "trigger", "rule_version")
"""Fields of a tag-change record kept in the Redis timeline (no evidence, no ids)."""


def value_token(value: Any) -> str:
    """Canonical text of a tag value inside a key (``True`` -> ``true``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def user_key(tenant: str, uid: str) -> str:
    return f"{PREFIX}:{tenant}:user:{uid}"


def seg_key(tenant: str, tag_id: str, value: Any) -> str:
    return f"{PREFIX}:{tenant}:seg:{tag_id}={value_token(value)}"


def num_key(tenant: str, tag_id: str) -> str:
    return f"{PREFIX}:{tenant}:num:{tag_id}"


def why_key(tenant: str, uid: str) -> str:
    return f"{PREFIX}:{tenant}:why:{uid}"


def timeline_key(tenant: str, uid: str) -> str:
    return f"{PREFIX}:{tenant}:timeline:{uid}"


def values_key(tenant: str, tag_id: str) -> str:
    return f"{PREFIX}:{tenant}:vals:{tag_id}"


def users_key(tenant: str) -> str:
    return f"{PREFIX}:{tenant}:users"


TENANTS_KEY = f"{PREFIX}:tenants"


def compact_change(change: dict[str, Any]) -> dict[str, Any]:
    """The timeline entry of a tag-change record: without the evidence and the fields every
    entry of the user's list shares (user, tenant, event id, family).

    Example:
        >>> compact_change({"user_id": "u1", "tenant": "t", "tag_id": "activity", "old": None,
        ...                 "new": "low", "seq": 3, "evidence": {"values": {}}})
        {'tag_id': 'activity', 'old': None, 'new': 'low', 'seq': 3}
    """
    return {k: change[k] for k in TIMELINE_FIELDS if k in change}


def compact_why(tag_id: str, why: dict[str, Any]) -> dict[str, Any]:
    """The why record as stored in Redis: no ``recent_events`` (on ``tags.changes``), no
    ``value`` (in the user hash), no ``rule`` when it is the tag id, ``values`` only when its
    JSON is at most ``WHY_VALUES_MAX`` bytes (else ``values_omitted: true``).
    :func:`expand_why` restores ``rule``.

    Example:
        >>> w = compact_why("activity", {"rule": "activity", "rule_version": 1,
        ...     "values": {"count(x)": 4}, "value": "high", "trigger": "e9",
        ...     "recent_events": ["e7", "e8", "e9"]})
        >>> w
        {'rule_version': 1, 'values': {'count(x)': 4}, 'trigger': 'e9'}
        >>> expand_why("activity", w)["rule"]
        'activity'
    """
    out = {k: v for k, v in why.items()
           if k not in ("recent_events", "value") and not (k == "rule" and v == tag_id)}
    vals = out.get("values")
    if vals is not None and len(orjson.dumps(vals)) > WHY_VALUES_MAX:
        del out["values"]
        out["values_omitted"] = True
    return out


def expand_why(tag_id: str, stored: dict[str, Any]) -> dict[str, Any]:
    """A stored why record as the API shows it (``rule`` restored)."""
    return {"rule": tag_id, **stored} if isinstance(stored, dict) else stored
