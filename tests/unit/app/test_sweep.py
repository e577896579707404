"""The clock sweep (``stream_app.app.sweep.sweep_once``): a stale due index is rebuilt from
the table as soon as the worker is ready, before its clock has seen an event (a restarted
worker reads its table before live traffic reaches it; measured in docs/PERFORMANCE.md item
37), never while it is not ready (a table being restored would give a partial index), and
ticks wait for the clock. Run in a subprocess: importing the app builds the Faust app."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = r"""
import asyncio, types
from stream_app.app import main                      # registers agents and timers
from stream_app.app import sweep as sw
from stream_app.app.context import runtime
from stream_app.clock import HybridClock
from stream_app.state.codec import encode

sent = []
sw.app = types.SimpleNamespace(producer=types.SimpleNamespace(
    produce=lambda topic, key, value: sent.append((key, value))))
ready = {"now": False}
sw.is_ready = lambda: ready["now"]
reads = []
def held(chunk):
    reads.append(chunk)
    yield [("early", encode({"nd": 1_000})), ("late", encode({"nd": 9_000}))]
sw._held_states = held
runtime.clock = HybridClock(wall=lambda: 0.0)
runtime.due.invalidate()

out = []
out.append((asyncio.run(sw.sweep_once()), len(reads), runtime.due.stale))   # not ready
ready["now"] = True
out.append((asyncio.run(sw.sweep_once()), len(reads), runtime.due.stale))   # no clock yet
runtime.clock.observe(5_000, 0)
out.append((asyncio.run(sw.sweep_once()), len(reads), runtime.due.stale))   # "early" due
print(out, sent)
"""


def test_rebuild_waits_for_ready_not_for_the_clock(tmp_path) -> None:
    env = {**os.environ, "STREAM_APP_DATADIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    line = out.stdout.strip().splitlines()[-1]
    steps, sent = line.split("] [")
    # not ready: no table read; ready without a clock: the index is built, no tick;
    # with a clock: the one user due, once, and no second read of the table
    assert steps == "[(0, 0, True), (0, 1, False), (1, 1, False)"
    assert sent == "('early', b'tick:5000')]"   # the tick carries the sweep's clock


PACED = r"""
import asyncio, json, types
from stream_app.app import main                      # registers agents and timers
from stream_app.app import sweep as sw
from stream_app.app.context import runtime
from stream_app.tick_pacing import TickPacer

COST, LIVE = 1e-3, 0.5        # a tick's real cost on the loop; the live load (CPU s per s)
W, C = [0.0], [0.0]           # the fake wall clock and the loop thread's CPU time
sent = []
sw.app = types.SimpleNamespace(producer=types.SimpleNamespace(
    produce=lambda topic, key, value: sent.append(key)))
sw.time = types.SimpleNamespace(monotonic=lambda: W[0], thread_time=lambda: C[0])
pacer = runtime.ticks = TickPacer(share=0.5, burst=500, first_cost_s=1e-4)
pauses, on_pause = [], []

async def fake_sleep(seconds):
    pending = len(sent) - pacer.observed
    if pending > 0:   # the agent processes them, beside the live load
        dt = pending * COST / (1 - LIVE)
        pacer.observed += pending
        W[0] += dt
        C[0] += pending * COST + LIVE * dt
        return
    pauses.append(round(seconds, 6))
    W[0] += seconds
    C[0] += LIVE * seconds
    for f in on_pause:
        f()
sw.asyncio = types.SimpleNamespace(sleep=fake_sleep)

def fresh(prefix):
    runtime.due.rebuild([(f"{prefix}{i}", 1000 + i) for i in range(1200)] + [("later", 10**9)])
    sent.clear(); pauses.clear()
    pacer.observed = 0

out = {}
fresh("u")
out["all"] = [asyncio.run(sw.send_ticks(5000, interval_s=60)), list(pauses), len(runtime.due)]
out["order"] = sent == [f"u{i}" for i in range(1200)]

fresh("v")
out["deadline"] = [asyncio.run(sw.send_ticks(5000, interval_s=1.5)), list(pauses),
                   len(runtime.due)]
out["next_sweep"] = [asyncio.run(sw.send_ticks(5000, interval_s=60)),
                     sent[500:] == [f"v{i}" for i in range(500, 1200)]]

fresh("w")
on_pause.append(runtime.due.invalidate)              # a rebalance during the first pause
out["stale"] = [asyncio.run(sw.send_ticks(5000, interval_s=60)), list(pauses)]
print(json.dumps(out))
"""


def test_ticks_go_in_bursts_paced_by_the_loops_cpu_and_what_does_not_fit_waits(
        tmp_path) -> None:
    import json

    from tests.unit.app.snippet import last_line

    out = json.loads(last_line(PACED, tmp_path))
    # 1,200 due in bursts of 500, 500 and 200, each burst waited for. A tick costs the loop
    # 1 ms (its handler's measure says 0.1 ms) beside a live load of half the loop: the first
    # pause counts the live load in (nothing measured yet: 1.0 s of CPU, share 0.5), the
    # second takes it out (0.5 s); the handler's measure alone would give 0.05 s
    assert out["all"] == [1200, [1.0, 0.5], 1] and out["order"]
    # a 1.5 s sweep interval: the first burst took 1 s, its pause would end past it
    assert out["deadline"] == [500, [], 701]         # 700 due and one not yet
    assert out["next_sweep"] == [700, True]          # the next sweep goes on, oldest first
    assert out["stale"] == [500, [1.0]]              # stops once the index is stale
