"""Clean-stop markers for the ``rocksdb://`` users table: keep the local files only when the
previous worker on this disk stopped cleanly, otherwise restore from the changelog.

Why: Faust writes a table value to RocksDB *before* its changelog record is delivered (the
store put and ``send_soon`` happen together in ``Table.__setitem__``) and stores the changelog
offset it has (``set_persisted_offset``) in the same RocksDB after each delivery report
(``Table._on_changelog_sent``). On start it reads the changelog only past that offset. After
``kill -9`` between a put and its delivery, the files hold a state the changelog never got: the
input offset was not committed, the event comes again, the state's ``event_id`` window skips
it, so its outputs are never published and a worker without this disk rebuilds an older
state. (Kafka Streams wipes its stores after an unclean shutdown for the same reason.)

The protocol (one marker file per partition store ``DATADIR/v1/tables/users-<p>.db``):

1. **Start** (before the first partition store is opened in the process): a store directory
   with a valid marker is kept; one without (kill -9, crash, OOM, a failed stop, a disk
   copied from elsewhere) is deleted, so Faust restores that partition from offset 0. Markers
   are then removed, so a crash later is detected at the next start. A store whose RocksDB
   ``LOCK`` is held by another live process is left alone (not ours to judge).
2. **Running**: :class:`ChangelogLedger` counts, per partition, changelog records sent and
   delivery reports received. A failed delivery is never counted as received.
3. **Graceful stop** (Faust stops the tables after the consumer's last commit and the app's
   final producer flush): a partition whose records were all delivered gets a marker; its
   persisted offset may trail by a few records whose reports came after, which the next start
   simply reads again (same values). A partition with records still in flight gets none. A
   record sent after the marker was written removes it again.

So a kept store holds only writes the changelog has, and Faust's tail read adds what the
changelog has beyond the persisted offset (also writes made by other workers meanwhile).

**No write-ahead log** (``wal=False``, the default: ``STREAM_APP_TABLE_ROCKSDB_WAL``). The files
are trusted only after a clean stop, and the stop flushes every open partition's memtables
before its marker is written (a partition whose flush fails gets no marker); a revoked
partition is flushed before Faust drops it. RocksDB's log would only replay writes after a
crash, whose files are deleted anyway, so its writes are skipped (Kafka Streams runs its stores
the same way). A put then costs a memtable insert alone: 2.3 against 6.7-8.3 µs per 3.9 KB state
here. Even a lost memtable leaves a prefix of the writes, the persisted offset included, since
the offset is written after the states it covers.

Example (markers on a temporary "disk"):
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> ident = StoreIdentity(app_id="a", table="users", broker="b:1", host="h")
    >>> for p in (0, 1):
    ...     (d / f"users-{p}.db").mkdir()
    >>> _ = write_marker(d / "users-0.db", ident, partition=0, persisted_offset=41)
    >>> report = prepare_table_dir(d, "users", ident)
    >>> report.kept, report.wiped
    ([0], [1])
    >>> sorted(p.name for p in d.iterdir()), marker_path(d / "users-0.db").exists()
    (['users-0.db'], False)
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import logging
import os
import re
import shutil
import socket
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import current_event
from faust.types import TP, FutureMessage
from yarl import URL

log = logging.getLogger(__name__)

#: marker file name inside a partition store directory (RocksDB ignores unknown files)
MARKER_NAME = "STREAM_APP_CLEAN_STOP"
#: bump when the meaning of a marker changes: older markers then count as absent
MARKER_VERSION = 1


@dataclass(frozen=True)
class StoreIdentity:
    """What a kept store must match: same app (consumer group, changelog), table, cluster
    bootstrap and host. The store's own absolute path is checked too (see
    :func:`marker_valid`), so a disk copied to another host or directory restores in full."""

    app_id: str
    table: str
    broker: str
    host: str = field(default_factory=socket.gethostname)


@dataclass
class PrepareReport:
    """What :func:`prepare_table_dir` did, by partition."""

    kept: list[int] = field(default_factory=list)
    wiped: list[int] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)
    seconds: float = 0.0


def marker_path(db_dir: Path) -> Path:
    """The marker file of the partition store ``db_dir``."""
    return Path(db_dir) / MARKER_NAME


def partition_dirs(tabledir: Path, table: str) -> dict[int, Path]:
    """Partition store directories of ``table`` under ``tabledir`` (Faust's
    ``<table>-<partition>.db``), by partition.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> for n in ("users-0.db", "users-12.db", "users-backups", "other-1.db", "users-x.db"):
        ...     (d / n).mkdir()
        >>> sorted(partition_dirs(d, "users"))
        [0, 12]
    """
    pattern = re.compile(rf"^{re.escape(table)}-(\d+)\.db$")
    out: dict[int, Path] = {}
    if not Path(tabledir).is_dir():
        return out
    for p in Path(tabledir).iterdir():
        m = pattern.match(p.name)
        if m and p.is_dir():
            out[int(m.group(1))] = p
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_marker(db_dir: Path, ident: StoreIdentity, partition: int,
                 persisted_offset: int | None = None) -> Path:
    """Write the marker of a cleanly stopped partition store (atomically, fsynced).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()) / "users-3.db"; d.mkdir()
        >>> p = write_marker(d, StoreIdentity("a", "users", "b:1", "h"), 3, 99)
        >>> orjson.loads(p.read_bytes())["persisted_offset"]
        99
    """
    db_dir = Path(db_dir)
    body = {"version": MARKER_VERSION, **asdict(ident), "partition": partition,
            "path": str(db_dir.resolve()), "persisted_offset": persisted_offset,
            "pid": os.getpid(), "written_at": time.time()}
    final = marker_path(db_dir)
    tmp = final.with_name(final.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(body))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(db_dir)
    return final


def remove_marker(db_dir: Path) -> bool:
    """Remove the marker of ``db_dir`` (durably); True if there was one."""
    try:
        marker_path(db_dir).unlink()
    except FileNotFoundError:
        return False
    _fsync_dir(Path(db_dir))
    return True


def marker_valid(db_dir: Path, ident: StoreIdentity, partition: int) -> bool:
    """True when ``db_dir`` holds a marker of this version, identity, partition and path.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()) / "users-0.db"; d.mkdir()
        >>> me = StoreIdentity("a", "users", "b:1", "h")
        >>> marker_valid(d, me, 0)
        False
        >>> _ = write_marker(d, me, 0)
        >>> marker_valid(d, me, 0), marker_valid(d, me, 1)
        (True, False)
        >>> marker_valid(d, StoreIdentity("a", "users", "b:1", "other-host"), 0)
        False
        >>> _ = marker_path(d).write_bytes(b"{not json")
        >>> marker_valid(d, me, 0)
        False
    """
    try:
        body = orjson.loads(marker_path(db_dir).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    if not isinstance(body, dict):
        return False
    expect = {"version": MARKER_VERSION, **asdict(ident), "partition": partition,
              "path": str(Path(db_dir).resolve())}
    return all(body.get(k) == v for k, v in expect.items())


def store_in_use(db_dir: Path) -> bool:
    """True when another process holds the RocksDB ``LOCK`` of ``db_dir`` (an open store).

    RocksDB locks that file with ``fcntl`` while the database is open; a process that was
    killed holds nothing. Call it before this process opens the store (a POSIX lock of the
    own process would not be seen, and closing the probe would release it).
    """
    lock = Path(db_dir) / "LOCK"
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def prepare_table_dir(tabledir: Path, table: str, ident: StoreIdentity) -> PrepareReport:
    """Start of the protocol (module docstring, step 1) for every partition store of ``table``:
    keep the ones with a valid marker, delete the others, remove the markers."""
    t0 = time.monotonic()
    report = PrepareReport()
    for partition, db_dir in sorted(partition_dirs(tabledir, table).items()):
        if store_in_use(db_dir):
            report.busy.append(partition)
        elif marker_valid(db_dir, ident, partition):
            remove_marker(db_dir)
            report.kept.append(partition)
        else:
            shutil.rmtree(db_dir)
            report.wiped.append(partition)
    if report.wiped or report.kept or report.busy:
        _fsync_dir(Path(tabledir))
    report.seconds = round(time.monotonic() - t0, 4)
    return report


class ChangelogLedger:
    """Changelog records sent and delivered, per partition (module docstring, step 2).

    Example:
        >>> led = ChangelogLedger()
        >>> for p in (0, 0, 1):
        ...     led.sent(p); led.applied(p)
        >>> led.delivered(0)
        >>> led.in_flight(0), led.in_flight(1), led.in_flight(7), led.settled(1)
        (1, 1, 0, False)
        >>> led.delivered(0); led.delivered(1); led.settled()
        True
        >>> led.sent(1); led.delivered(1); led.settled()  # delivered, local write failed
        False
    """

    def __init__(self) -> None:
        self._sent: defaultdict[int, int] = defaultdict(int)
        self._applied: defaultdict[int, int] = defaultdict(int)
        self._delivered: defaultdict[int, int] = defaultdict(int)
        #: partitions marked clean at stop; a later send must remove the marker again
        self.marked: dict[int, Path] = {}

    def sent(self, partition: int) -> None:
        self._sent[partition] += 1
        db_dir = self.marked.pop(partition, None)
        if db_dir is not None:
            remove_marker(db_dir)
            log.warning("table store %s: written after its clean-stop marker; marker removed",
                        db_dir)

    def applied(self, partition: int) -> None:
        """The local write that goes with a sent record succeeded (Faust sends first)."""
        self._applied[partition] += 1

    def delivered(self, partition: int) -> None:
        self._delivered[partition] += 1

    def in_flight(self, partition: int) -> int:
        return self._sent.get(partition, 0) - self._delivered.get(partition, 0)

    def settled(self, partition: int | None = None) -> bool:
        """Every record sent on ``partition`` (or on any partition) was delivered and its
        local write done: the local store holds nothing the changelog lacks, and the
        changelog nothing the local store lacks below its persisted offset."""
        parts = [partition] if partition is not None else list(self._sent)
        return all(self.in_flight(p) <= 0 and self._applied.get(p, 0) == self._sent.get(p, 0)
                   for p in parts)

    async def wait_settled(self, timeout: float, interval: float = 0.01) -> bool:
        """Let delivery callbacks still queued on the event loop run (up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not self.settled():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval)
        return True

    def snapshot(self) -> dict[str, Any]:
        """Counts for logs and probes."""
        return {"sent": dict(self._sent), "applied": dict(self._applied),
                "delivered": dict(self._delivered)}


