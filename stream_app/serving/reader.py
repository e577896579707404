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
    (except ``_id``, the user's integer id, and ``~w``, the packed why records)."""
    out: dict[str, Any] = {name: {} for name in SECTIONS.values()}
    out["fields"] = {}
    out["updated_ms"] = None
    for k, v in raw.items():
        field = k.decode() if isinstance(k, bytes) else str(k)
        if field in (keys.ID_FIELD, keys.WHY_FIELD):  # integer id, packed why: internal
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


_SHAPES: dict[tuple[str, str], bytes] = {}
"""Why shapes read so far, per (tenant, code): content-addressed, so never stale."""
_SHAPES_MAX = 100_000


async def _shapes(r: Any, tenant: str, codes: list[str]) -> dict[str, bytes | None]:
    missing = sorted({c for c in codes if (tenant, c) not in _SHAPES})
    if missing:
        got = await r.hmget(keys.why_dict_key(tenant), missing)
        if len(_SHAPES) > _SHAPES_MAX:
            _SHAPES.clear()
        _SHAPES.update({(tenant, c): v for c, v in zip(missing, got, strict=True) if v})
    return {c: _SHAPES.get((tenant, c)) for c in codes}


async def why_from_hash(r: Any, tenant: str, raw: dict[Any, Any]) -> dict[str, Any]:
    """The why records (tag_id -> record) of a user hash's fields (``HGETALL``), packed
    layout; records whose shape is unknown are left out."""
    def field(name: str) -> Any:
        return raw.get(name.encode(), raw.get(name))

    recs = keys.unpack_why(field(keys.WHY_FIELD))
    shapes = await _shapes(r, tenant, [c for c, _ in recs])
    out = {}
    for code, vals in recs:
        shape = shapes.get(code)
        tag = orjson.loads(shape)[0] if shape else None
        tag_value = _loads(field(f"tag:{tag}")) if field(f"tag:{tag}") is not None else None
        got = keys.expand_packed(shape, vals, tag_value)
        if got is not None:
            out[got[0]] = got[1]
    return out


async def read_why(r: Any, tenant: str, uid: str) -> dict[str, Any]:
    """Every current why record of the user (tag_id -> record): the packed field of the user
    hash, else the old layout's ``why:{uid}`` hash."""
    out = await why_from_hash(r, tenant, await r.hgetall(keys.user_key(tenant, uid)))
    if out:
        return out
    raw = await r.hgetall(keys.why_key(tenant, uid))  # old layout (before redis-rebuild)
    for k, v in raw.items():
        tag = k.decode() if isinstance(k, bytes) else k
        out[tag] = keys.expand_why(tag, _loads(v))
    return out


async def read_why_one(r: Any, tenant: str, uid: str, tag_id: str) -> dict[str, Any] | None:
    """The why record of one tag (packed layout, else the old ``why:{uid}`` hash)."""
    return (await read_why(r, tenant, uid)).get(tag_id)


async def read_timeline(r: Any, tenant: str, uid: str, limit: int = 20,
                        tag_id: str | None = None) -> list[dict[str, Any]]:
    """Newest-first tag changes (all tags, or only ``tag_id``'s), at most ``limit``; Redis
    keeps the last ``redis_timeline`` (default none; compact: no evidence), ``tags.changes``
    has all."""
    end = limit - 1 if tag_id is None else 99
    items = [keys.expand_change(_loads(x))
             for x in await r.lrange(keys.timeline_key(tenant, uid), 0, end)]
    if tag_id is not None:
        items = [c for c in items if c.get("tag_id") == tag_id]
    return items[:limit]


async def known_tenant(r: Any, tenant: str) -> bool:
    return bool(await r.sismember(keys.TENANTS_KEY, tenant))
