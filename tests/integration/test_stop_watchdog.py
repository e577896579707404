"""A worker whose broker and Redis are gone still stops after SIGTERM, within its stop timeout.

Before (session 23), Faust's stop looked for the group coordinator forever and the worker
was still running 400 s after SIGTERM.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from stream_app.services.stack import Stack
from tests.helpers import TIMELESS_ENV, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
STOP_S = 5


def test_a_stop_signal_ends_the_worker_when_its_broker_is_gone():
    s = Stack(workdir=ROOT / "var" / f"test-stop-{os.getpid()}", workers=0, partitions=2,
              env={**TIMELESS_ENV, "STREAM_APP_STOP_TIMEOUT_S": str(STOP_S)})
    try:
        s.start_services()
        w = s.add_worker(wait=True, timeout=240)
        proc = w.process.proc
        for service in (s.broker, s.redis):
            os.kill(service.process.proc.pid, signal.SIGKILL)
        time.sleep(2)
        assert proc.poll() is None          # the worker runs on, retrying its broker
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # well before Faust gives up (it never does), well after the timeout
        wait_until(lambda: proc.poll() is not None, STOP_S + 40, what="the worker to exit")
        took = time.monotonic() - t0
        assert STOP_S - 1 <= took < STOP_S + 40 and proc.returncode == 1, (took, proc.returncode)
        log = w.process.log.read_text(errors="replace")
        assert f"still stopping {STOP_S} s after SIGTERM" in log
    finally:
        s.stop()
