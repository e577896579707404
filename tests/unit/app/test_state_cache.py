"""The users table's write-back cache against a real RocksDB (rocksdict) per partition: what
the agent reads is what it last wrote, RocksDB holds every write before a persisted offset is
stored and at revocation, deletes are not undone by a later write-back, key counts stay right,
and memory stays bounded by the clean entries it may drop."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st
from rocksdict import Options, Rdict

from stream_app.app.state_cache import CachedRocksDB, WriteBack
from stream_app.app.state_store import DirectTableWriter, key_encoder
from stream_app.app.store_marker import ChangelogLedger

CHANGELOG = "app-users-changelog"


def make_store(path: Path, max_users: int = 100) -> CachedRocksDB:
    """A CachedRocksDB with its partition databases in ``path`` and none of Faust's app."""
    s = CachedRocksDB.__new__(CachedRocksDB)
    s.cache = WriteBack(max_users)
    s.key_counts = {}
    s._counting = {}
    s._last_read = None
    s._dbs = {}
    s._key_index = {}
    s.prepared = None
    s.use_rocksdict = True
    s.ledger = ChangelogLedger()
    s.offset_key = b"__faust\x00offset__"

    def open_partition(p: int) -> Rdict:
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        return Rdict(str(path / f"users-{p}.db"), opts)
    s._open_for_partition = open_partition  # type: ignore[method-assign]
    return s


def test_cached_keys_are_exact_size_copies(tmp_path: Path) -> None:
    """orjson's bytes keep their ~4 KB output buffer: 100k cached keys would hold 400 MB.
    The writer encodes keys as Faust's changelog does (JSON) with the exact-size encoder."""
    import tracemalloc

    s = make_store(tmp_path)

    class P:
        after_flush: list[Any] = []

        def produce_tracked(self, *a: Any, **kw: Any) -> None:
            pass
    w = DirectTableWriter(s, CHANGELOG, lambda: P(), key_encoder(orjson.dumps))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(500):
            w.set(f"用户-{i}", b"v", i % 4)
        per_key = (tracemalloc.get_traced_memory()[0] - before) / 500
    finally:
        tracemalloc.stop()
    assert next(iter(s.cache.vals)) == orjson.dumps("用户-0")
    assert per_key < 1000, per_key


def test_keys_read_absent_and_not_written_are_forgotten_at_the_write_back(tmp_path: Path
                                                                          ) -> None:
    s = make_store(tmp_path)
    s.key_counts[0] = 0
    for i in range(1000):                      # e.g. deletion requests of unknown users
        assert s.cache_get(k(f"nobody-{i}"), 0) is None
    assert s.cache_get(k("new"), 0) is None
    s.cache_set(k("new"), b"1", 0)
    s.write_back()
    assert s.cache.absent == {} and s.key_counts[0] == 1


def on_disk(store: CachedRocksDB, partition: int) -> dict[bytes, bytes]:
    db = store._db_for_partition(partition)
    return {k: v for k, v in db.items() if k != store.offset_key}


def k(uid: str) -> bytes:
    return orjson.dumps(uid)


def test_reads_come_from_the_cache_and_rocksdb_gets_them_before_the_offset(tmp_path: Path
                                                                           ) -> None:
    s = make_store(tmp_path)
    assert s.cache_get(k("u1"), 0) is None
    s.cache_set(k("u1"), b"v1", 0)
    s.cache_set(k("u1"), b"v2", 0)
    s.cache_set(k("用户"), b"v3", 1)
    assert s.cache_get(k("u1"), 0) == b"v2" and s.cache_get(k("用户"), 1) == b"v3"
    assert on_disk(s, 0) == {} and on_disk(s, 1) == {}          # not yet
    s.set_persisted_offset(TP(CHANGELOG, 0), 41)
    assert on_disk(s, 0) == {k("u1"): b"v2"}                    # one put of the latest value
    assert s._db_for_partition(0).get(s.offset_key) == b"41"
    assert on_disk(s, 1) == {}                                  # other partitions wait


def test_values_on_disk_are_read_once_then_cached(tmp_path: Path) -> None:
    s = make_store(tmp_path)
    s._db_for_partition(2).put(k("old"), b"state")
    assert s.cache_get(k("old"), 2) == b"state"
    s._db_for_partition(2).put(k("old"), b"changed behind the cache")
    assert s.cache_get(k("old"), 2) == b"state"
    assert s.cache.dirty == {}                                  # a read is clean


def test_key_counts_grow_by_new_keys_only(tmp_path: Path) -> None:
    s = make_store(tmp_path)
    s._db_for_partition(0).put(k("a"), b"1")
    s.key_counts[0] = 1
    for uid in ("a", "b", "c"):
        s.cache_get(k(uid), 0)
        s.cache_set(k(uid), b"2", 0)
    s.write_back()
    assert s.key_counts[0] == 3
    s.cache_set(k("b"), b"3", 0)
    s.write_back()
    assert s.key_counts[0] == 3


def test_dirty_states_survive_eviction_and_clean_ones_make_room(tmp_path: Path) -> None:
    s = make_store(tmp_path, max_users=10)
    for i in range(30):
        s.cache_set(k(f"u{i}"), b"%d" % i, i % 2)
    assert len(s.cache.vals) == 30                              # all dirty: nothing dropped
    assert all(s.cache_get(k(f"u{i}"), i % 2) == b"%d" % i for i in range(30))
    s.write_back()
    s.cache_set(k("new"), b"x", 0)                                 # over the bound: clean go
    assert len(s.cache.vals) <= 10
    assert s.cache_get(k("new"), 0) == b"x"
    assert all(s.cache_get(k(f"u{i}"), i % 2) == b"%d" % i for i in range(30))  # from disk


