"""Item 8 (the parts that need the running stack): personal identifiers never reach state,
Redis, outputs or logs; ``stream-app forget`` removes every trace of a user (Redis keys and
segments, the table record through a changelog tombstone) and publishes the removals."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid

import orjson
import pytest
import redis

from stream_app.cli.rebuild_cmd import traces
from stream_app.serving import keys
from tests.faults.workload import DAY, TableWatch, base_ts, send_all
from tests.helpers import TopicReader, wait_until

pytestmark = pytest.mark.faults


def _redis_dump(r: redis.Redis, tenant: str) -> bytes:
    """Every key name and value of the tenant's projection, as one blob to search."""
    out = []
    for k in r.scan_iter(match=f"{keys.PREFIX}:{tenant}:*", count=1000):
        out.append(k)
        kind = r.type(k)
        if kind == b"hash":
            out.extend(b"%s=%s" % kv for kv in r.hgetall(k).items())
        elif kind == b"set":
            out.extend(r.smembers(k))
        elif kind == b"zset":
            out.extend(m for m, _ in r.zrange(k, 0, -1, withscores=True))
        elif kind == b"list":
            out.extend(r.lrange(k, 0, -1))
    return b"\n".join(out)


def test_pii_never_stored_and_deletion_removes_every_trace(fstack, report):
    rnd = random.Random()
    u = f"del-{uuid.uuid4().hex[:8]}"
    pii = {"phone": f"139{rnd.randint(10**7, 10**8 - 1)}", "email": f"{u}@example.cn",
           "wechat_id": f"wx_{uuid.uuid4().hex[:10]}", "name": f"Zhang{uuid.uuid4().hex[:6]}"}
    t = base_ts()
    events = [
        {"event_id": f"{u}-1", "user_id": u, "ts": t, "type": "registered", "stream": "profile",
         "props": {"region": "shanghai", "age_band": "25-34", **pii}},
        {"event_id": f"{u}-2", "user_id": u, "ts": t + 1000, "type": "course_view",
         "stream": "click", "props": {"course_id": "py"}},
        {"event_id": f"{u}-3", "user_id": u, "ts": t + DAY, "type": "order_paid",
         "stream": "order", "props": {"amount": 4999.0, "category": "python"}},
    ]
    table = TableWatch(fstack.bootstrap, fstack.partitions)
    tags = TopicReader(fstack.bootstrap, "tags.changes", fstack.partitions)
    r = redis.Redis.from_url(fstack.redis.url, socket_timeout=10)
    try:
        send_all(fstack.bootstrap, events)
        wait_until(lambda: table.reader.poll() and u in table.states
                   and sum(table.states[u]["n"].values()) == 3, timeout=60,
                   what="the user's three events in the table")
        wait_until(lambda: r.exists(keys.user_key("default", u)), timeout=30,
                   what="the user's profile in Redis")
        held = dict(table.states[u]["tags"])
        wait_until(lambda: len(traces(r, u)) > 1, timeout=30, what="segments in Redis")
        # personal identifiers: nowhere in state, Redis, tag changes or worker logs
        blobs = {
            "table": orjson.dumps(table.states[u]),
            "redis": _redis_dump(r, "default"),
            "tags.changes": orjson.dumps([c for c in tags.poll() if c["user_id"] == u]),
            "logs": b"".join(p.read_bytes() for p in (fstack.workdir / "logs").glob("*.log")),
        }
        leaks = [(where, field) for where, blob in blobs.items()
                 for field, value in pii.items() if value.encode() in blob]
        # the deletion request, through the command line
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "stream_app", "forget", u],
                             env={**os.environ, **fstack.settings_env()}, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        wait_until(lambda: table.reader.poll() is not None and u in table.reader.tombstones,
                   timeout=60, what="a tombstone for the user in the table changelog")
        wait_until(lambda: not traces(r, u), timeout=30, what="no trace of the user in Redis")
        took = time.monotonic() - t0
        removed = wait_until(lambda: (lambda got: got if len(got) >= len(held) else None)(
            [c for c in tags.poll() if c["user_id"] == u and c["reason"] == "deleted"]),
            timeout=30, what="tag removals with reason 'deleted'")
        report.add("PII + deletion request", len(events) + 1, len(events) + 1, 0, 0, 0, took,
                   f"PII leaks found: {len(leaks)}; after forget: table tombstone, "
                   f"0 Redis keys/segments, {len(removed)} removals published")
        assert not leaks, f"personal identifiers found in: {leaks}"
        assert held, "the user had no tags to delete"
        assert {c["tag_id"] for c in removed} == set(held)
        assert all(c["new"] is None for c in removed)
        assert u not in table.states
    finally:
        table.close()
        tags.close()
