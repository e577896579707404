"""DirectTableWriter: the store and the changelog record Faust would have written, and the
delivered changelog offsets handed to the store after a flush."""

from __future__ import annotations

from typing import Any

from faust.types import TP

from stream_app.app.state_store import DirectTableWriter


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.after_flush: list[Any] = []
        self.delivered: dict[tuple[str, int], int] = {}
        self.callbacks: list[tuple[int, Any]] = []

    def produce_tracked(self, topic: str, key: bytes, value: bytes, partition: int,
                        on_delivered: Any = None) -> None:
        self.sent.append((topic, key, value, partition))
        self.callbacks.append((partition, on_delivered))


class RocksLike(dict):
    """A store that keeps persisted offsets, as Faust's RocksDB store does."""

    def __init__(self) -> None:
        super().__init__()
        self.offsets: dict[TP, int] = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        if tp.partition == 9:
            raise KeyError("partition closed")
        self.offsets[tp] = offset


def test_set_writes_store_and_changelog_to_the_given_partition() -> None:
    p = Producer()
    w = DirectTableWriter(RocksLike(), "app-users-changelog", lambda: p)
    w.set("用户-1", b'{"a":1}', 2)
    w.set("u2", b"{}", 0)
    assert w.data == {"用户-1": b'{"a":1}', "u2": b"{}"}
    assert p.sent == [("app-users-changelog", '"用户-1"'.encode(), b'{"a":1}', 2),
                      ("app-users-changelog", b'"u2"', b"{}", 0)]
    assert p.after_flush == [w.persist_offsets]          # hooked once, not per write


def test_persist_offsets_only_for_its_changelog_and_survives_closed_partitions() -> None:
    p = Producer()
    store = RocksLike()
    w = DirectTableWriter(store, "cl", lambda: p)
    w.set("u", b"{}", 1)
    p.delivered = {("cl", 1): 41, ("other", 1): 7, ("cl", 9): 3}
    for hook in p.after_flush:
        hook()
    assert store.offsets == {TP("cl", 1): 41}


def test_a_store_without_offsets_is_left_alone() -> None:
    p = Producer()
    w = DirectTableWriter({}, "cl", lambda: p)
    w.set("u", b"{}", 0)
    p.delivered = {("cl", 0): 5}
    w.persist_offsets()                                   # a plain dict: nothing to call
    assert w.data == {"u": b"{}"}


def test_a_ledger_store_hears_of_each_send_write_and_delivery() -> None:
    from stream_app.app.store_marker import ChangelogLedger

    class LedgerStore(dict):
        ledger = ChangelogLedger()

    p = Producer()
    store = LedgerStore()
    w = DirectTableWriter(store, "cl", lambda: p)
    w.set("a", b"1", 0)
    w.set("b", b"2", 0)
    w.set("c", b"3", 1)
    assert store.ledger.in_flight(0) == 2 and not store.ledger.settled()
    for partition, cb in p.callbacks[:2]:
        cb(partition)
    assert store.ledger.settled(0) and not store.ledger.settled(1)
    p.callbacks[2][1](1)
    assert store.ledger.settled()


class CacheStore(dict):
    """A store with the write-back cache's two calls and a clean-stop ledger."""

    def __init__(self) -> None:
        super().__init__()
        from stream_app.app.store_marker import ChangelogLedger

        self.ledger = ChangelogLedger()
        self.cached: dict[bytes, bytes] = {}

    def cache_get(self, k: bytes, partition: int) -> bytes | None:
        return self.cached.get(k)

    def cache_set(self, k: bytes, value: bytes, partition: int) -> None:
        self.cached[k] = value


def test_reads_and_writes_of_any_keys_in_any_order_encode_each_key_as_faust_does() -> None:
    """The key encoded by a read is reused by the write of the same key only: any order of
    reads and writes gives the changelog and cache keys a fresh encoding gives."""
    import orjson
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from stream_app.app.state_store import exact_json_key

    keys = st.sampled_from(["u1", "u2", "用户-1", 'q"uote', "u1 "])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["get", "set"]), keys, st.integers(0, 3)),
                    max_size=30))
    def check(ops: list[tuple[str, str, int]]) -> None:
        p = Producer()
        store = CacheStore()
        w = DirectTableWriter(store, "cl", lambda: p, exact_json_key)
        model: dict[bytes, bytes] = {}
        for i, (op, key, part) in enumerate(ops):
            if op == "get":
                assert w.get(key, part) == model.get(orjson.dumps(key))
            else:
                value = str(i).encode()
                w.set(key, value, part)
                model[orjson.dumps(key)] = value
                assert p.sent[-1] == ("cl", orjson.dumps(key), value, part)
        assert store.cached == model
        assert store.ledger.settled() is (not p.sent)

    check()
