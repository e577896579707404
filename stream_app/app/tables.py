"""Faust tables: one state record per user (the speed lever: one changelog write per event).

Values are the state as orjson bytes (``value_serializer="raw"``): the agent decodes the one
user it processes and encodes it back. The changelog holds the same JSON as before.

With ``rocksdb://`` the table keeps its partition stores across restarts only after a clean
stop (:mod:`stream_app.app.store_marker`): after a crash they are deleted and restored from the
changelog.
"""

from __future__ import annotations

import faust

from stream_app.app.main import app, settings
from stream_app.app.store_marker import LedgerTable

#: user_id -> the user's state (tag engine state; scoring state under "sc"); built as
#: ``app.Table`` builds its tables, with the clean-stop ledger of store_marker
users = app.tables.add(LedgerTable(
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
