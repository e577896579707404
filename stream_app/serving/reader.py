"""Async readers of the Redis projection for the API (profiles, why records, timelines).

The synchronous :class:`~stream_app.serving.store.ProfileStore` serves the CLI; these
functions take a ``redis.asyncio`` client and return plain dicts.

Example (pure part: splitting a user's hash into its sections):
    >>> split_profile({b"tag:activity": b'"high"', b"score:convert": b'[0.8,"high","model"]',
    ...                b"count:orders": b"2", b"upd": b"17"})
    {'tags': {'activity': 'high'}, 'scores': {'convert': 0.8}, 'layers': {'convert': 'high'}, \
'sources': {'convert': 'model'}, 'counts': {'orders': 2}, 'fields': {}, 'updated_ms': 17}
"""

from __future__ import annotations

from typing import Any

import orjson

from stream_app.serving import keys

SECTIONS = {"tag": "tags", "score": "scores", "layer": "layers", "source": "sources",
            "count": "counts"}


def _loads(raw: Any) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode() if isinstance(raw, bytes) else raw


def split_profile(raw: dict[Any, Any]) -> dict[str, Any]:
    """Group hash fields ``tag:x``/``score:x``/``layer:x``/``source:x``/``count:x``; the rest
    in ``fields`` (except ``_id``, the user's integer id, and ``~w``, the packed why records).
    A ``score:x`` field holding ``[score, layer, source]`` (:func:`keys.score_field`) gives
    all three, over separate ``layer:x``/``source:x`` fields (the layout before, which a
    user written since keeps until ``redis-rebuild``).

    Example:
        >>> p = split_profile({"layer:c": '"low"', "score:c": '[0.7,"high","rules"]',
        ...                    "score:old": "0.2", "layer:old": '"low"'})
        >>> p["scores"], p["layers"], p["sources"]
        ({'old': 0.2, 'c': 0.7}, {'c': 'high', 'old': 'low'}, {'c': 'rules'})
    """
    out: dict[str, Any] = {name: {} for name in SECTIONS.values()}
    out["fields"] = {}
    out["updated_ms"] = None
    merged: dict[str, list[Any]] = {}
    for k, v in raw.items():
        field = k.decode() if isinstance(k, bytes) else str(k)
        if field in (keys.ID_FIELD, keys.WHY_FIELD):  # integer id, packed why: internal
            continue
        value = _loads(v)
        head, sep, rest = field.partition(":")
        if head == "score" and sep and isinstance(value, list) and len(value) == 3:
            merged[rest] = value
        elif sep and head in SECTIONS:
            out[SECTIONS[head]][rest] = value
        elif field == "upd":
            out["updated_ms"] = value
        else:
            out["fields"][field] = value
    for target, (score, layer, source) in merged.items():
        out["scores"][target] = score
        for section, v in (("layers", layer), ("sources", source)):
            if v is None:
                out[section].pop(target, None)
            else:
                out[section][target] = v
    return out


async def read_profile(r: Any, tenant: str, uid: str) -> dict[str, Any] | None:
    """The user's profile sections, or None when the user has no profile."""
    raw = await r.hgetall(keys.user_key(tenant, uid))
    return split_profile(raw) if raw else None


_SHAPES: dict[tuple[str, str], bytes] = {}
"""Why shapes read so far, per (tenant, code): content-addressed, so never stale."""
_SHAPES_MAX = 100_000


def why_codes(raw: dict[Any, Any]) -> list[str]:
    """Shape codes of the packed why records in a user hash's fields (``HGETALL``)."""
    return [c for c, _ in keys.unpack_why(_field(raw, keys.WHY_FIELD))]


def _field(raw: dict[Any, Any], name: str) -> Any:
    return raw.get(name.encode(), raw.get(name))


def decode_why(raw: dict[Any, Any], shapes: dict[str, Any]) -> dict[str, Any]:
    """The why records (tag_id -> record) of a user hash's fields, given the shapes of their
    codes (``HMGET sa:{t}:wd``); records of an unknown shape are left out. Pure.

    Example:
        >>> code, shape, rec = keys.pack_why("goal", {"rule_version": 2, "value": "x",
        ...                                           "values": {"profile.goal": "x"}})
        >>> raw = {b"tag:goal": b'"x"', keys.WHY_FIELD.encode(): keys.join_packed([rec])}
        >>> decode_why(raw, {code: shape})
        {'goal': {'rule': 'goal', 'rule_version': 2, 'values': {'profile.goal': 'x'}}}
        >>> decode_why(raw, {})
        {}
    """
    out = {}
    for code, vals in keys.unpack_why(_field(raw, keys.WHY_FIELD)):
        shape = shapes.get(code)
        if not shape:
            continue
        tag = orjson.loads(shape)[0]
        value = _field(raw, f"tag:{tag}")
        got = keys.expand_packed(shape, vals, _loads(value) if value is not None else None)
        if got is not None:
            out[got[0]] = got[1]
    return out


def _old_why(raw: dict[Any, Any]) -> dict[str, Any]:
    out = {}
    for k, v in raw.items():
        tag = k.decode() if isinstance(k, bytes) else k
        out[tag] = keys.expand_why(tag, _loads(v))
    return out


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
    layout (shapes read once per process)."""
    codes = why_codes(raw)
    return decode_why(raw, await _shapes(r, tenant, codes)) if codes else {}


async def read_why(r: Any, tenant: str, uid: str) -> dict[str, Any]:
    """Every current why record of the user (tag_id -> record): the packed field of the user
    hash, else the old layout's ``why:{uid}`` hash."""
    out = await why_from_hash(r, tenant, await r.hgetall(keys.user_key(tenant, uid)))
    return out or _old_why(await r.hgetall(keys.why_key(tenant, uid)))


def read_why_sync(r: Any, tenant: str, uid: str) -> dict[str, Any]:
    """:func:`read_why` with a synchronous client (the CLI's ``ProfileStore``)."""
    raw = r.hgetall(keys.user_key(tenant, uid))
    codes = why_codes(raw)
    if codes:
        out = decode_why(raw, dict(zip(codes, r.hmget(keys.why_dict_key(tenant), codes),
                                       strict=True)))
        if out:
            return out
    return _old_why(r.hgetall(keys.why_key(tenant, uid)))


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
