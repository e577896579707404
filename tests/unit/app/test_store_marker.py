"""Clean-stop markers of the rocksdb:// users table (stream_app/app/store_marker.py): which
partition stores a start keeps or deletes, and when a stop marks them clean. Real RocksDB
(rocksdict) files in a temporary directory; no broker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import faust
import pytest
from faust.streams import _current_event

from stream_app.app import store_marker as sm
from stream_app.app.store_marker import (
    ChangelogLedger,
    CleanStopRocksDB,
    LedgerTable,
    StoreIdentity,
    mark_clean_stop,
    marker_path,
    prepare_table_dir,
    write_marker,
)
from tests.unit.app.snippet import last_line

ME = StoreIdentity(app_id="app", table="users", broker="kafka://b:1", host="host-a")


def _dirs(tmp: Path, *parts: int) -> dict[int, Path]:
    out = {}
    for p in parts:
        d = tmp / f"users-{p}.db"
        d.mkdir()
        (d / "CURRENT").write_text("data")  # stands for the RocksDB files
        out[p] = d
    return out


def test_start_keeps_only_marked_stores_and_removes_their_markers(tmp_path):
    d = _dirs(tmp_path, 0, 1, 2)
    write_marker(d[0], ME, 0, persisted_offset=10)
    write_marker(d[2], ME, 2)
    (tmp_path / "users-backups").mkdir()  # Faust's backup dir: not a partition store
    r = prepare_table_dir(tmp_path, "users", ME)
    assert (r.kept, r.wiped, r.busy) == ([0, 2], [1], [])
    assert (d[0] / "CURRENT").exists() and (d[2] / "CURRENT").exists()
    assert not d[1].exists()
    assert (tmp_path / "users-backups").exists()
    # the markers are consumed: a crash from now on leaves none, so the next start wipes
    assert not marker_path(d[0]).exists() and not marker_path(d[2]).exists()
    r2 = prepare_table_dir(tmp_path, "users", ME)
    assert (r2.kept, r2.wiped) == ([], [0, 2])
    assert not d[0].exists()


@pytest.mark.parametrize("other", [
    StoreIdentity(app_id="other-app", table="users", broker="kafka://b:1", host="host-a"),
    StoreIdentity(app_id="app", table="users", broker="kafka://elsewhere:1", host="host-a"),
    StoreIdentity(app_id="app", table="users", broker="kafka://b:1", host="host-b"),
])
def test_marker_of_another_app_cluster_or_host_is_not_valid(tmp_path, other):
    d = _dirs(tmp_path, 0)
    write_marker(d[0], other, 0)
    assert prepare_table_dir(tmp_path, "users", ME).wiped == [0]


def test_copied_disk_and_damaged_or_old_markers_are_wiped(tmp_path):
    src = tmp_path / "a"
    src.mkdir()
    d = _dirs(src, 0, 1, 2)
    write_marker(d[0], ME, 0)
    write_marker(d[1], ME, 1)
    write_marker(d[2], ME, 2)
    marker_path(d[1]).write_bytes(b'{"version": 1, "app_id": "app"')  # torn write
    body = marker_path(d[2]).read_text().replace('"version":1', '"version":0')
    marker_path(d[2]).write_text(body)
    copy = tmp_path / "b"
    src.rename(copy)  # the same files under another directory (a copied disk)
    r = prepare_table_dir(copy, "users", ME)
    assert r.wiped == [0, 1, 2] and r.kept == []


def test_store_locked_by_another_process_is_left_alone(tmp_path):
    d = tmp_path / "users-0.db"
    code = ("import rocksdict, sys, time; db = rocksdict.Rdict(sys.argv[1]); "
            "print('open', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(d)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        r = prepare_table_dir(tmp_path, "users", ME)
        assert (r.busy, r.wiped) == ([0], [])
        assert d.exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone (as after kill -9): the same store is now judged, and wiped
    assert prepare_table_dir(tmp_path, "users", ME).wiped == [0]


def test_stop_marks_only_partitions_without_records_in_flight(tmp_path):
    d = _dirs(tmp_path, 0, 1, 2)
    led = ChangelogLedger()
    for p in (0, 1, 1, 2):
        led.sent(p)
        led.applied(p)
    led.delivered(0)
    led.delivered(1)  # one of partition 1's two records was never delivered
    led.delivered(2)
    marked, unmarked = mark_clean_stop(tmp_path, "users", ME, led, {0: 5, 2: 7})
    assert (marked, unmarked) == ([0, 2], [1])
    r = prepare_table_dir(tmp_path, "users", ME)
    assert (r.kept, r.wiped) == ([0, 2], [1])
    assert not d[1].exists()


def test_write_after_marking_removes_the_marker(tmp_path):
    d = _dirs(tmp_path, 0)
    led = ChangelogLedger()
    assert mark_clean_stop(tmp_path, "users", ME, led) == ([0], [])
    assert marker_path(d[0]).exists()
    led.sent(0)
    assert not marker_path(d[0]).exists()
    assert prepare_table_dir(tmp_path, "users", ME).wiped == [0]


def test_local_write_missing_for_a_delivered_record_is_not_settled():
    led = ChangelogLedger()
    led.sent(3)
    led.delivered(3)  # Faust sends first, then writes locally: the write failed
    assert not led.settled(3) and not led.settled()
    led.applied(3)
    assert led.settled(3) and led.settled()


def _table(datadir: Path, app_id: str = "marker-unit") -> LedgerTable:
    app = faust.App(app_id, datadir=str(datadir), store="memory://", autodiscover=False)
    return LedgerTable(app, name="users", value_type=bytes, store="rocksdb:users",
                       options={"block_cache_size": 1 << 20, "write_buffer_size": 1 << 20})


def _restart(datadir: Path) -> CleanStopRocksDB:
    """A new process's store on the same disk (stores of this process closed by stop())."""
    store = _table(datadir).data
    assert isinstance(store, CleanStopRocksDB)
    return store


