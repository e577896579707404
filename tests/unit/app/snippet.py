"""Run a few lines of Python in a fresh interpreter with ``STREAM_APP_*`` settings, as a worker
would start (settings are read once at import, so each setting needs its own process).

Example:
    >>> import tempfile
    >>> last_line("print(6 * 7)", tempfile.gettempdir())
    '42'
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def last_line(code: str, datadir: str | Path, **settings: str) -> str:
    """The last line ``code`` prints, run with ``STREAM_APP_DATADIR=datadir`` and ``settings``
    (environment names and values); fails the test with the child's stderr if it fails."""
    env = {**os.environ, "STREAM_APP_DATADIR": str(datadir), **settings}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


#: the start of a snippet that feeds the worker's ``handle_event`` through bench.glue_cost's
#: fakes (no Kafka, no Redis): ``side``, ``agents``, ``met``, ``now`` (an hour ago, ms) and
#: ``feed(topic, stream, value, headers=None)``, one record at the topic's next offset
GLUE_FEED = r"""
import json, time
import orjson
from bench import glue_cost as g

mods = g.import_tree(None)
side = g.Side(mods, mods)
agents, met = side.agents, side.metrics
now = int(time.time() * 1000) - 3_600_000
offsets = {}


def feed(topic, stream, value, headers=None):
    off = offsets[topic] = offsets.get(topic, -1) + 1
    msg = g.Msg(topic, 0, off, value["user_id"].encode(), orjson.dumps(value), g.NOW_S)
    msg.headers = headers
    side.run([(msg, stream)])
"""
