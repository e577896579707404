"""Write a Faust table's values straight through the fast producer (no Faust future per write).

``table[key] = value`` in Faust sets the store and sends the changelog record through
``Topic.send_soon``: a ``FutureMessage`` and a ``PendingMessage``, a trip through the
producer buffer task, an awaited send, and a callback chain when it is delivered. The worker
writes one state per event, so that path is paid per event. :class:`DirectTableWriter`
does the same two things with one store write and one librdkafka ``produce``:

* the record is the one Faust would have sent: same changelog topic, the key encoded as the
  changelog topic encodes it (the table's key serializer: JSON for a table without a key
  type; checked once against Faust's own encoding, then done with orjson), the value as is
  (``raw`` tables), and the partition of the input record (the table's keys are
  co-partitioned with the input streams, as Faust assumes);
* it is sent once every record queued before it is delivered (the producer's
  ``produce_gated``, when it has one: the event's outputs reach the broker before the state
  that holds the event, QA39 F4), and Faust's flush before each commit waits for it exactly
  as for Faust's own sends (at-least-once is unchanged);
* its delivered offset is remembered by the producer and, after each successful flush, handed
  to the store's ``set_persisted_offset`` (what Faust's ``_on_changelog_sent`` does per record):
  a RocksDB store then knows how far its files are ahead, a memory store ignores it;
* a store with a clean-stop ledger (:mod:`stream_app.app.store_marker`) is told of every
  record sent, written locally and delivered, as Faust's own path tells it.

Deletes (tombstones) are rare and stay on Faust's own path (``del table[key]``).

Example (any object with a dict-like ``data`` and the producer's two calls):
    >>> class P:
    ...     sent = []
    ...     after_flush = []
    ...     delivered = {}
    ...     def produce_tracked(self, topic, key, value, partition, on_delivered=None):
    ...         self.sent.append((topic, key, value, partition))
    >>> p = P()
    >>> w = DirectTableWriter(data={}, changelog="app-users-changelog", producer=lambda: p)
    >>> w.set("u1", b"{}", 3)
    >>> w.data["u1"], p.sent[0]
    (b'{}', ('app-users-changelog', b'"u1"', b'{}', 3))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
from faust.types import TP

log = logging.getLogger(__name__)


def exact_json_key(key: str) -> bytes:
    """``key`` as a JSON string, in bytes of exactly its size: the bytes orjson returns keep
    its ~4 KB output buffer (measured 4.2 KB of RSS per key kept, e.g. in the state cache).

    Example:
        >>> exact_json_key("用户-1") == orjson.dumps("用户-1")
        True
    """
    return memoryview(orjson.dumps(key)).tobytes()


def key_encoder(faust_key: Callable[[str], bytes]) -> Callable[[str], bytes]:
    """A fast encoder giving the same bytes as ``faust_key`` (Faust's key encoding of a
    table's changelog and store), checked once on a non-ASCII probe; ``faust_key`` itself
    when neither JSON nor UTF-8 matches.

    Example:
        >>> key_encoder(orjson.dumps) is exact_json_key, key_encoder(str.encode) is str.encode
        (True, True)
    """
    probe = "probe-é"
    return next((f for f in (exact_json_key, str.encode) if f(probe) == faust_key(probe)),
                faust_key)


class DirectTableWriter:
    """Set a key of a ``raw``-valued, ``utf8``-keyed Faust table and queue its changelog
    record on the fast producer."""

    def __init__(self, data: MutableMapping[str, Any], changelog: str,
                 producer: Callable[[], Any],
                 encode_key: Callable[[str], bytes] = orjson.dumps,
                 read: Callable[[str], Any] | None = None) -> None:
        self.data = data
        self.changelog = changelog
        self._producer = producer
        self.encode_key = encode_key
        self._hooked: Any = None
        self._send: Callable[..., None] = lambda *args: None   # set with _hooked
        self._read = read or data.get
        # a store with a write-back cache (app/state_cache.py) is read and written through it
        self._cache_get = getattr(data, "cache_get", None)
        self._cache_set = getattr(data, "cache_set", None)
        #: the key last read through the cache and its encoding (the agent reads a user's
        #: state and then writes it: one encoding for both)
        self._last_key: str | None = None
        self._last_encoded = b""

    @classmethod
    def for_table(cls, table: Any) -> DirectTableWriter:
        """The writer of a Faust table (its store, changelog topic and the app's producer),
        encoding keys exactly as Faust's changelog topic does."""
        topic = table.changelog_topic

        def faust_key(key: str) -> bytes:
            return topic.prepare_key(key, table.key_serializer)[0]

        return cls(table.data, topic.get_topic_name(), lambda: table.app.producer,
                   key_encoder(faust_key), read=table.get)

    def get(self, key: str, partition: int) -> Any:
        """The value of ``key`` (held in ``partition``, the input record's), or None."""
        if self._cache_get is not None:
            encoded = self._last_encoded = self.encode_key(key)
            self._last_key = key
            return self._cache_get(encoded, partition)
        return self._read(key)

    def _encoded(self, key: str) -> bytes:
        """``encode_key(key)``, reused from the last :meth:`get` when it read ``key``."""
        return self._last_encoded if key == self._last_key else self.encode_key(key)

    def set(self, key: str, value: bytes, partition: int) -> None:
        """Store ``value`` under ``key`` and queue the changelog record to ``partition``."""
        producer = self._producer()
        if self._hooked is not producer:
            # once per producer: persist delivered changelog offsets after each flush
            producer.after_flush.append(self.persist_offsets)
            self._hooked = producer
            self._send = getattr(producer, "produce_gated", producer.produce_tracked)
        ledger = getattr(self.data, "ledger", None)
        encoded = self._encoded(key)   # the changelog key is also the store's key
        cache_set = self._cache_set
        if ledger is None:
            self._write(key, encoded, value, partition)
            self._send(self.changelog, encoded, value, partition)
        elif cache_set is not None:   # the worker's users table (write-back cache)
            ledger.sent(partition)
            cache_set(encoded, value, partition)
            ledger.applied(partition)
            self._send(self.changelog, encoded, value, partition, ledger.delivered)
        else:
            ledger.sent(partition)
            self.data[key] = value
            ledger.applied(partition)
            self._send(self.changelog, encoded, value, partition, ledger.delivered)

    def store_only(self, key: str, value: bytes, partition: int) -> None:
        """Store ``value`` with no changelog record: a measurement's upper bound of what the
        changelog costs (``STREAM_APP_DISABLE=changelog``, ``bench.ablation``), never a
        worker's setting (a restart would lose every state)."""
        self._write(key, self._encoded(key), value, partition)

    def _write(self, key: str, encoded: bytes, value: bytes, partition: int) -> None:
        if self._cache_set is not None:
            self._cache_set(encoded, value, partition)
        else:
            self.data[key] = value

    def persist_offsets(self) -> None:
        """Hand the delivered changelog offsets to the store (RocksDB keeps them per
        partition, so a restart reads the changelog only after them)."""
        producer = self._producer()
        setter = getattr(self.data, "set_persisted_offset", None)
        if setter is None:
            return
        for (topic, partition), offset in list(producer.delivered.items()):
            if topic != self.changelog:
                continue
            try:
                setter(TP(topic, partition), offset)
            except Exception as exc:  # noqa: BLE001 - a partition closed by a rebalance/stop
                log.debug("persisted offset of %s[%s] not set: %s", topic, partition, exc)
