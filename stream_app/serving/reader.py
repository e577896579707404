"""Async readers of the Redis projection for the API (profiles, why records, timelines).

The synchronous :class:`~stream_app.serving.store.ProfileStore` serves the CLI; these
functions take a ``redis.asyncio`` client and return plain dicts.

Example (pure part: splitting a user's hash into its sections):
    >>> split_profile({b"tag:activity": b'"high"', b"score:convert": b"0.8",
    ...                b"layer:convert": b'"high"', b"count:orders": b"2", b"upd": b"17"})
    {'tags': {'activity': 'high'}, 'scores': {'convert': 0.8}, 'layers': {'convert': 'high'}, \
'counts': {'orders': 2}, 'fields': {}, 'updated_ms': 17}
"""

from __future__ import annotations

from typing import Any

import orjson

from stream_app.serving import keys

SECTIONS = {"tag": "tags", "score": "scores", "layer": "layers", "count": "counts"}


def _loads(raw: Any) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode() if isinstance(raw, bytes) else raw


def split_profile(raw: dict[Any, Any]) -> dict[str, Any]:
    """Group hash fields ``tag:x``/``score:x``/``layer:x``/``count:x``; the rest in ``fields``
    (except ``_id``, the user's integer id)."""
    out: dict[str, Any] = {name: {} for name in SECTIONS.values()}
    out["fields"] = {}
    out["updated_ms"] = None
    for k, v in raw.items():
        field = k.decode() if isinstance(k, bytes) else str(k)
        if field == keys.ID_FIELD:  # the integer id of the segment bitmaps: internal
            continue
        value = _loads(v)
        head, sep, rest = field.partition(":")
        if sep and head in SECTIONS:
            out[SECTIONS[head]][rest] = value
        elif field == "upd":
            out["updated_ms"] = value
        else:
            out["fields"][field] = value
    return out


async def read_profile(r: Any, tenant: str, uid: str) -> dict[str, Any] | None:
    """The user's profile sections, or None when the user has no profile."""
    raw = await r.hgetall(keys.user_key(tenant, uid))
    return split_profile(raw) if raw else None


async def read_why(r: Any, tenant: str, uid: str) -> dict[str, Any]:
    """Every current why record of the user (tag_id -> record)."""
    raw = await r.hgetall(keys.why_key(tenant, uid))
    out = {}
    for k, v in raw.items():
        tag = k.decode() if isinstance(k, bytes) else k
        out[tag] = keys.expand_why(tag, _loads(v))
    return out


async def read_why_one(r: Any, tenant: str, uid: str, tag_id: str) -> dict[str, Any] | None:
    raw = await r.hget(keys.why_key(tenant, uid), tag_id)
    return keys.expand_why(tag_id, _loads(raw)) if raw else None


async def read_timeline(r: Any, tenant: str, uid: str, limit: int = 20,
                        tag_id: str | None = None) -> list[dict[str, Any]]:
    """Newest-first tag changes (all tags, or only ``tag_id``'s), at most ``limit``; Redis
    keeps the last ``keys.TIMELINE_MAX`` (compact: no evidence), ``tags.changes`` has all."""
    end = limit - 1 if tag_id is None else keys.TIMELINE_MAX - 1
    items = [keys.expand_change(_loads(x))
             for x in await r.lrange(keys.timeline_key(tenant, uid), 0, end)]
    if tag_id is not None:
        items = [c for c in items if c.get("tag_id") == tag_id]
    return items[:limit]


async def known_tenant(r: Any, tenant: str) -> bool:
    return bool(await r.sismember(keys.TENANTS_KEY, tenant))
