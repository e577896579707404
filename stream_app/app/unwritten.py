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

A stop that never runs (``kill -9``, the OOM killer, a lost node) cannot write that marker.
So while the projection's writes fail, the worker keeps a second file,
``redis-unwritten-open.json`` (:class:`OutageMarker`: the outage's start, the queue's size,
refreshed every :data:`OPEN_REFRESH_S`), and removes it when the queue is written or a stop
has recorded what is left. A start that finds it (:func:`adopt_open`) counts the outage as
one stop whose writes were lost, as above.

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
#: kept while the projection's writes fail: found at a start, the last run ended in an outage
OPEN_FILE = "redis-unwritten-open.json"
#: seconds between two refreshes of the open marker while writes keep failing
OPEN_REFRESH_S = 5.0


def _bytes(path: Path) -> bytes | None:
    """A marker file's bytes; None when there is none, ``b""`` when it cannot be read
    (logged: then read as a marker of unknown content)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.error("cannot read %s: %s", path, exc)
        return b""


def _write(path: Path, doc: dict[str, Any]) -> None:
    """Write a marker file whole (a temporary file renamed over it); raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(doc))
    tmp.replace(path)


def _remove(path: Path) -> bool:
    """Remove a marker file; True if there was one (a failure is logged)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.error("cannot remove %s: %s", path, exc)
        return False
    return True


def read(datadir: Path) -> dict[str, Any] | None:
    """The marker (``ops``, ``stops``, ``first``, ``last``), or None (none, or unreadable:
    then logged and read as one stop of unknown size)."""
    path = Path(datadir) / FILE
    raw = _bytes(path)
    if raw is None:
        return None
    try:
        doc = orjson.loads(raw)
        return {"ops": max(1, int(doc["ops"])), "stops": max(1, int(doc.get("stops", 1))),
                "first": doc.get("first"), "last": doc.get("last"),
                "last_ms": int(doc.get("last_ms") or 0)}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.error("%s is not a marker this release wrote: read as one stop", path)
        return {"ops": 1, "stops": 1, "first": None, "last": None, "last_ms": 0}


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def record(datadir: Path, ops: int, held: int, at: str | None = None,
           at_ms: int | None = None) -> dict[str, Any]:
    """Add one stop's unwritten writes (``ops`` queued operations, ``held`` changes not yet
    built into operations) to the marker; the marker as written (not written: logged)."""
    now = time.time()
    at = at or _iso(int(now * 1000))
    before = read(datadir) or {"ops": 0, "stops": 0, "first": at}
    doc = {"ops": before["ops"] + ops + held, "stops": before["stops"] + 1,
           "first": before.get("first") or at, "last": at,
           "last_ms": int(now * 1000) if at_ms is None else at_ms}
    path = Path(datadir) / FILE
    try:
        _write(path, doc)
    except OSError as exc:
        log.error("cannot record the unwritten Redis writes in %s: %s (run `%s`)", path,
                  exc, REPAIR)
    return doc


def clear(datadir: Path) -> bool:
    """Remove the marker (a rebuild re-projected the users); True if there was one."""
    return _remove(Path(datadir) / FILE)


class OutageMarker:
    """The projection's ``on_failing`` hook: keeps :data:`OPEN_FILE` while its writes fail.

    Example:
        >>> import tempfile
        >>> from types import SimpleNamespace
        >>> d = Path(tempfile.mkdtemp())
        >>> proj = SimpleNamespace(failing_since_ms=1_000, pending=[1, 2, 3], held=4)
        >>> marker = OutageMarker(d)
        >>> marker(proj); orjson.loads((d / OPEN_FILE).read_bytes())["ops"]
        7
        >>> proj.failing_since_ms = None; marker(proj); (d / OPEN_FILE).exists()
        False
    """

    def __init__(self, datadir: Path, refresh_s: float = OPEN_REFRESH_S) -> None:
        self.path = Path(datadir) / OPEN_FILE
        self.refresh_s = refresh_s
        self._written: float | None = None   # monotonic time of the last write (None: none)

    def __call__(self, projection: Any) -> None:
        since = projection.failing_since_ms
        if since is None:
            self.close()
            return
        now = time.monotonic()
        if self._written is not None and now - self._written < self.refresh_s:
            return
        doc = {"since_ms": since, "last_ms": int(time.time() * 1000),
               "ops": len(projection.pending) + projection.held}
        try:
            _write(self.path, doc)
            self._written = now
        except OSError as exc:
            log.error("cannot keep %s while Redis writes fail: %s", self.path, exc)

    def close(self) -> None:
        """The outage's writes are written, or a stop recorded what is left."""
        self._written = None
        _remove(self.path)


def adopt_open(datadir: Path) -> dict[str, Any] | None:
    """At a start, before the projection writes: an open marker means the last run ended
    (``kill -9``, OOM, a lost node) while Redis writes failed; its queue is recorded as one
    stop's lost writes (:func:`record`). The record as written, or None (no open marker).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / OPEN_FILE).write_bytes(b'{"since_ms": 1000, "last_ms": 9000, "ops": 40}')
        >>> doc = adopt_open(d); doc["ops"], doc["last_ms"], (d / OPEN_FILE).exists()
        (40, 9000, False)
        >>> adopt_open(d) is None
        True
    """
    path = Path(datadir) / OPEN_FILE
    raw = _bytes(path)
    if raw is None:
        return None
    try:
        got = orjson.loads(raw)
        ops, last_ms = max(1, int(got["ops"])), int(got["last_ms"])
        since = _iso(int(got["since_ms"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        ops, last_ms, since = 1, int(time.time() * 1000), "an unknown time"
    doc = record(datadir, ops, 0, at=_iso(last_ms), at_ms=last_ms)
    log.error("Redis projection: the last run of this worker ended without a stop (kill -9, "
              "OOM, a lost node) while Redis writes had failed since %s: its %d queued writes "
              "are lost until `%s` (recorded in %s)", since, ops, REPAIR, Path(datadir) / FILE)
    _remove(path)
    return doc


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
    _remove(Path(datadir) / OPEN_FILE)        # the stop has accounted for the outage
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
    projection's Redis client), e.g. while this worker was down: then it is cleared. An
    outage the last run ended in without a stop is recorded first (:func:`adopt_open`)."""
    adopt_open(datadir)
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
