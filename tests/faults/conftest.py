"""Fault-injection fixtures: a stack of their own (broker, Redis, workers) for the session.

Run with ``.venv/bin/python -m pytest tests/faults -q`` (``make test-faults``). The stack uses
short consumer-group timeouts (``BROKER_SESSION_TIMEOUT=6``, ``BROKER_REBALANCE_TIMEOUT=10``,
read by Faust from the environment): a group join on tansu then takes ~8 s instead of ~30 s,
and a worker killed with SIGKILL is evicted after 6 s instead of 60 s. The clock sweep is
slowed to once an hour so that results depend on the events only (no ticks), which lets every
test compare the tables with the pure tag engine applied to the same input.

Each fault test records one row (events in, processed, in DLQ, lost, duplicated, recovery
seconds); the rows are printed at the end of the run and written to
``var/faults/report.json`` and ``var/faults/report.md``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.faults.workload import GRACE_MS, FaultReport
from tests.helpers import running_stack

ROOT = Path(__file__).resolve().parents[2]
REPORT = FaultReport()

FAULT_ENV = {
    "STREAM_APP_SWEEP_INTERVAL_S": "3600",
    "STREAM_APP_LATE_GRACE_MS": str(GRACE_MS),
    "STREAM_APP_REDIS_FLUSH_MS": "50",
    # each test takes a later 100-day range, years past the wall clock: no far-future guard
    "STREAM_APP_MAX_FUTURE_MS": "0",
    "BROKER_SESSION_TIMEOUT": "6",
    "BROKER_HEARTBEAT_INTERVAL": "1",
    "BROKER_REBALANCE_TIMEOUT": "10",
}


@pytest.fixture(scope="session")
def fstack():
    """Broker + Redis + topics + one ready worker, for the fault tests only."""
    yield from running_stack(ROOT / "var" / f"faults-{os.getpid()}", FAULT_ENV, partitions=4,
                             worker_timeout=180)


@pytest.fixture(scope="session")
def report():
    return REPORT


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if not REPORT.rows:
        return
    text = REPORT.markdown()
    terminalreporter.write_sep("=", "fault report")
    terminalreporter.write_line(text)
    out = ROOT / "var" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(text + "\n")
    (out / "report.json").write_text(json.dumps(REPORT.rows, indent=2) + "\n")
