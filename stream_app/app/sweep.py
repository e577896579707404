"""The clock sweep: time-based tags change without new events.

Every ``sweep_interval_s`` each worker sends a tick (``internal.ticks``, keyed by user) for
the users it holds whose tags could change now (the business day rolled, a window emptied,
a since() threshold such as the 14-day study stall passed, the TTL passed). A tick carries the
sweep's clock and the user is evaluated at that time (:mod:`stream_app.ticks`).
The sweep finds them in a due-time index (:class:`stream_app.due_index.DueIndex`,
kept up to date on every state write), so a sweep costs O(due users), not a scan of every
user; after a rebalance the index is rebuilt once from the table, in steps that leave the
event loop free (at 100k users the read takes seconds). The tick is processed by
the agent that owns the user's partition, the only place the user's state is written. Ticks
are idempotent, so a tick sent twice (rebalance) changes nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator

from stream_app.app.context import runtime
from stream_app.app.main import app, settings
from stream_app.app.tables import users
from stream_app.app.topics import BACKFILL_TICK, TICKS, tick_value
from stream_app.app.web import is_ready
from stream_app.state.codec import due_of

log = logging.getLogger(__name__)
MAX_TICKS_PER_SWEEP = 20_000
BACKFILL_PER_SWEEP = 5_000
#: how often a sweep looks whether its last burst of ticks has been processed
TICK_WAIT_S = 0.01
#: users read per step of a due-index rebuild (then the event loop runs other work)
REBUILD_CHUNK = 2_000


def _held_states(chunk: int) -> Iterator[list[tuple[str, bytes]]]:
    """The users table's (user, state) pairs in lists of ``chunk``: a RocksDB store is read
    by its iterators (a consistent view while the agent writes between chunks; far cheaper
    than a lookup per key outside an agent, which tries every partition), a memory store
    from a snapshot of its dict (which must not change size while iterated)."""
    store = users.data
    plain = getattr(store, "data", None)
    items: Iterator[tuple[str, bytes]] = (
        iter(list(plain.items())) if isinstance(plain, dict) else iter(store.items()))
    while batch := list(itertools.islice(items, chunk)):
        yield batch


async def rebuild_due_index(chunk: int = REBUILD_CHUNK) -> bool:
    """Read every held user's next due time from the table (after start or a rebalance), in
    chunks with the event loop free in between: at 100k users the read takes seconds, and
    processing must not wait for it (users the agent writes meanwhile keep their live due
    time). False if a rebalance invalidated the index meanwhile (the next sweep starts over).
    """
    started = time.monotonic()
    token = runtime.due.begin_rebuild()
    entries: list[tuple[str, int]] = []
    try:
        for batch in _held_states(chunk):
            entries.extend((uid, due_of(raw)) for uid, raw in batch if raw)
            await asyncio.sleep(0)
            if runtime.due.stale_token(token):
                break
    except Exception as exc:  # noqa: BLE001 - a store closed by a rebalance: start over later
        log.info("due index rebuild abandoned: %s", exc)
        runtime.due.invalidate()
        return False
    done = runtime.due.finish_rebuild(entries, token)
    log.info("due index rebuilt: %d users in %.2f s%s", len(entries),
             time.monotonic() - started, "" if done else " (abandoned: partitions moved)")
    return done


async def send_ticks(now: int, interval_s: float = settings.sweep_interval_s) -> int:
    """A tick for each held user due by ``now``, in bursts: each burst is waited for until
    its ticks are processed, then followed by a pause, so that ticks take at most the
    pacer's share of the event loop's time (:mod:`stream_app.tick_pacing`: a burst's cost is
    the loop's CPU time from its send to its last tick, less the live load measured during
    the pause before). Stops when the next pause would end past ``interval_s`` (the rest
    stay due for the next sweep), at ``MAX_TICKS_PER_SWEEP``, or when a rebalance made the
    index stale. Returns the ticks sent."""
    pacer, due = runtime.ticks, runtime.due
    produce = app.producer.produce
    clock, loop_cpu = time.monotonic, time.thread_time   # the sweep runs on the loop's thread
    deadline = clock() + interval_s
    live_rate = 0.0     # the loop's CPU per second of wall time during the last pause
    sent = 0
    while sent < MAX_TICKS_PER_SWEEP and not due.stale:
        burst = due.pop_due(now, min(pacer.burst, MAX_TICKS_PER_SWEEP - sent))
        target = pacer.observed + len(burst)
        w0, c0 = clock(), loop_cpu()
        value = tick_value(now)
        for uid in burst:
            produce(TICKS, uid, value)
        sent += len(burst)
        if len(burst) < pacer.burst:
            break
        while pacer.observed < target and clock() < deadline and not due.stale:
            await asyncio.sleep(TICK_WAIT_S)
        w1, c1 = clock(), loop_cpu()
        pause = pacer.pause_for(len(burst), (c1 - c0) - live_rate * (w1 - w0))
        if clock() + pause >= deadline:
            log.info("sweep: %d ticks sent, the users still due wait for the next sweep "
                     "(ticks kept to %.0f%% of the event loop's time)", sent, pacer.share * 100)
            break
        await asyncio.sleep(pause)
        w2, c2 = clock(), loop_cpu()
        live_rate = (c2 - c1) / max(w2 - w1, 1e-3)
    return sent


@app.timer(interval=settings.sweep_interval_s)
async def sweep() -> None:
    await sweep_once()


async def sweep_once() -> int:
    """One sweep: rebuild the due index if a start or a rebalance made it stale (as soon as
    the worker is ready, before its clock has seen an event: a restarted worker then reads
    the table before live traffic reaches it, not while its first events queue), then a
    tick for every held user due by the worker's clock, paced (:func:`send_ticks`). Returns
    the ticks sent."""
    if runtime.due.stale and (not is_ready() or not await rebuild_due_index()):
        return 0
    now = runtime.clock.now()
    if now is None:
        return 0
    produce = app.producer.produce
    sent = await send_ticks(now)
    if runtime.backfill:
        chunk = runtime.backfill[-BACKFILL_PER_SWEEP:]
        del runtime.backfill[-BACKFILL_PER_SWEEP:]
        for uid in chunk:
            produce(TICKS, uid, BACKFILL_TICK)
        queued = runtime.backfill_total - len(runtime.backfill)
        # (the progress metric counts users re-evaluated, as their ticks are handled:
        # agents.note_backfill; queued ticks wait behind the input backlog)
        log.warning("rule backfill: %d/%d users queued for re-evaluation, %d re-evaluated",
                    queued, runtime.backfill_total, runtime.backfill_done)
        sent += len(chunk)
    return sent
