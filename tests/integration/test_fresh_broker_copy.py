"""``bench.fresh_broker.copy_changelogs`` between two real tansu brokers: what a worker
restores on the fresh broker is what log compaction keeps of the old one (the latest value
of each key, in the key's own partition; tombstoned keys gone), and only changelogs move."""

from __future__ import annotations

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.fresh_broker import compact, copy_changelogs, read_partition
from stream_app.services.broker import EmbeddedBroker

TOPIC = "app-users-changelog"


def _records(p: int) -> list[tuple[bytes, bytes | None]]:
    """Each partition gets its own keys, rewritten and one deleted."""
    return [(f"u{p}a".encode(), b"1"), (f"u{p}b".encode(), b"2"), (f"u{p}a".encode(), b"3"),
            (f"u{p}c".encode(), b"4"), (f"u{p}c".encode(), None), (f"u{p}d".encode(), b"5"),
            (f"u{p}b".encode(), b"6" * 5000)]


def test_copy_keeps_the_latest_value_per_key_in_its_partition(tmp_path) -> None:
    with EmbeddedBroker(workdir=tmp_path / "a") as src, \
            EmbeddedBroker(workdir=tmp_path / "b") as dst:
        admin = AdminClient({"bootstrap.servers": src.bootstrap})
        for fut in admin.create_topics([NewTopic(TOPIC, 3, 1), NewTopic("events.click", 1, 1)],
                                       operation_timeout=30).values():
            fut.result(30)
        prod = Producer({"bootstrap.servers": src.bootstrap})
        for p in range(3):
            for key, value in _records(p):
                prod.produce(TOPIC, key=key, value=value, partition=p)
        prod.produce("events.click", key=b"x", value=b"{}")
        assert prod.flush(30) == 0

        out = copy_changelogs(src.bootstrap, dst.bootstrap)

        assert out["read"] == 21 and out["written"] == 9
        assert set(out["topics"]) == {TOPIC}            # inputs are not copied
        for p in range(3):
            want = compact(_records(p))
            assert list(want) == [f"u{p}a".encode(), f"u{p}b".encode(), f"u{p}d".encode()]
            assert dict(read_partition(dst.bootstrap, TOPIC, p, timeout=30)) == want
