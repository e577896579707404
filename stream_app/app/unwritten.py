"""Redis projection writes a stopping worker could not write, kept on record until a repair.

The worker queues its Redis writes and retries them while Redis is down
(:class:`~stream_app.serving.projection.RedisProjection`). At a stop it writes what is queued
for at most ``STREAM_APP_REDIS_STOP_DRAIN_S`` (:data:`DRAIN_S`, 10 s); what is still queued
then (Redis down through the stop: a failover, a rolling update during an outage) cannot be
kept: the queue lives in memory, and
the events behind it are committed. Before, it was dropped without a word (QA31 F7: 16,279
writes, 14,399 differences, users missing from the API). Now the stop logs an error and
writes a marker file to the worker's data directory; every later start of that worker logs
it again and exports ``stream_app_redis_unwritten_ops`` (alert
``StreamAppRedisProjectionIncomplete``) until a ``stream-app redis-rebuild`` that started
after the stop has completed: the worker clears it when ``--live`` re-projects its users, and
at a start when Redis says (``keys.REBUILT_KEY``) a rebuild since then completed, e.g. one run
while this worker was down (QA32 F1).

Example:
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> record(d, ops=12, held=3, at="2026-12-05T08:00:00Z")["ops"]
    15
    >>> record(d, ops=5, held=0, at="2026-12-05T09:00:00Z")["ops"]   # a second stop adds
    20
    >>> read(d)["stops"], clear(d), read(d)
    (2, True, None)
    >>> _ = record(d, ops=-5, held=0); read(d)["ops"]     # a marker never reads as nothing lost
    1
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import orjson

from stream_app.serving.keys import REBUILT_KEY

log = logging.getLogger(__name__)

#: the marker file, in the worker's data directory
FILE = "redis-unwritten.json"
#: how long a stop waits for the queued writes by default (STREAM_APP_REDIS_STOP_DRAIN_S,
#: within STREAM_APP_STOP_TIMEOUT_S, 55 s)
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
        return {"ops": 1, "stops": 1, "first": None, "last": None, "last_ms": 0}
    try:
        doc = orjson.loads(raw)
        return {"ops": max(1, int(doc["ops"])), "stops": max(1, int(doc.get("stops", 1))),
                "first": doc.get("first"), "last": doc.get("last"),
                "last_ms": int(doc.get("last_ms") or 0)}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.error("%s is not a marker this release wrote: read as one stop", path)
        return {"ops": 1, "stops": 1, "first": None, "last": None, "last_ms": 0}


def record(datadir: Path, ops: int, held: int, at: str | None = None,
           at_ms: int | None = None) -> dict[str, Any]:
    """Add one stop's unwritten writes (``ops`` queued operations, ``held`` changes not yet
    built into operations) to the marker; the marker as written (not written: logged)."""
    now = time.time()
    at = at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    before = read(datadir) or {"ops": 0, "stops": 0, "first": at}
    doc = {"ops": before["ops"] + ops + held, "stops": before["stops"] + 1,
           "first": before.get("first") or at, "last": at,
           "last_ms": int(now * 1000) if at_ms is None else at_ms}
    path = Path(datadir) / FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(doc))
        tmp.replace(path)
    except OSError as exc:
        log.error("cannot record the unwritten Redis writes in %s: %s (run `%s`)", path,
                  exc, REPAIR)
    return doc


def clear(datadir: Path) -> bool:
    """Remove the marker (a rebuild re-projected the users); True if there was one."""
    path = Path(datadir) / FILE
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.error("cannot remove %s: %s", path, exc)
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


async def rebuilt_from(client: Any) -> int | None:
    """When the last completed ``redis-rebuild`` started (epoch ms, from Redis), or None
    (never, or Redis does not answer)."""
    try:
        raw = await client.get(REBUILT_KEY)
        return int(raw) if raw is not None else None
    except Exception:  # noqa: BLE001 - Redis down at the start: the marker stays
        return None


async def report_at_start(datadir: Path, gauge: Any, client: Any = None) -> dict[str, Any] | None:
    """At a start: a marker left by an earlier stop is logged and exported (``gauge``),
    unless a rebuild that started after the stop has completed since (``client``: the
    projection's Redis client), e.g. while this worker was down: then it is cleared."""
    doc = read(datadir)
    if doc and client is not None and doc["last_ms"]:
        since = await rebuilt_from(client)
        if since is not None and since > doc["last_ms"]:
            clear(datadir)
            log.warning("Redis projection: the %d writes earlier stops left were rewritten by "
                        "a redis-rebuild since", doc["ops"])
            doc = None
    gauge.set(doc["ops"] if doc else 0)
    if doc:
        log.error("Redis projection: %d writes of earlier stops (%s to %s) were never written: "
                  "run `%s` (stream_app_redis_unwritten_ops until then)", doc["ops"],
                  doc["first"], doc["last"], REPAIR)
    return doc