def test_rocksdb_store_keeps_data_after_a_clean_stop_and_wipes_it_otherwise(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setattr(sm, "SETTLE_TIMEOUT_S", 0.05)
    store = _restart(tmp_path)
    db = store._db_for_partition(0)  # first open: the check runs (nothing on disk yet)
    assert store.prepared is not None and store.prepared.wiped == []
    db.put(b"k", b"v")
    del db  # Faust's stop closes a database by dropping the last reference
    store.set_persisted_offset(faust.types.TP("t", 0), 41)
    asyncio.run(store.stop())
    db_dir = store.partition_path(0)
    assert marker_path(db_dir).exists()

    again = _restart(tmp_path)
    assert again._db_for_partition(0).get(b"k") == b"v"  # kept, with its offset
    assert again.persisted_offset(faust.types.TP("t", 0)) == 41
    assert again.prepared is not None and again.prepared.kept == [0]
    # this process "crashes" with a record in flight (sent, never delivered)
    again.ledger.sent(0)
    again.ledger.applied(0)
    t = time.monotonic()
    asyncio.run(again.stop())
    assert time.monotonic() - t < 2  # waited SETTLE_TIMEOUT_S, not forever
    assert not marker_path(db_dir).exists()

    third = _restart(tmp_path)
    assert third._db_for_partition(0).get(b"k") is None  # wiped: restored from the changelog
    assert third.persisted_offset(faust.types.TP("t", 0)) is None
    assert third.prepared is not None and third.prepared.wiped == [0]
    asyncio.run(third.stop())


def test_memory_store_tables_have_no_ledger(tmp_path):
    app = faust.App("marker-unit-mem", datadir=str(tmp_path), autodiscover=False)
    t = LedgerTable(app, name="users", value_type=bytes, store="memory://")
    assert t._ledger() is None and not isinstance(t.data, CleanStopRocksDB)


class _Fut:
    def __init__(self, partition: int) -> None:
        self.message = type("M", (), {"partition": partition})()


def test_table_counts_send_local_write_and_delivery(tmp_path, monkeypatch):
    """``table[key] = value``: Faust sends the record, then writes the store; the ledger
    counts the write only when it returned, and the delivery only when it succeeded."""
    table = _table(tmp_path, "marker-unit-count")
    store = table.data
    written: dict[bytes, bytes] = {}
    monkeypatch.setattr(faust.Table, "send_changelog", lambda self, *a, **k: _Fut(1))
    monkeypatch.setattr(faust.Table, "partition_for_key", lambda self, key: 1)
    monkeypatch.setattr(CleanStopRocksDB, "_set", lambda self, k, v: written.__setitem__(k, v))
    table["u1"] = b"{}"
    assert written and store.ledger.snapshot() == {"sent": {1: 1}, "applied": {1: 1},
                                                   "delivered": {}}
    assert not store.ledger.settled(1)  # not delivered yet
    monkeypatch.setattr(faust.Table, "_on_changelog_sent", lambda self, fut: None)
    table._on_changelog_sent(_Fut(1))
    assert store.ledger.settled(1)

    def broken(self, k, v):
        raise OSError("disk full")

    monkeypatch.setattr(CleanStopRocksDB, "_set", broken)
    with pytest.raises(OSError):
        table["u2"] = b"{}"
    table._on_changelog_sent(_Fut(1))  # its record was delivered all the same
    assert store.ledger.snapshot()["applied"] == {1: 1}
    assert not store.ledger.settled(1)  # the changelog has a write this store lacks

    def failed(self, fut):
        raise RuntimeError("delivery failed")

    monkeypatch.setattr(faust.Table, "_on_changelog_sent", failed)
    monkeypatch.setattr(CleanStopRocksDB, "_set", lambda self, k, v: None)
    table["u3"] = b"{}"
    with pytest.raises(RuntimeError):
        table._on_changelog_sent(_Fut(1))
    assert store.ledger.in_flight(1) == 1


def _counted_store(tmp_path, app_id: str, monkeypatch):  # noqa: ANN001, ANN202
    """A users table whose partition 0 is active, with a current event of partition 0 (the
    store counts keys by the event's partition); returns the table, its store, the TP and
    the event (held by the caller: the current event is a weak reference)."""
    import weakref

    table = _table(tmp_path, app_id)
    tp = faust.types.TP(table.changelog_topic_name, 0)
    monkeypatch.setattr(table.app.assignor, "assigned_actives", lambda: {tp})
    event = type("E", (), {"message": type("M", (), {"partition": 0, "topic": "x"})()})()
    _current_event.set(weakref.ref(event))
    return table, table.data, tp, event


def test_key_count_follows_writes_without_scanning(tmp_path, monkeypatch):
    """``len(table.data)`` (the held-users gauge) is counted once, then kept by the writes."""
    table, store, tp, _event = _counted_store(tmp_path, "marker-unit-len", monkeypatch)

    def scanned() -> int:
        return store._size1(store._db_for_partition(0))

    for k in ("a", "b", "c"):
        store[k] = b"1"
    assert len(store) == 3 and store.key_counts == {0: 3}  # the one scan
    scans = []
    monkeypatch.setattr(CleanStopRocksDB, "_size1",
                        lambda self, db: scans.append(1) or sum(1 for _ in
                                                                self._visible_keys(db)))
    assert store["a"] == b"1"
    store["a"] = b"2"            # read, then written: known to exist
    store["b"] = b"2"            # written without a read: one get tells
    store["d"] = b"1"            # a new key, found missing by one get
    assert store.get("e") is None
    store["e"] = b"1"
    del store["c"]
    del store["zzz"]             # missing: nothing to count
    assert len(store) == 4 and not scans
    assert scanned() == 4 and len(scans) == 1

    # a recovery batch drops the count; the next len() counts again
    rec = type("R", (), {})
    msg = type("M", (), {"tp": tp, "offset": 7, "partition": 0, "key": b'f', "value": b"1"})()
    rec.message = msg
    store.apply_changelog_batch([rec], None, None)
    assert 0 not in store.key_counts
    scans.clear()
    assert len(store) == 5 and len(scans) == 1
    _current_event.set(None)


def _step(coro) -> bool:
    """Run ``coro`` to its next ``await asyncio.sleep(0)``; False once it has returned."""
    try:
        coro.send(None)
    except StopIteration:
        return False
    return True


def test_stepwise_count_adds_the_writes_made_between_its_steps(tmp_path, monkeypatch):
    """``count_keys`` (the gauge's count after a start) reads ``chunk`` keys per step; the
    writes made while it waits (new keys, rewrites, deletes of keys it has or has not read
    yet) end in the count as in a scan made after them. A recovery batch abandons it."""
    table, store, tp, _event = _counted_store(tmp_path, "marker-unit-steps", monkeypatch)
    for i in range(10):
        store[f"k{i}"] = b"1"
    store.key_counts.clear()                         # as after a start: not counted yet

    counting = store.count_keys(chunk=3)
    assert _step(counting) and store.key_counts == {}   # 3 keys read, the loop is free
    store["new1"] = b"1"                             # not seen by the open iterator
    store["k0"] = b"2"                               # a rewrite: no new key
    del store["k1"]                                  # read already
    del store["k9"]                                  # not read yet: the iterator still has it
    assert _step(counting)
    store["new2"] = b"1"
    del store["new1"]
    while _step(counting):
        pass
    assert store.key_counts == {0: store._size1(store._db_for_partition(0))} == {0: 9}

    store.key_counts.clear()
    counting = store.count_keys(chunk=3)
    assert _step(counting)
    rec = type("R", (), {})
    rec.message = type("M", (), {"tp": tp, "offset": 7, "partition": 0, "key": b"r",
                                 "value": b"1"})()
    store.apply_changelog_batch([rec], None, None)    # recovery: this count is void
    assert not _step(counting) and store.key_counts == {} and store._counting == {}
    _current_event.set(None)


def test_stop_before_any_store_was_judged_leaves_the_disk_alone(tmp_path):
    """kill -9, then a restart that is stopped before it opened a store (e.g. during the
    group join): the crashed stores must stay unmarked, so the next start still wipes them."""
    import rocksdict

    tables = tmp_path / "v1" / "tables"
    tables.mkdir(parents=True)
    d = {p: tables / f"users-{p}.db" for p in (0, 1)}
    for path in d.values():
        rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True)).close()
    store = _restart(tmp_path)
    write_marker(d[1], store.identity(), 1)  # partition 1 was stopped cleanly before
    asyncio.run(store.stop())                 # never opened a store
    assert not marker_path(d[0]).exists() and marker_path(d[1]).exists()
    nxt = _restart(tmp_path)
    nxt._db_for_partition(1)
    assert nxt.prepared is not None and (nxt.prepared.kept, nxt.prepared.wiped) == ([1], [0])
    asyncio.run(nxt.stop())


