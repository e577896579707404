"""Settings of stream-app: one place for every default, overridable by environment.

Every field can be set as an environment variable ``STREAM_APP_<FIELD>`` (upper case)
or in a ``.env`` file. Business policy (tag rules, thresholds, alert budgets) lives in
YAML files under ``config/``; this module only holds where things are and how they run.

Example:
    >>> s = Settings(broker_url="kafka://127.0.0.1:19092", partitions=2)
    >>> s.kafka_bootstrap
    '127.0.0.1:19092'
    >>> s.day_of(1714528800000)  # 2024-05-01T10:00:00+08:00 -> day index in UTC+8
    19844
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_app.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DAY_MS = 86_400_000
#: a bucket edge of ``redis_num_edges``: a decimal number both Lua and Python read alike
_EDGE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
#: what redis-py's ``from_url`` connects to (TCP, TLS, a Unix socket)
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: the parts ``STREAM_APP_DISABLE`` may switch off (ablations: stream_app/app/agents.py)
DISABLE_PARTS = ("agent", "business", "changelog", "cold_block", "cold_pack", "redis",
                 "scoring")
#: the worker's log levels (Faust's ``-l`` choices, lower case), and the names also taken
LOG_LEVELS = ("crit", "error", "warn", "info", "debug")
_LOG_LEVEL_ALIASES = {"critical": "crit", "warning": "warn"}


def bad_edge(parts: list[str]) -> tuple[int, str] | None:
    """The first numeric-bucket edge (``redis_num_edges``, or edges stored in Redis) the
    writer and the API cannot both use, as ``(index, "number" | "order")``: not a plain
    finite decimal number (read alike by the writer's Lua ``tonumber`` and Python), or not
    above the edge before it; None when every edge is good.

    Example:
        >>> bad_edge(["0", "2.5", "1e3"]), bad_edge(["0", "0x10"]), bad_edge(["10", "5"])
        (None, (1, 'number'), (1, 'order'))
    """
    for i, part in enumerate(parts):
        if not _EDGE.fullmatch(part) or not math.isfinite(float(part)):
            return i, "number"
        if i and float(part) <= float(parts[i - 1]):
            return i, "order"
    return None


class Settings(BaseSettings):
    """Runtime settings (env prefix ``STREAM_APP_``)."""

    model_config = SettingsConfigDict(env_prefix="STREAM_APP_", env_file=".env", extra="ignore")

    app_id: str = Field("stream-app", description="Faust app id: consumer group and table prefix")
    broker_url: str = Field("kafka://127.0.0.1:9092", description="Kafka bootstrap, faust form")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for profiles/"
                           "segments: redis://, rediss:// (TLS) or unix:// (a socket)")
    partitions: int = Field(4, ge=1, description="partitions of every keyed topic")
    replication: int = Field(1, ge=1)
    topics_dir: Path = Field(REPO_ROOT / "topics", description="topic contract and schemas")
    rules_path: Path = Field(REPO_ROOT / "config" / "rules", description="tag rule YAML file/dir")
    datadir: Path = Field(Path("var/worker"), description="worker data directory")
    web_port: int = Field(6066, ge=1, le=65535, description="worker HTTP port (health, "
                          "/metrics), 1..65535")
    web_host: str = Field("127.0.0.1", description="bind address of worker and API HTTP")
    api_port: int = Field(8080, ge=0, le=65535, description="serving API port, 0..65535 (0: "
                          "a free port the system picks, as api --port 0)")
    api_token: str = Field("change-me", description="bearer token the API requires")
    day_offset_minutes: int = Field(480, ge=-720, le=840, description="business day offset "
                                    "from UTC in minutes (480: UTC+8): the tag rules' days, "
                                    "the scorer's daily buckets, the alerts' dates, the metric "
                                    "anomaly detectors' daily and weekly seasons, evaluate")
    fetch_wait_ms: int = Field(50, ge=1, le=5000, description="consumer fetch max wait")
    fetch_min_bytes: int = Field(1, ge=1, le=16 * 1024 * 1024, description="bytes a fetch "
                                 "waits for (up to the fetch wait) before the broker answers "
                                 "(1: at once; larger: fewer, fuller fetches)")
    producer_linger_ms: int = Field(25, ge=0, le=1000, description="how long the worker's "
                                    "producer gathers outputs into one request (longer: "
                                    "fewer, larger requests, less CPU per event; see "
                                    "docs/PERFORMANCE.md items 26 and 29)")
    gc_freeze: bool = Field(True, description="once ready (and after each rebalance) "
                            "collect once and freeze the surviving heap, so full collections "
                            "skip it (~120 ms loop holds otherwise)")
    eager_drain: bool = Field(True, description="hand each fetched batch to the streams in one "
                              "go, so the next fetch leaves at once (false: Faust's own "
                              "per-record hand-over, ~20 ms later at half load)")
    lean_conductor: bool = Field(True, description="hand a record of a partition read by one "
                                 "raw-bytes channel to its stream without Faust's lock, "
                                 "registry decode and per-record sets (false: Faust's own "
                                 "conductor; ~3-4 µs more CPU per event)")
    faust_monitor: bool = Field(False, description="keep Faust's built-in Monitor sensor "
                                "(per-event statistics for Faust's own /stats pages; stream-app's "
                                "metrics are in Prometheus): ~3 µs of CPU per event when on")
    sweep_interval_s: float = Field(5.0, gt=0, description="clock sweep for time-based tags")
    sweep_tick_share: float = Field(0.25, gt=0, le=1, description="while a sweep sends "
                                    "ticks, at most this share of the event loop's time goes "
                                    "to them (bursts, each waited for, then a pause by the "
                                    "loop's CPU time it cost; what does not fit waits for "
                                    "the next sweep; tick_pacing.py); 1 = no pauses (still "
                                    "one burst at a time)")
    sweep_tick_burst: int = Field(500, ge=1, description="ticks a sweep sends at most in one "
                                  "go (live events wait behind at most this many ticks)")
    state_ttl_days: int = Field(400, ge=1, description="state of users idle longer is expired")
    deletion_marker_days: int = Field(
        30, ge=0, description="days a deleted user's marker (id and deletion time only) is kept "
        "so that their older events read later do not bring them back (0: none)")
    retention_days: int = Field(120, ge=1, description="daily buckets kept per user")
    dedup_window: int = Field(64, ge=0, description="recent event_ids remembered per user")
    max_event_bytes: int = Field(64 * 1024, description="larger input records go to the DLQ")
    redis_flush_ms: int = Field(100, ge=1, description="Redis projection write batching")
    redis_stop_drain_s: float = Field(10.0, ge=0, allow_inf_nan=False,
                                      description="at a stop, how long the worker tries to "
                                      "write its queued Redis writes; what is left is recorded "
                                      "(redis-unwritten.json) until a redis-rebuild")
    redis_max_held: int = Field(50_000, ge=1, description="changes the Redis projection holds "
                                "per user between flushes (coalesced: one write of each user's "
                                "end state); past this many it builds the writes at once")
    late_grace_ms: int = Field(3 * DAY_MS, ge=0, description="events older than this are late")
    stop_timeout_s: float = Field(55.0, ge=0, description="a worker still stopping this long "
                                  "after SIGTERM/SIGINT (broker or Redis unreachable) exits "
                                  "with status 1, as after kill -9; 0: no limit")
    max_future_ms: int = Field(DAY_MS, ge=0, description="events dated more than this after "
                               "the worker's wall clock are dead-lettered (ts_in_future) "
                               "instead of moving its clock; 0: no limit (replays of "
                               "simulated time that runs ahead of the wall clock)")
    clock_speed: float = Field(1.0, gt=0, allow_inf_nan=False,
                               description="the clock max_future_ms is judged against runs "
                               "this many times as fast as the wall clock from "
                               "clock_origin_ms (set by `stream-app dev` to its simulator's "
                               "speed; 1: the wall clock)")
    clock_origin_ms: int = Field(0, ge=0, description="epoch ms at which that clock equals the "
                                 "wall clock (with clock_speed)")
    clock_max_ahead_ms: int = Field(
        60_000, ge=0,
        validation_alias=AliasChoices("clock_max_ahead_ms", "STREAM_APP_CLOCK_MAX_AHEAD_MS",
                                      "STREAM_APP_BUSINESS_MAX_AHEAD_MS"),
        description="the worker's clocks move at most this far past the clock "
        "STREAM_APP_MAX_FUTURE_MS is judged against (the wall clock; dev: its simulated "
        "clock): an event dated further ahead (a producer's skewed clock, within "
        "STREAM_APP_MAX_FUTURE_MS) is processed at its own time, but neither brings the tag "
        "sweep's time-based rules (stalls, churn, day rollovers) forward for every user nor "
        "closes every business window (metrics.partials, metric anomalies) of its partition "
        "early; 0: no cap; off while STREAM_APP_MAX_FUTURE_MS is 0. Read from "
        "STREAM_APP_BUSINESS_MAX_AHEAD_MS too (its name before it capped the tag clock)")
    log_level: str = Field("warn", description="the worker's log level when its command line "
                           "gives no -l/--loglevel: crit, error, warn, info or debug "
                           "(critical, warning taken too)")
    verify_end_offsets: bool = Field(True, description="before a table restore, check the "
                                     "broker's end offsets by reading (tansu 0.6.0 reports the "
                                     "first offset of the last batch); a no-op on Apache Kafka")
    producer: Literal["librdkafka", "aiokafka"] = Field(
        "librdkafka", description="how records are sent: librdkafka (confluent-kafka, "
        "default; the worker needs it) or aiokafka (Faust's own: the benchmark's "
        "pass-through app only)")
    state_writes: Literal["direct", "faust"] = Field(
        "direct", description="how the agent writes a user's state: direct (store + one "
        "librdkafka produce, default) or faust (table[key] = value: Faust's future per "
        "write; for comparison)")
    disable: str = Field("", description="comma list of parts to switch off (ablation, "
                         "benchmarks): scoring, business, redis, agent (consume and "
                         "count only), cold_block (the scorer's checkpoints and snapshots "
                         "parsed and encoded with the state on every event), cold_pack "
                         "(the cold block written with every feature name in full), "
                         "changelog (no changelog record of the users table: measurement "
                         "only, a restart loses the states)")

    table_store: str = Field(
        "rocksdb://", description="Faust store of the users table: rocksdb:// (files under "
        "DATADIR/v1/tables; after a graceful stop a restarted worker on the same disk reads "
        "only the changelog tail, after a crash its files are deleted and restored from the "
        "whole changelog: app/store_marker.py) or memory:// (rebuilt from the whole changelog "
        "at every start)")
    table_rocksdb_cache_mb: int = Field(64, ge=1, description="rocksdb:// block cache per "
                                        "partition (Faust's default is 2 GiB)")
    table_cache_users: int = Field(100_000, ge=0, description="rocksdb:// write-back cache: "
                                   "states of this many users kept in memory (~1.3 KB each), "
                                   "written to RocksDB once per commit; 0 = every read and "
                                   "write goes to RocksDB (app/state_cache.py)")
    decoded_states: int = Field(32, ge=0, description="users whose state the agent keeps "
                                "parsed after writing it, so that their next event skips "
                                "the record's parse; small on purpose: states kept longer "
                                "than a few young-generation collections make the garbage "
                                "collector cost more than the parse (docs/PERFORMANCE.md "
                                "item 38); 0 = every event parses its user's record")
    table_rocksdb_write_buffer_mb: int = Field(16, ge=1, description="rocksdb:// memtable size "
                                               "per partition, up to 3 of them (Faust: 64 MiB)")
    table_rocksdb_wal: bool = Field(False, description="rocksdb:// write-ahead log of the "
                                    "users table's files; off (default): the changelog is the "
                                    "log, the files are kept only after a clean stop, which "
                                    "flushes the memtables first (app/store_marker.py)")
    redis_why: str = Field("compact", pattern="^(compact|off)$", description="why records in "
                           "Redis: compact (packed in the user hash: rule, version, case and "
                           "values; ~15 B per tag) or off (the API answers why with only the "
                           "tag's value; the full record is on tags.changes)")
    redis_timeline: int = Field(0, ge=0, le=100, description="tag changes kept per user in "
                                "Redis (newest first; ~160 B per change kept); 0 (default): "
                                "none, the history of record is the tags.changes topic")
    redis_num_edges: str = Field("0,1,5,10,20,50,100,1000", description="bucket edges of the "
                                 "numeric tags' bitmaps (a range on these edges is a BITOP OR); "
                                 "used when a tag is first written, then kept in Redis")

    @field_validator("redis_num_edges")
    @classmethod
    def _check_num_edges(cls, v: str) -> str:
        """Numbers (as the writer's Lua ``tonumber`` and the API read them alike), strictly
        ascending: the writer buckets a value by the last edge it reaches, the API plans
        ranges on ascending edges, and the first edges written for a tag stay in Redis."""
        where = f"STREAM_APP_REDIS_NUM_EDGES (redis_num_edges) {v!r}"
        parts = [p.strip() for p in v.split(",")]
        if not any(parts):
            raise ConfigError(f"{where}: expected comma-separated numbers, e.g. "
                              "0,1,5,10,20,50,100,1000")
        kept = [p for p in parts if p]
        bad = bad_edge(kept)
        if bad is not None:
            i, kind = bad
            if kind == "number":
                raise ConfigError(f"{where}: {kept[i]!r} is not a number (edges are plain "
                                  "decimal numbers such as 0, 2.5 or 1e3)")
            raise ConfigError(f"{where}: edges must be strictly ascending; {kept[i]} comes "
                              f"after {kept[i - 1]}")
        return ",".join(kept)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, v: str) -> str:
        """A URL redis-py connects to (it refuses any other only at the first connection: a
        worker's traceback, QA31 F3).

        >>> Settings(redis_url="unix:///run/redis.sock").redis_url
        'unix:///run/redis.sock'
        >>> Settings(redis_url="127.0.0.1:6379")   # doctest: +ELLIPSIS
        Traceback (most recent call last):
        stream_app.errors.ConfigError: STREAM_APP_REDIS_URL '127.0.0.1:6379': ... redis://...
        """
        if not v.startswith(REDIS_SCHEMES):
            raise ConfigError(f"STREAM_APP_REDIS_URL {v!r}: must start with "
                              f"{', '.join(REDIS_SCHEMES)} (e.g. redis://127.0.0.1:6379/0)")
        return v

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, v: str) -> str:
        """One of Faust's worker log levels, in lower case (Faust's ``-l`` would refuse any
        other only as the worker starts).

        >>> Settings(log_level="INFO").log_level, Settings(log_level="warning").log_level
        ('info', 'warn')
        >>> Settings(log_level="verbose")   # doctest: +ELLIPSIS
        Traceback (most recent call last):
        stream_app.errors.ConfigError: STREAM_APP_LOG_LEVEL 'verbose': ... crit, error, warn, ...
        """
        level = v.strip().lower()
        level = _LOG_LEVEL_ALIASES.get(level, level)
        if level not in LOG_LEVELS:
            raise ConfigError(f"STREAM_APP_LOG_LEVEL {v!r}: must be one of "
                              f"{', '.join(LOG_LEVELS)}")
        return level

    @field_validator("disable")
    @classmethod
    def _check_disable(cls, v: str) -> str:
        """Known parts only: a misspelt one would switch nothing off, silently.

        >>> Settings(disable="redis, scoring").disabled("scoring")
        True
        >>> Settings(disable="redis,scorin")   # doctest: +ELLIPSIS
        Traceback (most recent call last):
        stream_app.errors.ConfigError: STREAM_APP_DISABLE 'redis,scorin': unknown part 'scorin' ...
        """
        unknown = [p for p in (p.strip() for p in v.split(",")) if p and p not in DISABLE_PARTS]
        if unknown:
            raise ConfigError(f"STREAM_APP_DISABLE {v!r}: unknown part "
                              f"{', '.join(map(repr, unknown))} (known: "
                              f"{', '.join(DISABLE_PARTS)}; comma-separated)")
        return v

    @field_validator("table_store")
    @classmethod
    def _check_table_store(cls, v: str) -> str:
        if not v.startswith(("memory://", "rocksdb://")):
            raise ConfigError(f"table_store must be memory:// or rocksdb://, got {v!r}")
        return v

    def table_store_url(self, table: str) -> str:
        """The ``store=`` of table ``table``. Faust treats a bare ``rocksdb://`` given to a
        table as no store at all (an empty URL is falsy) and falls back to the app's memory
        store, so the table name becomes the URL's path: RocksDB files are
        ``DATADIR/v1/tables/<table>-<partition>.db``.

        Example:
            >>> Settings(table_store="rocksdb://").table_store_url("users")
            'rocksdb:users'
            >>> Settings(table_store="memory://").table_store_url("users")
            'memory://'
        """
        scheme, _, path = self.table_store.partition("://")
        if scheme != "rocksdb":
            return self.table_store
        return f"rocksdb:{path.strip('/') or table}"

    def table_options(self) -> dict[str, int] | None:
        """Store options of the users table: RocksDB memory bounds, nothing for memory://.

        Example:
            >>> Settings(table_store="rocksdb://").table_options()["block_cache_size"]
            67108864
            >>> Settings(table_store="memory://").table_options() is None
            True
        """
        if not self.table_store.startswith("rocksdb://"):
            return None
        return {"block_cache_size": self.table_rocksdb_cache_mb << 20,
                "write_buffer_size": self.table_rocksdb_write_buffer_mb << 20}

    def disabled(self, part: str) -> bool:
        """Whether ``part`` is switched off by ``disable``."""
        return part in {p.strip() for p in self.disable.split(",")}

    @field_validator("broker_url")
    @classmethod
    def _check_broker(cls, v: str) -> str:
        if not v.startswith(("kafka://", "aiokafka://")):
            raise ConfigError(f"broker_url must start with kafka://, got {v!r}")
        return v

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap servers in librdkafka form (``host:port[,host:port]``)."""
        return ",".join(u.split("://", 1)[-1] for u in self.broker_url.split(";"))

    @property
    def day_offset_ms(self) -> int:
        return self.day_offset_minutes * 60_000

    def day_of(self, ts_ms: int) -> int:
        """Business-day index (days since epoch in the configured offset) of ``ts_ms``."""
        return (ts_ms + self.day_offset_ms) // DAY_MS


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
