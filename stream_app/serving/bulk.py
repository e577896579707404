"""Bulk writes of the bitmap layout (benchmarks, large loads): users numbered ``start``,
``start + 1``, ... and every bitmap written as byte ranges (``SETRANGE``) instead of one
``SETBIT`` script call per user and tag.

Only for an empty tenant or ids above every assigned one: it sets ``nextid`` past the last
id it wrote, so the live writer's scripts continue from there.

Example:
    >>> cmds = bulk_commands("t", [("u1", {"activity": "low", "lead_points": 3})], start=8,
    ...                      edges=[0, 1, 5])
    >>> [c[0] for c in cmds][:4]
    ['HSET', 'HSET', 'SETRANGE', 'SETRANGE']
    >>> ("SETRANGE", "sa:t:seg:activity=low", 1, bytes([0b10000000])) in cmds
    True
    >>> ("SETRANGE", "sa:t:nb:lead_points:2", 1, bytes([0b10000000])) in cmds
    True
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson

from stream_app.serving import keys


def _numeric(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _bucket(v: float, edges: list[float]) -> int:
    b = 0
    for j, e in enumerate(edges, 1):
        if v >= e:
            b = j
    return b


def _bits(ids: list[int], first_byte: int, nbytes: int) -> bytes:
    buf = bytearray(nbytes)
    for n in ids:
        buf[n // 8 - first_byte] |= 0x80 >> (n % 8)
    return bytes(buf)


def bulk_commands(tenant: str, users: Iterable[tuple[str, dict[str, Any]]], start: int,
                  edges: list[float]) -> list[tuple[Any, ...]]:
    """Redis commands writing ``users`` (user id, tags) with integer ids from ``start`` (a
    multiple of 8, so chunks own whole bytes of every bitmap)."""
    if start % 8:
        raise ValueError("start must be a multiple of 8")
    cmds: list[tuple[Any, ...]] = []
    bitmaps: dict[str, list[int]] = defaultdict(list)
    nums: dict[str, dict[int, float]] = defaultdict(dict)
    ids: dict[int, dict[int, str]] = defaultdict(dict)
    vals: dict[str, set[str]] = defaultdict(set)
    n = start
    for n, (uid, tags) in enumerate(users, start):
        mapping = {f"tag:{k}": orjson.dumps(v) for k, v in tags.items() if v is not None}
        mapping[keys.ID_FIELD] = n
        cmds.append(("HSET", keys.user_key(tenant, uid), *[x for kv in mapping.items()
                                                           for x in kv]))
        ids[n // keys.IDS_PER_HASH][n % keys.IDS_PER_HASH] = uid
        bitmaps[keys.users_key(tenant)].append(n)
        for k, v in tags.items():
            if v is None:
                continue
            if _numeric(v):
                nums[k][n] = float(v)
                bitmaps[keys.bucket_key(tenant, k, _bucket(float(v), edges))].append(n)
            else:
                bitmaps[keys.seg_key(tenant, k, v)].append(n)
                vals[k].add(keys.value_token(v))
    end = n + 1
    for g, m in ids.items():
        cmds.append(("HSET", keys.ids_key(tenant, g * keys.IDS_PER_HASH),
                     *[x for kv in m.items() for x in kv]))
    first, nbytes = start // 8, (end + 7) // 8 - start // 8
    for k, members in bitmaps.items():
        cmds.append(("SETRANGE", k, first, _bits(members, first, nbytes)))
    text = ",".join(keys.value_token(e) for e in edges)
    for tag, m in nums.items():
        cmds.append(("SET", keys.edges_key(tenant, tag), text, "NX"))
        cmds.append(("ZADD", keys.num_key(tenant, tag), *[x for i, v in m.items()
                                                          for x in (v, i)]))
    for tag, tokens in vals.items():
        cmds.append(("SADD", keys.values_key(tenant, tag), *sorted(tokens)))
    cmds.append(("SADD", keys.TENANTS_KEY, tenant))
    cmds.append(("SET", keys.next_id_key(tenant), end))
    return cmds