def test_stop_does_not_mark_a_store_another_process_held(tmp_path):
    d = _dirs(tmp_path, 0, 1)
    led = ChangelogLedger()
    assert mark_clean_stop(tmp_path, "users", ME, led, skip=[1]) == ([0], [])
    assert marker_path(d[0]).exists() and not marker_path(d[1]).exists()


_CRASH = """
import os, faust
from faust.types import TP
from stream_app.app.store_marker import LedgerTable
app = faust.App("marker-wal", datadir={datadir!r}, store="memory://", autodiscover=False)
table = LedgerTable(app, name="users", value_type=bytes, store="rocksdb:users",
                    options={{"block_cache_size": 1 << 20, "write_buffer_size": 1 << 20}})
store = table.data
store.wal = {wal}
db = store._db_for_partition(0)  # a reference kept: Faust's drop does not close it
db.put(b"k", b"v")
if {revoke}:
    topic = next(iter(table.changelog_topic.topics))
    store.revoke_partitions(table, {{TP(topic, 0)}})
print("written", flush=True)
os._exit(0)  # a crash: no stop, no close, no flush
"""


@pytest.mark.parametrize(("wal", "revoke", "kept"), [
    (False, False, False),   # no log: a crash loses the memtable (the files are wiped anyway)
    (True, False, True),     # with RocksDB's log the write survives the crash
    (False, True, True),     # a revoked partition is flushed before Faust drops it
])
def test_write_ahead_log_setting_and_flush_at_revocation(tmp_path, wal, revoke, kept):
    import rocksdict

    code = _CRASH.format(datadir=str(tmp_path), wal=wal, revoke=revoke)
    assert last_line(code, tmp_path) == "written"
    path = tmp_path / "v1" / "tables" / "users-0.db"
    db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
    try:
        assert (db.get(b"k") == b"v") is kept
    finally:
        db.close()


