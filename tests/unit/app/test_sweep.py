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
    assert sent == "('early', b'tick')]"


PACED = r"""
import asyncio, json, types
from stream_app.app import main                      # registers agents and timers
from stream_app.app import sweep as sw
from stream_app.app.context import runtime
from stream_app.tick_pacing import TickPacer

sent = []
sw.app = types.SimpleNamespace(producer=types.SimpleNamespace(
    produce=lambda topic, key, value: sent.append(key)))
pauses = []
on_pause = []
async def fake_sleep(seconds):
    pauses.append(round(seconds, 6))
    for f in on_pause:
        f()
sw.asyncio = types.SimpleNamespace(sleep=fake_sleep)
runtime.ticks = TickPacer(share=0.5, burst=500, first_cost_s=1e-3)
out = {}

runtime.due.rebuild([(f"u{i}", 1000 + i) for i in range(1200)] + [("later", 10**9)])
out["all"] = [asyncio.run(sw.send_ticks(5000, interval_s=60)), list(pauses), len(runtime.due)]
out["order"] = sent == [f"u{i}" for i in range(1200)]

runtime.due.rebuild([(f"v{i}", 1000 + i) for i in range(1200)])
pauses.clear(); sent.clear()
out["deadline"] = [asyncio.run(sw.send_ticks(5000, interval_s=0.3)), list(pauses),
                   len(runtime.due)]
out["next_sweep"] = [asyncio.run(sw.send_ticks(5000, interval_s=60)),
                     sent[500:] == [f"v{i}" for i in range(500, 1200)]]

runtime.due.rebuild([(f"w{i}", 1000 + i) for i in range(1200)])
pauses.clear()
on_pause.append(runtime.due.invalidate)              # a rebalance during the first pause
out["stale"] = [asyncio.run(sw.send_ticks(5000, interval_s=60)), list(pauses)]
print(json.dumps(out))
"""


def test_ticks_go_in_bursts_with_pauses_and_what_does_not_fit_waits(tmp_path) -> None:
    import json

    from tests.unit.app.snippet import last_line

    out = json.loads(last_line(PACED, tmp_path))
    # 1,200 due in bursts of 500, 1 ms each at share 0.5: a pause as long as each full burst
    assert out["all"] == [1200, [0.5, 0.5], 1] and out["order"]
    # a 0.3 s sweep interval: the pause after the first burst would end past it
    assert out["deadline"] == [500, [], 700]
    assert out["next_sweep"] == [700, True]          # the next sweep goes on, oldest first
    assert out["stale"] == [500, [0.5]]              # stops once the index is stale
