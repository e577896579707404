"""A deleted user's marker: what the users table keeps of a user after a deletion request.

The worker deletes the user's state, tags and Redis traces at once (PIPL), but keeps this
record under the user's key for ``deletion_marker_days``: the user id, the tenant and the
time of the request, nothing else. An event of the user that is older than the request but
read after it (in a backlog, the deletion on ``events.profile`` can be read while the user's
older events still wait on a lagging partition of another topic) is dropped instead of
creating the user again; a later event starts a new user. When its time is up on the user's
partition of every input topic (the least advanced of them), the clock sweep replaces the
marker with a tombstone. Every changelog reader
(:class:`stream_app.cli.rebuild_cmd.TableReader`) reads it as a deleted user.

Example:
    >>> m = marker("u1", "default", 1_000, keep_ms=500)
    >>> m, is_marker(m), is_marker({"uid": "u1", "tags": {}}), is_marker(None)
    ({'uid': 'u1', 'tenant': 'default', 'deleted_at': 1000, 'nd': 1500}, True, False, False)
    >>> drops(m, 999), drops(m, 1_000), drops(m, 1_001)
    (True, True, False)
"""

from __future__ import annotations

from typing import Any

__all__ = ["DELETED_AT", "drops", "is_marker", "marker"]

#: the marker's own key (no user state has it)
DELETED_AT = "deleted_at"


def marker(user_id: str, tenant: str, deleted_ms: int, keep_ms: int) -> dict[str, Any]:
    """The marker of a deletion requested at ``deleted_ms``, kept until ``+ keep_ms``
    (``nd``: the due time the sweep reads, as for a state)."""
    return {"uid": user_id, "tenant": tenant, DELETED_AT: deleted_ms, "nd": deleted_ms + keep_ms}


def is_marker(state: dict[str, Any] | None) -> bool:
    """True if a table value is a deletion marker (not a user's state)."""
    return state is not None and DELETED_AT in state


def drops(mark: dict[str, Any], ts_ms: int) -> bool:
    """True if an event at ``ts_ms`` is from before the deletion (it must not bring the user
    back); a later one starts a new user."""
    return ts_ms <= mark[DELETED_AT]
