"""Keep the start-up heap out of Python's full garbage collections.

Why (measured, docs/PERFORMANCE.md item 25): every loop hold over 50 ms a probe saw in a worker
at half load was a generation-2 collection, 110-130 ms each, every 5-30 s, and each one
collected nothing: it scanned the long-lived objects of the start-up (Faust, aiokafka, the
compiled rules, the river models, the modules). One such hold delays every event that
arrives during it, which sets the p99 of a 10 s window.

How: once the worker is ready (tables recovered, first assignment done) one full collection
runs, then ``gc.freeze()`` moves every object that survived it into the permanent generation,
which later collections do not scan. Cyclic garbage created afterwards is still collected;
only what lived through start-up is exempt (it lives as long as the worker). Again after each
rebalance that completes, so objects built for new partitions join it; the price is that a
frozen object which later becomes part of a garbage cycle (e.g. something of a revoked
partition) is never reclaimed, a little memory per rebalance.
``STREAM_APP_GC_FREEZE=false`` leaves the collector as Python sets it.

Example:
    >>> import gc
    >>> before = gc.get_freeze_count()
    >>> frozen = freeze_heap()
    >>> frozen >= 0 and gc.get_freeze_count() >= before
    True
    >>> gc.unfreeze()
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)
#: how often the worker checks whether it became ready again after a rebalance
CHECK_EVERY_S = 1.0


def freeze_heap() -> int:
    """Collect once, then freeze what survived; returns the objects now frozen."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("gc: %d objects frozen in %.0f ms", frozen, (time.perf_counter() - started) * 1e3)
    return frozen


async def freeze_when_ready(is_ready, check_every_s: float = CHECK_EVERY_S) -> None:  # noqa: ANN001
    """Freeze the heap each time ``is_ready()`` turns true (start-up, after a rebalance)."""
    was_ready = False
    while True:
        ready = bool(is_ready())
        if ready and not was_ready:
            freeze_heap()
        was_ready = ready
        await asyncio.sleep(check_every_s)
