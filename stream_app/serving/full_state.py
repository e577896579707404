"""One user's whole projection, written from its state: what ``redis-rebuild`` writes for
every user of the table, and what a worker writes for a user it is asked to re-project
(``redis-rebuild --live``).

Example:
    >>> st = {"uid": "u1", "tenant": "t1", "tags": {"activity": "low", "score": 3}}
    >>> sorted({op[0] for op in state_ops(st)})
    ['hset', 'lpush', 'ltrim', 'sadd', 'zadd']
    >>> state_ops({"uid": "u2", "tags": {}})       # no tags: still one of the tenant's users
    [('sadd', 'sa:default:users', 'u2'), ('sadd', 'sa:tenants', 'default')]
"""

from __future__ import annotations

from typing import Any

from stream_app.serving import keys
from stream_app.serving.projection import change_ops

State = dict[str, Any]

__all__ = ["LIVE_PAUSE_MAX_S", "REPROJECT", "REPROJECT_BEGIN", "REPROJECT_FLUSHED",
           "REPROJECT_PHASE", "TICKS_TOPIC", "state_ops", "why_records"]

#: the topic of the workers' clock ticks (``topics/topics.yaml``), processed by the owner of
#: each user in order with its events, and the value of a tick that asks for the user's whole
#: projection (followed by the request's id). ``redis-rebuild --live`` sends one
#: ``REPROJECT_BEGIN`` tick per partition before it deletes the projection: each worker then
#: holds its Redis writes (at most ``LIVE_PAUSE_MAX_S``) until the ``REPROJECT_FLUSHED`` tick
#: sent after the deletion, and writes whole what it writes (no cache of what Redis holds)
#: until the request's first ``REPROJECT`` tick.
TICKS_TOPIC = "internal.ticks"
REPROJECT = b"reproject:"
REPROJECT_BEGIN = b"reproject-begin:"
REPROJECT_FLUSHED = b"reproject-flushed:"
#: what the begin and flushed ticks start with (one test per tick on the worker)
REPROJECT_PHASE = b"reproject-"
LIVE_PAUSE_MAX_S = 120.0


def state_ops(state: State, why: dict[str, Any] | None = None,
              timeline: int = keys.TIMELINE_MAX) -> list[tuple[Any, ...]]:
    """Projection operations that write one table record's current tags (segment bitmaps,
    integer ids and numeric buckets through the projection's scripts)."""

    ops: list[tuple[Any, ...]] = []
    tenant = state.get("tenant") or "default"
    uid = state["uid"]
    for tag_id, value in sorted((state.get("tags") or {}).items()):
        if value is None:
            continue
        ch = {"user_id": uid, "tenant": tenant, "tag_id": tag_id, "old": None, "new": value,
              "seq": state.get("seq"), "reason": "rebuilt"}
        ops.extend(change_ops(ch, (why or {}).get(tag_id), timeline=timeline))
    if not ops:
        ops.append(("sadd", keys.users_key(tenant), uid))
        ops.append(("sadd", keys.TENANTS_KEY, tenant))
    return ops


def why_records(engine: Any, state: State) -> dict[str, Any]:
    """The rule explanation of each stored tag value that the current rules still give."""
    try:
        rs = engine.ruleset
        values = rs.evaluate(state, state.get("now") or 0, day_offset_ms=engine.day_offset_ms)
    except Exception:  # noqa: BLE001 - an old layout or a changed rule: tags without why
        return {}
    out = {}
    for tag_id, value in (state.get("tags") or {}).items():
        tv = values.get(tag_id) if hasattr(values, "get") else None
        if tv is not None and tv.value == value:
            out[tag_id] = dict(tv.why, ruleset=rs.version, trigger=None, rebuilt=True)
    return out
