"""Read side of the Redis projection (synchronous; used by the CLI and tests).

Example (needs Redis)::

    store = ProfileStore("redis://127.0.0.1:6379/0")
    store.tags("default", "u1")   # {'activity': 'low', 'channel_first': 'douyin', ...}
"""

from __future__ import annotations

from typing import Any

import orjson

from stream_app.serving import keys


class ProfileStore:
    """Profiles, why records, timelines and segment sets of one Redis."""

    def __init__(self, url: str) -> None:
        import redis  # noqa: PLC0415

        self.r = redis.Redis.from_url(url, socket_timeout=5)

    def profile(self, tenant: str, uid: str) -> dict[str, Any]:
        """All fields of the user's hash, decoded (``tag:x`` -> value); the internal ones
        (``_id``, the integer id, and ``~w``, the packed why records) are left out."""
        raw = self.r.hgetall(keys.user_key(tenant, uid))
        return {k.decode(): orjson.loads(v) for k, v in raw.items()
                if k.decode() not in (keys.ID_FIELD, keys.WHY_FIELD)}

    def tags(self, tenant: str, uid: str) -> dict[str, Any]:
        return {k[4:]: v for k, v in self.profile(tenant, uid).items() if k.startswith("tag:")}

    def why(self, tenant: str, uid: str, tag_id: str) -> dict[str, Any] | None:
        """The why record of one tag (packed in the user hash, else the old ``why:`` hash;
        :func:`~stream_app.serving.reader.read_why_sync`)."""
        from stream_app.serving.reader import read_why_sync  # noqa: PLC0415

        return read_why_sync(self.r, tenant, uid).get(tag_id)

    def timeline(self, tenant: str, uid: str, limit: int = 20) -> list[dict[str, Any]]:
        return [keys.expand_change(orjson.loads(x))
                for x in self.r.lrange(keys.timeline_key(tenant, uid), 0, limit - 1)]

    def segment(self, tenant: str, tag_id: str, value: Any) -> set[str]:
        """User ids in the bitmap of one tag value."""
        from stream_app.serving.segment_runner import bit_positions  # noqa: PLC0415

        ids = bit_positions(self.r.get(keys.seg_key(tenant, tag_id, value)) or b"")
        return set(self.user_ids(tenant, ids))

    def user_ids(self, tenant: str, ids: list[int]) -> list[str]:
        """User ids of integer ids, in the given order (one ``HMGET`` per 128 ids, one round
        trip; forgotten ids are skipped)."""
        if not ids:
            return []
        groups: dict[int, list[int]] = {}
        for n in ids:
            groups.setdefault(n // keys.IDS_PER_HASH, []).append(n)
        pipe = self.r.pipeline(transaction=False)
        for g, members in groups.items():
            pipe.hmget(keys.ids_key(tenant, g * keys.IDS_PER_HASH),
                       [n % keys.IDS_PER_HASH for n in members])
        got: dict[int, bytes | None] = {}
        for members, vals in zip(groups.values(), pipe.execute(), strict=True):
            got.update(zip(members, vals, strict=True))
        return [v.decode() for n in ids if (v := got[n]) is not None]

    def user_id_number(self, tenant: str, uid: str) -> int | None:
        """The user's integer id (its bit in the segment bitmaps), if it has one."""
        raw = self.r.hget(keys.user_key(tenant, uid), keys.ID_FIELD)
        return int(raw) if raw is not None else None

    def exists(self, tenant: str, uid: str) -> bool:
        return bool(self.r.exists(keys.user_key(tenant, uid)))
