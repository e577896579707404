"""Faust tables: one state record per user (the speed lever: one changelog write per event)."""

from __future__ import annotations

import faust

from stream_app.app.main import app, settings

#: user_id -> the user's state (tag engine state; scoring state under "sc")
users = app.Table(
    "users",
    default=None,
    partitions=settings.partitions,
    schema=faust.Schema(key_serializer="utf8", value_serializer="orjson"),
    extra_topic_configs={"retention.ms": "-1", "retention.bytes": "-1"},
    # memory:// by default; rocksdb:// keeps the table on disk across restarts (PERFORMANCE.md 6)
    store=settings.table_store_url("users"),
    options=settings.table_options(),
    help="per-user state: daily counts, last seen, channel, profile, tags",
)
