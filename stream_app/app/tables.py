"""Faust tables: one state record per user (the speed lever: one changelog write per event).

With ``rocksdb://`` the agent reads and writes the states through a write-back cache
(:mod:`stream_app.app.state_cache`); RocksDB gets each user's latest state once per commit.

Values are the state as orjson bytes (``value_serializer="raw"``): the agent decodes the one
user it processes and encodes it back. The changelog holds the same JSON as before.

With ``rocksdb://`` the table keeps its partition stores across restarts only after a clean
stop (:mod:`stream_app.app.store_marker`): after a crash they are deleted and restored from the
changelog.
"""

from __future__ import annotations

import faust

from stream_app.app.main import app, settings
from stream_app.app.state_cache import CachedRocksDB
from stream_app.app.store_marker import CleanStopRocksDB, LedgerTable


class UsersTable(LedgerTable):
    """The users table: a ``rocksdb:`` store with the write-back cache of
    :mod:`stream_app.app.state_cache` unless ``STREAM_APP_TABLE_CACHE_USERS=0``."""

    store_class = CachedRocksDB if settings.table_cache_users else CleanStopRocksDB
    store_kwargs = {"wal": settings.table_rocksdb_wal,
                    **({"max_users": settings.table_cache_users} if settings.table_cache_users
                       else {})}


#: user_id -> the user's state (tag engine state; scoring state under "sc"); built as
#: ``app.Table`` builds its tables, with the clean-stop ledger of store_marker
users = app.tables.add(UsersTable(
    app,
    name="users",
    beacon=app.tables.beacon,
    default=None,
    partitions=settings.partitions,
    # value_type=bytes: Faust decodes changelog values with the serializer it derives from
    # value_type when it recovers the table; without it they would come back as dicts
    value_type=bytes,
    schema=faust.Schema(key_serializer="utf8", value_serializer="raw"),
    extra_topic_configs={"retention.ms": "-1", "retention.bytes": "-1"},
    # rocksdb:// keeps the table on disk across clean restarts (PERFORMANCE.md 6)
    store=settings.table_store_url("users"),
    options=settings.table_options(),
    help="per-user state (orjson bytes): daily counts, last seen, channel, profile, tags",
))