class _FailingFlush:
    """A partition database whose flush fails (a full disk at stop)."""

    def __init__(self, db: object) -> None:
        self.db = db

    def flush(self) -> None:
        raise OSError("no space left on device")

    def __getattr__(self, name: str) -> object:
        return getattr(self.db, name)


def test_a_partition_whose_flush_fails_at_stop_gets_no_marker(tmp_path, monkeypatch):
    monkeypatch.setattr(sm, "SETTLE_TIMEOUT_S", 0.05)
    store = _restart(tmp_path)
    for p in (0, 1):
        store._db_for_partition(p).put(b"k", b"v")
    store._dbs[1] = _FailingFlush(store._dbs[1])
    asyncio.run(store.stop())
    assert marker_path(store.partition_path(0)).exists()
    assert not marker_path(store.partition_path(1)).exists()
    again = _restart(tmp_path)
    again._db_for_partition(0)
    assert again.prepared is not None and again.prepared.wiped == [1]
    assert again._db_for_partition(0).get(b"k") == b"v"
    asyncio.run(again.stop())


def test_the_users_table_takes_the_write_ahead_log_setting(tmp_path):
    code = ("from stream_app.app.main import app\n"
            "from stream_app.app.tables import users\n"
            "print(users.data.wal)")
    assert last_line(code, tmp_path) == "False"
    assert last_line(code, tmp_path, STREAM_APP_TABLE_ROCKSDB_WAL="true") == "True"
