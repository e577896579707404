"""The clock sweep: time-based tags change without new events.

Every ``sweep_interval_s`` each worker looks at the users it holds and sends a tick
(``internal.ticks``, keyed by user) for those whose tags could change now (the business
day rolled, a window emptied, the TTL passed). The tick is processed by the agent that owns
the user's partition, which is the only place the user's state is written. Ticks are
idempotent, so a sweep that runs twice (rebalance) changes nothing.
"""

from __future__ import annotations

import logging
import time

from stream_app import metrics
from stream_app.app.context import runtime
from stream_app.app.main import app, settings
from stream_app.app.tables import users
from stream_app.app.topics import ticks_topic

log = logging.getLogger(__name__)
MAX_TICKS_PER_SWEEP = 20_000
BACKFILL_PER_SWEEP = 5_000
RETICK_AFTER_S = 30.0


@app.timer(interval=settings.sweep_interval_s)
async def sweep() -> None:
    now = runtime.clock.now()
    if now is None:
        return
    engine = runtime.engine
    recent = runtime.recent_ticks
    wall = time.monotonic()
    due: list[str] = []
    for uid, state in list(users.data.items()):
        if state is None or (uid in recent and wall - recent[uid] < RETICK_AFTER_S):
            continue
        if engine.due(state, now):
            due.append(uid)
            if len(due) >= MAX_TICKS_PER_SWEEP:
                break
    for uid in due:
        recent[uid] = wall
        await ticks_topic.send(key=uid, value=b"tick")
    if runtime.backfill:
        chunk = runtime.backfill[-BACKFILL_PER_SWEEP:]
        del runtime.backfill[-BACKFILL_PER_SWEEP:]
        for uid in chunk:
            await ticks_topic.send(key=uid, value=b"backfill")
        done = runtime.backfill_total - len(runtime.backfill)
        metrics.BACKFILL_PROGRESS.set(done / max(runtime.backfill_total, 1))
        log.warning("rule backfill: %d/%d users re-evaluated", done, runtime.backfill_total)