def mark_clean_stop(tabledir: Path, table: str, ident: StoreIdentity, ledger: ChangelogLedger,
                    persisted: dict[int, int | None] | None = None,
                    skip: list[int] | tuple[int, ...] = ()) -> tuple[list[int], list[int]]:
    """End of the protocol (step 3): a marker for every partition store of ``table`` on disk
    with nothing in flight, except the ``skip`` partitions (stores another process held at
    start). Returns (marked, not marked) partitions.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> for p in (0, 1, 2):
        ...     (d / f"users-{p}.db").mkdir()
        >>> led = ChangelogLedger(); led.sent(1); led.applied(1)
        >>> mark_clean_stop(d, "users", StoreIdentity("a", "users", "b:1", "h"), led)
        ([0, 2], [1])
        >>> led.sent(2)  # a write after the marker: the marker goes again
        >>> marker_path(d / "users-2.db").exists(), marker_path(d / "users-0.db").exists()
        (False, True)
    """
    marked: list[int] = []
    unmarked: list[int] = []
    for partition, db_dir in sorted(partition_dirs(tabledir, table).items()):
        if partition in skip:
            continue
        if ledger.settled(partition):
            write_marker(db_dir, ident, partition, (persisted or {}).get(partition))
            ledger.marked[partition] = db_dir
            marked.append(partition)
        else:
            unmarked.append(partition)
    return marked, unmarked


