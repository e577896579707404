"""Redis projection writes a stopping worker could not write, kept on record until a repair.

The worker queues its Redis writes and retries them while Redis is down
(:class:`~stream_app.serving.projection.RedisProjection`). At a stop it writes what is queued
for at most :data:`DRAIN_S`; what is still queued then (Redis down through the stop: a
failover, a rolling update during an outage) cannot be kept: the queue lives in memory, and
the events behind it are committed. Before, it was dropped without a word (QA31 F7: 16,279
writes, 14,399 differences, users missing from the API). Now the stop logs an error and
writes a marker file to the worker's data directory; every later start of that worker logs
it again and exports ``stream_app_redis_unwritten_ops`` (alert
``StreamAppRedisProjectionIncomplete``) until ``stream-app redis-rebuild --live`` re-projects
the workers' users, which clears it.

Example:
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> record(d, ops=12, held=3, at="2026-12-05T08:00:00Z")["ops"]
    15
    >>> record(d, ops=5, held=0, at="2026-12-05T09:00:00Z")["ops"]   # a second stop adds
    20
    >>> read(d)["stops"], clear(d), read(d)
    (2, True, None)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

#: the marker file, in the worker's data directory
FILE = "redis-unwritten.json"
#: how long a stop waits for the queued writes (within STREAM_APP_STOP_TIMEOUT_S, 55 s)
DRAIN_S = 10.0
REPAIR = "stream-app redis-rebuild --live"


def read(datadir: Path) -> dict[str, Any] | None:
    """The marker (``ops``, ``stops``, ``first``, ``last``), or None (none, or unreadable:
    then logged and read as one stop of unknown size)."""
    path = Path(datadir) / FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.error("cannot read %s: %s", path, exc)
        return {"ops": 1, "stops": 1, "first": None, "last": None}
    try:
        doc = orjson.loads(raw)
        return {"ops": int(doc["ops"]), "stops": int(doc.get("stops", 1)),
                "first": doc.get("first"), "last": doc.get("last")}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.error("%s is not a marker this release wrote: read as one stop", path)
        return {"ops": 1, "stops": 1, "first": None, "last": None}


def record(datadir: Path, ops: int, held: int, at: str | None = None) -> dict[str, Any]:
    """Add one stop's unwritten writes (``ops`` queued operations, ``held`` changes not yet
    built into operations) to the marker; the marker as written."""
    at = at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    before = read(datadir) or {"ops": 0, "stops": 0, "first": at}
    doc = {"ops": before["ops"] + ops + held, "stops": before["stops"] + 1,
           "first": before.get("first") or at, "last": at}
    path = Path(datadir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(doc))
    tmp.replace(path)
    return doc


def clear(datadir: Path) -> bool:
    """Remove the marker (a live rebuild re-projected the users); True if there was one."""
    try:
        (Path(datadir) / FILE).unlink()
    except FileNotFoundError:
        return False
    return True


async def drain_at_stop(projection: Any, datadir: Path, timeout: float = DRAIN_S) -> int:
    """Write what the projection still queues (at most ``timeout`` seconds); what is left
    is logged as an error and recorded in the marker. The number of writes left."""
    try:
        await projection.drain(timeout)
    except Exception as exc:  # noqa: BLE001 - a stop goes on: what is left is recorded
        log.error("Redis projection: writing the queue at stop failed: %r", exc)
    ops, held = len(projection.pending), projection.held
    if ops or held:
        doc = record(datadir, ops, held)
        log.error("Redis projection: %d queued writes (and %d held changes) not written at "
                  "stop (Redis unavailable for %.0f s): Redis is missing them until `%s` "
                  "(recorded in %s: %d writes over %d stops)", ops, held, timeout, REPAIR,
                  Path(datadir) / FILE, doc["ops"], doc["stops"])
    return ops + held


def report_at_start(datadir: Path, gauge: Any) -> dict[str, Any] | None:
    """At a start: a marker left by an earlier stop is logged and exported (``gauge``)."""
    doc = read(datadir)
    gauge.set(doc["ops"] if doc else 0)
    if doc:
        log.error("Redis projection: %d writes of earlier stops (%s to %s) were never written: "
                  "run `%s` (stream_app_redis_unwritten_ops until then)", doc["ops"],
                  doc["first"], doc["last"], REPAIR)
    return doc
