"""Per-process runtime objects shared by agents, timers and pages (created once per worker).

Holds the tag engine (swappable on rule hot reload), the clock and the Redis projection.
Nothing here is business state: that lives in Faust tables and is recovered from changelogs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from stream_app import metrics
from stream_app.clock import HybridClock
from stream_app.config import Settings
from stream_app.due_index import DueIndex
from stream_app.rules.engine import TagEngine
from stream_app.rules.loader import load_ruleset
from stream_app.scoring.config import ScoringConfig, load_scoring_config
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from stream_app.serving.projection import RedisProjection
from stream_app.tick_pacing import TickPacer


class ProjectionMetrics:
    """Adapter from the projection's hooks to the Prometheus collectors."""

    def redis_error(self, op: str) -> None:
        metrics.REDIS_ERRORS.labels(op=op).inc()

    def redis_latency(self, seconds: float) -> None:
        metrics.REDIS_WRITE_LATENCY.observe(seconds)

    def redis_buffered(self, n: int) -> None:
        metrics.REDIS_BUFFERED.set(n)


def build_engine(settings: Settings, ruleset: Any | None = None) -> TagEngine:
    """A TagEngine for ``ruleset`` (default: the rules at settings.rules_path)."""
    return TagEngine(
        ruleset or load_ruleset(settings.rules_path),
        day_offset_ms=settings.day_offset_ms,
        retention_days=settings.retention_days,
        dedup_window=settings.dedup_window,
        state_ttl_days=settings.state_ttl_days,
    )


@dataclass
class Runtime:
    """The worker's engine, scorer, clock, projection and counters."""

    settings: Settings
    engine: TagEngine
    projection: RedisProjection
    scoring_config: ScoringConfig
    registry: ModelRegistry
    scorer: Scorer
    clock: HybridClock = field(default_factory=HybridClock)
    started: float = field(default_factory=time.time)
    processed: int = 0
    #: held users by next due time (the sweep pops due ones; rebuilt after a rebalance)
    due: DueIndex = field(default_factory=DueIndex)
    #: users still to re-evaluate after a rule-set change (backfill), and how many in all
    backfill: list[str] = field(default_factory=list)
    backfill_total: int = 0
    #: backfill ticks handled (users re-evaluated) since the rule-set change
    backfill_done: int = 0
    #: the newest ``redis-rebuild --live`` request this worker has seen (its caches of what
    #: Redis holds were dropped when it came)
    reproject_id: bytes = b""
    #: the newest request whose first records suspended the projection's caches
    reproject_begun: bytes = b""
    #: the sweep's bursts and pauses, and the measured cost of a tick
    ticks: TickPacer = field(default_factory=TickPacer)

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        # the scorer's daily buckets and the alerts' dates on the engine's business day
        scoring_config = load_scoring_config(day_offset_minutes=settings.day_offset_minutes)
        registry = ModelRegistry(scoring_config)
        engine = build_engine(settings)
        scorer = Scorer(scoring_config, registry)
        if scorer.alert_policy is not None:
            # the thresholds and points alert reasons cite: the rule set the engine runs
            # now (a hot reload swaps engine.ruleset), read only when an alert is built
            scorer.alert_policy.rule_params = lambda: engine.ruleset.params
        return cls(settings=settings, engine=engine,
                   projection=RedisProjection(settings.redis_url, settings.redis_flush_ms,
                                              metrics=ProjectionMetrics(),
                                              max_held=settings.redis_max_held),
                   scoring_config=scoring_config, registry=registry,
                   scorer=scorer,
                   ticks=TickPacer(settings.sweep_tick_share, settings.sweep_tick_burst))
