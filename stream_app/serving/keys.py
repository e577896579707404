"""Redis key layout of the profile/segment projection (shared by writers and the API).

All keys of a tenant start with ``sa:{tenant}:`` so tenants never see each other's data.

=================================  ======  ==============================================
key                                type    content
=================================  ======  ==============================================
``sa:{t}:user:{uid}``              hash    ``tag:<tag_id>`` -> JSON value, ``score:<target>``
                                           -> float, ``layer:<target>`` -> str, ``upd`` -> ms
``sa:{t}:seg:{tag_id}={value}``    set     user ids holding that (enumerated/boolean) value
``sa:{t}:num:{tag_id}``            zset    user id -> value, for numeric tags
``sa:{t}:why:{uid}``               hash    tag_id -> JSON "why" record of the current value
``sa:{t}:timeline:{uid}``          list    newest-first JSON tag changes (bounded)
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
TIMELINE_MAX = 100


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