#: seconds a stopping store waits for delivery reports still queued on the event loop
SETTLE_TIMEOUT_S = 2.0
#: keys per step of :meth:`CleanStopRocksDB.count_keys` (~15 ms at ~3 µs per key)
COUNT_CHUNK = 5_000


class CleanStopRocksDB(RocksDBStore):
    """Faust's RocksDB store with the clean-stop protocol of this module.

    Partition stores are checked (kept or wiped) once, just before the first one is opened in
    the process (recovery asks for persisted offsets through that path, so nothing reads a
    store before the check); :class:`LedgerTable` (and any other writer, such as
    ``state_store.DirectTableWriter``) counts its changelog sends, local writes and deliveries
    in :attr:`ledger`; :meth:`stop` flushes the memtables and writes the markers.

    **Key counts.** ``len(table)`` (the ``stream_app_table_users`` gauge, every 10 s) made
    Faust iterate every key on disk: ~3 µs of CPU per key (0.3 s per 100k users, 1.2 s
    measured on a loaded machine). Here each partition's count is taken once (lazily, on the
    first ``len``) and then kept up to date by the writes: a put counts a key that did not
    exist (known from the read the agent just made of the same key, or from one RocksDB get),
    a delete one that did. A changelog batch applied by recovery and a revocation drop the
    partition's count, to be taken again. The gauge takes it with :meth:`count_keys`, in
    steps with the event loop free in between (taken in one go it held the loop ~35 ms per
    5k users right after every start, docs/PERFORMANCE.md item 37).
    """

    ledger: ChangelogLedger
    prepared: PrepareReport | None = None
    #: RocksDB's write-ahead log on (module docstring: off by default)
    wal: bool = False

    def __init__(self, *args: Any, wal: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wal = wal
        self.ledger = ChangelogLedger()
        #: keys per partition store, for the partitions counted so far
        self.key_counts: dict[int, int] = {}
        #: partitions being counted by count_keys: the writes since its iterator opened
        self._counting: dict[int, int] = {}
        #: (key, existed) of the last read, valid until the next write
        self._last_read: tuple[bytes, bool] | None = None

    def identity(self) -> StoreIdentity:
        brokers = ",".join(sorted(str(u) for u in self.app.conf.broker))
        return StoreIdentity(app_id=self.app.conf.id, table=str(self.basename), broker=brokers)

    def prepare(self) -> PrepareReport:
        """Step 1 of the protocol, once per process."""
        if self.prepared is None:
            self.prepared = r = prepare_table_dir(Path(self.path), str(self.basename),
                                                  self.identity())
            if r.wiped:
                log.warning("table %s: partition stores %s had no clean-stop marker (crash, "
                            "kill -9 or a copied disk): deleted, restored from the changelog",
                            self.basename, r.wiped)
            log.info("table %s: clean-stop check in %.3fs: kept %s, wiped %s, in use %s",
                     self.basename, r.seconds, r.kept, r.wiped, r.busy)
        return self.prepared

    def _open_for_partition(self, partition: int) -> Any:
        self.prepare()
        db = super()._open_for_partition(partition)
        if not self.wal and hasattr(db, "set_write_options"):
            import rocksdict  # noqa: PLC0415

            opts = rocksdict.WriteOptions()
            opts.disable_wal = True
            db.set_write_options(opts)
        return db

    def flush_partitions(self, partitions: Any) -> list[int]:
        """Memtables of the open ``partitions`` to files; returns those whose flush failed."""
        failed = []
        for partition in partitions:
            db = self._dbs.get(partition)
            if db is None:
                continue
            try:
                db.flush()
            except Exception as exc:  # noqa: BLE001 - reported, and the partition unmarked
                log.warning("table %s: flush of partition %s failed: %r",
                            self.basename, partition, exc)
                failed.append(partition)
        return failed

    # -- key counts (class docstring) ------------------------------------------------------

    def _get(self, key: bytes) -> bytes | None:
        value = super()._get(key)
        self._last_read = (key, value is not None)
        return value

    def _exists_in(self, partition: int, key: bytes) -> bool:
        db = self._db_for_partition(partition)
        return bool(db.key_may_exist(key)) and db.get(key) is not None

    def _set(self, key: bytes, value: bytes | None) -> None:
        known, self._last_read = self._last_read, None
        event = current_event()
        partition = event.message.partition if event is not None else None
        counted = partition is not None and (partition in self.key_counts
                                             or partition in self._counting)
        existed = True
        if counted:
            existed = known[1] if known is not None and known[0] == key else \
                self._exists_in(partition, key)  # type: ignore[arg-type]
        super()._set(key, value)
        if counted and not existed:
            self._add_count(partition, 1)  # type: ignore[arg-type]

    def _del(self, key: bytes) -> None:
        self._last_read = None
        for partition in [*self.key_counts, *self._counting]:
            if partition in self._dbs and self._exists_in(partition, key):
                self._add_count(partition, -1)
        super()._del(key)

    def _add_count(self, partition: int, n: int) -> None:
        """``n`` keys more (or fewer) in ``partition``: in its count, or in the count being
        taken (the keys its iterator does not see)."""
        if partition in self.key_counts:
            self.key_counts[partition] += n
        elif partition in self._counting:
            self._counting[partition] += n

    async def count_keys(self, chunk: int = COUNT_CHUNK) -> int:
        """Take the count of every active partition not counted yet, ``chunk`` keys per step
        with the event loop free in between; returns the partitions counted. A RocksDB
        iterator sees the store as it was when it opened: the writes after that are added
        (:meth:`_add_count`), and a recovery batch or a revocation abandons the count."""
        done = 0
        for partition, db in self._active_dbs():
            if partition in self.key_counts or partition in self._counting:
                continue
            self._counting[partition] = 0
            keys, n = self._visible_keys(db), 0
            while True:
                step = sum(1 for _ in itertools.islice(keys, chunk))
                n += step
                if step < chunk:
                    self.key_counts[partition] = n + self._counting.pop(partition)
                    done += 1
                    break
                await asyncio.sleep(0)
                if partition not in self._counting:   # abandoned meanwhile: the store may
                    break                             # be closed, do not read it again
        return done

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        events = list(batch)
        for event in events:
            self.key_counts.pop(event.message.partition, None)
            self._counting.pop(event.message.partition, None)
        self._last_read = None
        super().apply_changelog_batch(events, to_key, to_value)

    def revoke_partitions(self, table: Any, tps: Any) -> None:
        parts = [tp.partition for tp in tps if tp.topic in table.changelog_topic.topics]
        for partition in parts:
            self.key_counts.pop(partition, None)
            self._counting.pop(partition, None)
        self._last_read = None
        if not self.wal:
            # Faust drops the database without closing it: its writes go to files now
            self.flush_partitions(parts)
        super().revoke_partitions(table, tps)

    def _active_dbs(self) -> list[tuple[int, Any]]:
        """(partition, database) of the partitions this worker holds as active (every one
        of a global table): the ones ``len()`` counts."""
        actives = self.app.assignor.assigned_actives()
        topic = self.table.changelog_topic_name  # type: ignore[attr-defined]
        return [(partition, db) for partition, db in self._dbs.items()
                if TP(topic=topic, partition=partition) in actives or self.table.is_global]

    def _size(self) -> int:
        total = 0
        for partition, db in self._active_dbs():
            if partition not in self.key_counts:
                self._counting.pop(partition, None)   # counted here, in one go
                self.key_counts[partition] = self._size1(db)
            total += self.key_counts[partition]
        return total

    async def stop(self) -> None:
        """Faust's stop (drop the databases), then step 3 of the protocol. Faust stops the
        tables after the consumer's final commit (which flushed the producer), before the
        app's last producer flush: delivery reports still queued are waited for briefly.

        Only stores this process judged are marked: a process that stops before it opened any
        store (e.g. during the group join) leaves the disk as it found it, and a store another
        process held is not touched."""
        if self.prepared is None:
            await super().stop()
            return
        if not await self.ledger.wait_settled(SETTLE_TIMEOUT_S):
            log.warning("table %s: changelog records still in flight at stop: %s",
                        self.basename, self.ledger.snapshot())
        persisted: dict[int, int | None] = {}
        for partition, db in list(self._dbs.items()):
            try:
                raw = db.get(self.offset_key)
                persisted[partition] = int(raw) if raw is not None else None
            except Exception as exc:  # noqa: BLE001 - the marker records what it can
                log.warning("table %s: persisted offset of partition %s unreadable at stop: "
                            "%r", self.basename, partition, exc)
        # memtables to files (the next open replays no log; without one, the files must
        # hold every write before a marker says so)
        failed = self.flush_partitions(list(self._dbs))
        await super().stop()
        marked, unmarked = mark_clean_stop(Path(self.path), str(self.basename), self.identity(),
                                           self.ledger, persisted,
                                           skip=[*self.prepared.busy, *failed])
        log.info("table %s: clean-stop markers for partitions %s; none for %s (in flight)",
                 self.basename, marked, unmarked)


class LedgerTable(faust.Table):
    """A Faust table whose ``rocksdb:`` store is :class:`CleanStopRocksDB` and whose changelog
    sends, local writes and delivery reports are counted in the store's ledger (any other
    store: Faust's, nothing counted). Faust's ``table[key] = value`` sends the record first
    (``on_key_set``), then writes the store: the write is counted once it returned."""

    _last_partition: int | None = None
    #: the class of a ``rocksdb:`` store and extra arguments for it (a subclass may choose
    #: ``state_cache.CachedRocksDB``)
    store_class: type = CleanStopRocksDB
    store_kwargs: dict[str, Any] = {}  # noqa: RUF012 - read only

    def _new_store_by_url(self, url: str | URL) -> Any:
        if URL(str(url)).scheme != "rocksdb":
            return super()._new_store_by_url(url)
        return self.store_class(
            url, self.app, self, table_name=self.name, key_type=self.key_type,
            key_serializer=self.key_serializer, value_serializer=self.value_serializer,
            value_type=self.value_type, loop=self.loop, options=self.options,
            **self.store_kwargs)

    def _ledger(self) -> ChangelogLedger | None:
        return getattr(self.data, "ledger", None)

    def send_changelog(self, partition: int | None, key: Any, value: Any,
                       key_serializer: Any = None, value_serializer: Any = None
                       ) -> FutureMessage:
        fut = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        ledger = self._ledger()
        if ledger is not None:
            self._last_partition = fut.message.partition
            ledger.sent(fut.message.partition)
        return fut

    def _applied(self) -> None:
        ledger, partition = self._ledger(), self._last_partition
        if ledger is not None and partition is not None:
            self._last_partition = None
            ledger.applied(partition)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._last_partition = None
        super().__setitem__(key, value)  # send_changelog, then the store write
        self._applied()

    def __delitem__(self, key: Any) -> None:
        self._last_partition = None
        super().__delitem__(key)
        self._applied()

    def _on_changelog_sent(self, fut: FutureMessage) -> None:
        super()._on_changelog_sent(fut)  # raises for a failed delivery: not counted
        ledger = self._ledger()
        if ledger is not None:
            ledger.delivered(fut.message.partition)
