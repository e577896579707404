"""``stream-app dev`` (``make run``) stopped by a signal instead of Ctrl-C: SIGTERM (``kill``,
``timeout``, a supervisor) stops it the same way, and nothing it started is left running.
Its output to a pipe is a summary line every 10 s with events and tag changes flowing, and
the backlog: input events the workers have not processed yet. The live simulator's user ids
start with ``live-``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.measure import tree_pids

pytestmark = pytest.mark.integration


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def test_sigterm_stops_dev_and_every_service_it_started(tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream_app", "dev", "--workdir", str(tmp_path / "dev"),
         "--speed", "600"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "120"})
    out: list[str] = []
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if "worker(s) ready" in line:
                break
        assert any("worker(s) ready" in ln for ln in out), "".join(out[-30:])
        children = [p for p in tree_pids(proc.pid) if p != proc.pid]
        names = {Path(f"/proc/{p}/comm").read_text().strip() for p in children}
        assert any("tansu" in n for n in names) and any("redis" in n for n in names), names
        assert len(children) >= 3                   # broker, Redis, one worker (at least)
        # not a terminal: a summary line every 10 s (a live table would show only at the end)
        summary = None
        while time.time() < deadline and summary is None:
            line = proc.stdout.readline()
            out.append(line)
            summary = re.match(r"\d+s: ([\d,]+) events .*, ([\d,]+) tag changes, alerts ", line)
        assert summary, "".join(out[-30:])
        assert int(summary[1].replace(",", "")) > 0 and int(summary[2].replace(",", "")) > 0
        # the live simulator's users are live-u..., apart from a `simulate` file's u... (QA38
        # F1: a file replayed into this stack was merged into the live users of its ids)
        import redis

        url = next(ln.split("STREAM_APP_REDIS_URL=", 1)[1].strip() for ln in out
                   if "export STREAM_APP_REDIS_URL=" in ln)
        users = [k.decode().split(":user:", 1)[1] for k in redis.Redis.from_url(url).scan_iter(
            match="sa:*:user:*", count=1000)]
        assert users and all(u.startswith("live-u") for u in users), users[:5]
        # the backlog, read in the background once per summary ("?" until the first reading)
        backlog = re.search(r", backlog ([\d,]+) events?\b", line)
        while time.time() < deadline and backlog is None:
            line = proc.stdout.readline()
            out.append(line)
            if re.match(r"\d+s: ", line):
                assert ", backlog " in line, line
                backlog = re.search(r", backlog ([\d,]+) events?\b", line)
        assert backlog, "".join(out[-30:])
        assert int(backlog[1].replace(",", "")) >= 0
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest[-2000:]
    assert "stopping..." in rest
    left = [p for p in children if _running(p)]
    assert not left, f"still running after SIGTERM: {left}"
