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
