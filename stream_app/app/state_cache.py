"""A write-back cache of the users table's RocksDB store: the agent reads and writes a dict;
RocksDB gets each user's latest state once per commit.

Why: the worker reads and writes one user's state per event. Through Faust's RocksDB store
that is a ``SerializedStore`` encode, a partition lookup through the current event, an LRU key
index under a lock and a RocksDB get, then the same again with a put (and its write-ahead log
record). A ``memory://`` store is a dict, and the same backlog ran 1.23-1.34x faster with it
(``python -m bench.ablation --variants full,memory_store``, docs/PERFORMANCE.md item 21), but a
restarted worker then reads the whole changelog (75 s for 100k users instead of 0.8 s).

What the RocksDB files are for decides what the cache may defer. They matter only at a start
after a *clean* stop (:mod:`stream_app.app.store_marker`: after a crash they are deleted and
the partition is restored from the changelog) and when a partition comes back after a
rebalance (Faust reads the changelog past the partition's *persisted offset*). The changelog
record of every write is still produced at once (``DirectTableWriter``), so the files only have
to hold every write up to the persisted offset whenever that offset is stored, and everything
at a clean stop. Hence:

* ``cache_get``/``cache_set`` serve the agent from a dict (``key -> state bytes``); a write
  marks the key dirty in its partition;
* before a partition's persisted offset is stored (after each producer flush, i.e. before each
  commit), before the partition is revoked or restored, before any iteration or count of the
  table, and at stop, the partition's dirty keys go to RocksDB in one ``WriteBatch`` (one put
  per user per commit, however many events the user had);
* Faust's own reads, writes and deletes (tombstones, ``table[key]``) go through the cache, so
  nobody sees an older state than the agent wrote;
* at most ``max_users`` states are kept; past that the oldest *clean* ones are dropped (dirty
  ones stay until written back), so memory is bounded by ``max_users`` x the state size
  (~1.3 KB per user in the benchmark's workload) plus what one commit interval writes.

A crash loses nothing the changelog has: the store is wiped and restored as before.

Example (the cache alone, as the store uses it):
    >>> c = WriteBack(max_users=2)
    >>> c.put(b'"u1"', b"{1}", 0); c.put(b'"u2"', b"{2}", 1); c.put(b'"u1"', b"{3}", 0)
    >>> c.vals[b'"u1"'], sorted(c.dirty), c.take_dirty(0)
    (b'{3}', [0, 1], ({b'"u1"': b'{3}'}, 0))
    >>> c.keep(b'"u3"', b"{4}", 2)                     # a read: clean, may be dropped
    >>> sorted(c.vals)                                   # u2 is dirty: kept over the bound
    [b'"u1"', b'"u2"', b'"u3"']
    >>> c.evict(), sorted(c.vals)        # clean ones go, oldest first, down to 90% of 2
    (2, [b'"u2"'])
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from faust.types import TP

from stream_app.app.store_marker import CleanStopRocksDB

log = logging.getLogger(__name__)

#: after an eviction the cache holds at most this share of ``max_users``
EVICT_TO = 0.9


class WriteBack:
    """The cache's bookkeeping: values, each key's partition, dirty keys per partition and
    keys read as absent from the store since the partition's last write-back (so the
    write-back can count new keys; the agent reads a user before it writes it, in one step
    without a pause, so a key read absent and not written by then is forgotten then)."""

    __slots__ = ("max_users", "vals", "part", "dirty", "absent")

    def __init__(self, max_users: int) -> None:
        self.max_users = max_users
        #: key -> value, oldest first (a write moves its key to the end)
        self.vals: dict[bytes, bytes] = {}
        self.part: dict[bytes, int] = {}
        #: partition -> key -> value written since the last write-back
        self.dirty: dict[int, dict[bytes, bytes]] = {}
        #: partition -> keys the store did not have when read
        self.absent: dict[int, set[bytes]] = {}

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        """A write: cached and dirty in ``partition``."""
        vals = self.vals
        vals.pop(key, None)   # a write moves the key to the end
        vals[key] = value
        self.part[key] = partition
        d = self.dirty.get(partition)
        if d is None:
            d = self.dirty[partition] = {}
        d[key] = value

    def keep(self, key: bytes, value: bytes, partition: int) -> None:
        """A value read from the store: cached clean."""
        self.vals[key] = value
        self.part[key] = partition

    def read_absent(self, key: bytes, partition: int) -> None:
        """``key`` was read and the store does not have it."""
        keys = self.absent.get(partition)
        if keys is None:
            keys = self.absent[partition] = set()
        keys.add(key)

    def discard(self, key: bytes) -> None:
        """Forget ``key`` (deleted, or written past the cache)."""
        self.vals.pop(key, None)
        p = self.part.pop(key, None)
        if p is not None:
            d = self.dirty.get(p)
            if d:
                d.pop(key, None)
        for keys in self.absent.values():
            keys.discard(key)

    def take_dirty(self, partition: int) -> tuple[dict[bytes, bytes], int]:
        """The dirty keys of ``partition`` (now clean) and how many of them the store did not
        have; the partition's absent keys are forgotten."""
        dirty = self.dirty.pop(partition, None) or {}
        absent = self.absent.pop(partition, None) or set()
        return dirty, sum(1 for k in absent if k in dirty)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget every key of ``partitions`` (revoked, or about to be restored)."""
        parts = set(partitions)
        for p in parts:
            self.dirty.pop(p, None)
            self.absent.pop(p, None)
        for key in [k for k, p in self.part.items() if p in parts]:
            self.vals.pop(key, None)
            del self.part[key]

    def over(self) -> bool:
        return len(self.vals) > self.max_users

    def evict(self) -> int:
        """Drop the oldest clean keys until at most ``EVICT_TO`` of ``max_users`` are held (or
        only dirty ones are left); returns how many were dropped."""
        target = int(self.max_users * EVICT_TO)
        excess = len(self.vals) - target
        if excess <= 0:
            return 0
        drop: list[bytes] = []
        dirty, part = self.dirty, self.part
        for key in self.vals:
            d = dirty.get(part[key])
            if d is None or key not in d:
                drop.append(key)
                if len(drop) >= excess:
                    break
        for key in drop:
            del self.vals[key]
            del part[key]
        return len(drop)


class CachedRocksDB(CleanStopRocksDB):
    """:class:`CleanStopRocksDB` with the write-back cache of this module's docstring.

    ``cache_get``/``cache_set`` take the store key (bytes, as ``DirectTableWriter`` encodes it
    for the changelog too) and the partition of the event being processed; Faust's own paths
    (``_get``/``_set``/``_del``/``_contains``, iteration, recovery, revocation, stop) see the
    same data."""

    #: states kept in memory at most (the dirty ones of one commit interval come on top)
    max_users: int = 100_000

    def __init__(self, *args: Any, max_users: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache = WriteBack(max_users or self.max_users)

    # -- the agent's path (keys as the store encodes them: DirectTableWriter.encode_key) --
    def cache_get(self, k: bytes, partition: int) -> bytes | None:
        """The state under store key ``k`` (held in ``partition``), from the cache or the
        store."""
        value = self.cache.vals.get(k)
        if value is not None:
            return value
        value = self._db_for_partition(partition).get(k)
        if value is None:
            self.cache.read_absent(k, partition)
        else:
            self.cache.keep(k, value, partition)
            if self.cache.over():
                self.cache.evict()
        return value

    def cache_set(self, k: bytes, value: bytes, partition: int) -> None:
        """Write ``value`` under store key ``k`` in ``partition`` (to RocksDB at the next
        write-back). ``k`` is kept: it must be an exact-size copy
        (:func:`~stream_app.app.state_store.exact_json_key`), not orjson's own bytes."""
        self._last_read = None
        cache = self.cache
        cache.put(k, value, partition)
        if len(cache.vals) > cache.max_users:   # cache.over(), inline: once per event
            cache.evict()

    # -- write-back ----------------------------------------------------------------------
    def write_back(self, partitions: Iterable[int] | None = None) -> int:
        """Write the dirty states of ``partitions`` (all when None) to RocksDB, one batch per
        partition; returns how many."""
        import rocksdict  # noqa: PLC0415

        cache = self.cache
        parts = [*{*cache.dirty, *cache.absent}] if partitions is None else list(partitions)
        n = 0
        for p in parts:
            dirty, added = cache.take_dirty(p)
            if not dirty:
                continue
            batch = rocksdict.WriteBatch(raw_mode=True)
            for k, v in dirty.items():
                batch.put(k, v)
            self._db_for_partition(p).write(batch)
            self._add_count(p, added)
            n += len(dirty)
        return n

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        """The files hold every write up to ``offset`` first, then the offset."""
        self.write_back([tp.partition])
        super().set_persisted_offset(tp, offset)

    # -- Faust's paths, kept consistent with the cache ----------------------------------
    def _get(self, key: bytes) -> bytes | None:
        value = self.cache.vals.get(key)
        if value is not None:
            self._last_read = (key, True)
            return value
        return super()._get(key)

    def _set(self, key: bytes, value: bytes | None) -> None:
        # a write past the cache (Faust's table API): the cached copy is older
        self._flush_key(key)
        super()._set(key, value)

    def _del(self, key: bytes) -> None:
        self._flush_key(key)
        super()._del(key)

    def _flush_key(self, key: bytes) -> None:
        """Before Faust writes or deletes ``key`` itself: if it is dirty (and so maybe not in
        the files yet), write it back so key counts stay right, then forget it."""
        p = self.cache.part.get(key)
        if p is not None and key in self.cache.dirty.get(p, ()):
            self.write_back([p])
        self.cache.discard(key)

    def _contains(self, key: bytes) -> bool:
        return key in self.cache.vals or super()._contains(key)

    def _size(self) -> int:
        self.write_back()
        return super()._size()

    def _iterkeys(self) -> Iterator[bytes]:
        self.write_back()
        yield from super()._iterkeys()

    def _itervalues(self) -> Iterator[bytes]:
        self.write_back()
        yield from super()._itervalues()

    def _iteritems(self) -> Iterator[tuple[bytes, bytes]]:
        self.write_back()
        yield from super()._iteritems()

    def apply_changelog_batch(self, batch: Any, to_key: Any, to_value: Any) -> None:
        events = list(batch)
        parts = {event.message.partition for event in events}
        self.write_back(parts)
        self.cache.drop_partitions(parts)  # the changelog is the truth being restored
        super().apply_changelog_batch(events, to_key, to_value)

    def revoke_partitions(self, table: Any, tps: Any) -> None:
        parts = {tp.partition for tp in tps if tp.topic in table.changelog_topic.topics}
        self.write_back(p for p in parts if p in self._dbs)
        self.cache.drop_partitions(parts)
        super().revoke_partitions(table, tps)

    async def stop(self) -> None:
        if self.prepared is not None:
            self.write_back(p for p in list(self.cache.dirty) if p in self._dbs)
        await super().stop()