def test_a_delete_is_not_undone_by_a_later_write_back(tmp_path: Path) -> None:
    s = make_store(tmp_path)
    s.cache_set(k("gone"), b"v", 3)
    assert s._contains(k("gone"))                               # Faust's `key in table`
    s._del(k("gone"))
    s.write_back()
    assert s.cache_get(k("gone"), 3) is None and on_disk(s, 3) == {}
    assert not s._contains(k("gone"))


def test_faust_writes_and_reads_see_the_cache(tmp_path: Path) -> None:
    s = make_store(tmp_path)
    s.cache_set(k("u"), b"agent", 0)
    assert s._get(k("u")) == b"agent"
    s.write_back()
    s.cache_set(k("u"), b"newer", 0)
    s._flush_key(k("u"))                                        # what _set/_del do first
    assert on_disk(s, 0) == {k("u"): b"newer"} and k("u") not in s.cache.vals


def test_revocation_writes_back_and_forgets_the_partition(tmp_path: Path) -> None:
    s = make_store(tmp_path)
    s.cache_set(k("a"), b"1", 0)
    s.cache_set(k("b"), b"2", 1)
    table = SimpleNamespace(changelog_topic=SimpleNamespace(topics={CHANGELOG}))
    db0 = s._db_for_partition(0)
    s._db_for_partition(1)
    s.revoke_partitions(table, {TP(CHANGELOG, 0)})
    assert db0.get(k("a")) == b"1"
    assert k("a") not in s.cache.vals and 0 not in s._dbs
    assert s.cache.vals == {k("b"): b"2"} and list(s.cache.dirty) == [1]


def test_iteration_sees_states_not_yet_written_back(tmp_path: Path) -> None:
    s = make_store(tmp_path)
    s.app = SimpleNamespace(assignor=SimpleNamespace(
        assigned_actives=lambda: {TP(CHANGELOG, 0), TP(CHANGELOG, 1)}))
    s.table = SimpleNamespace(changelog_topic_name=CHANGELOG, is_global=False)
    s.cache_set(k("a"), b"1", 0)
    s.cache_set(k("b"), b"2", 1)
    assert dict(s._iteritems()) == {k("a"): b"1", k("b"): b"2"}
    assert s._size() == 2


def test_stepwise_count_sees_the_cache_and_the_write_backs_between_its_steps(
        tmp_path: Path) -> None:
    """``count_keys`` counts the files; the cache's new keys are added when they are written
    back, while it waits or after it is done."""
    s = make_store(tmp_path)
    s.app = SimpleNamespace(assignor=SimpleNamespace(
        assigned_actives=lambda: {TP(CHANGELOG, 0)}))
    s.table = SimpleNamespace(changelog_topic_name=CHANGELOG, is_global=False)
    for i in range(5):
        s._db_for_partition(0).put(k(f"disk{i}"), b"1")
    for uid in ("cached1", "cached2", "disk0"):      # two new keys, dirty in the cache only
        s.cache_get(k(uid), 0)
        s.cache_set(k(uid), b"2", 0)
    counting = s.count_keys(chunk=2)
    counting.send(None)                               # first step taken, the loop is free
    for uid in ("late1", "disk1"):                    # one new key, one rewrite
        s.cache_get(k(uid), 0)
        s.cache_set(k(uid), b"3", 0)
    s.write_back()
    try:
        while True:
            counting.send(None)
    except StopIteration:
        pass
    assert s.key_counts == {0: 8} and s._counting == {}
    assert sum(1 for _ in s._iterkeys()) == 8


def test_the_writer_reads_and_writes_through_the_cache(tmp_path: Path) -> None:
    class P:
        after_flush: list[Any] = []
        delivered: dict[tuple[str, int], int] = {}
        sent: list[Any] = []

        def produce_tracked(self, *a: Any, **kw: Any) -> None:
            self.sent.append(a[:4])
    s = make_store(tmp_path)
    p = P()
    w = DirectTableWriter(s, CHANGELOG, lambda: p)
    w.set("u", b"{}", 2)
    assert w.get("u", 2) == b"{}" and p.sent == [(CHANGELOG, b'"u"', b"{}", 2)]
    assert s.ledger.snapshot()["sent"] == {2: 1}
    p.delivered = {(CHANGELOG, 2): 0}
    w.persist_offsets()
    assert on_disk(s, 2) == {b'"u"': b"{}"}


OPS = st.lists(st.tuples(st.sampled_from(["set", "get", "del", "persist", "evict"]),
                         st.integers(0, 11), st.integers(0, 99)), max_size=120)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_random_operations_match_a_dict(ops: list[tuple[str, int, int]]) -> None:
    """Any mix of writes, reads, deletes, write-backs and evictions: reads equal a plain dict
    model, and after a final write-back RocksDB equals it too."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        s = make_store(Path(d), max_users=4)
        model: dict[str, bytes] = {}
        for op, user, val in ops:
            uid, part = f"u{user}", user % 3
            if op == "set":
                s.cache_set(k(uid), b"%d" % val, part)
                model[uid] = b"%d" % val
            elif op == "get":
                assert s.cache_get(k(uid), part) == model.get(uid)
            elif op == "del":
                s._del(k(uid))
                model.pop(uid, None)
            elif op == "persist":
                s.set_persisted_offset(TP(CHANGELOG, part), val)
            else:
                s.cache.evict()
        s.write_back()
        disk = {}
        for part in range(3):
            disk.update(on_disk(s, part))
        assert disk == {k(u): v for u, v in model.items()}

