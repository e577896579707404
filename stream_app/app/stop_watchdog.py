"""A worker that stops within a bounded time after SIGTERM or SIGINT, whatever is unreachable.

Faust's stop commits offsets and leaves the consumer group; with the broker gone, aiokafka
looks for the group coordinator again every 100 ms, forever, and the process never exits
(measured: still running 400 s after SIGTERM, broker and Redis killed; found by exploratory
testing in session 23). An orchestrator would kill it in the end, but a worker stopped by hand
or by a script hung. So a stop signal also arms a timer (``STREAM_APP_STOP_TIMEOUT_S``,
default 55 s, under the 60-s grace period of ``deploy/k8s/worker.yaml``; 0: none): if the
worker is still there when it fires, it says so on stderr and exits with status 1. That is
the same as a ``kill -9`` for the data: nothing committed after the last commit, no
clean-stop marker, so the next start restores the tables from their changelogs and re-reads
the inputs from the committed offsets (docs/GUARANTEES.md).

Example:
    >>> import signal
    >>> exits = []
    >>> w = WatchdogTimer(0.01, exit=exits.append)
    >>> w.arm(signal.SIGTERM); w.arm(signal.SIGTERM)      # a second signal: one timer
    >>> w.timer.join(1); exits
    [1]
    >>> WatchdogTimer(0).arm(signal.SIGTERM) is None          # 0: no timer
    True
"""

from __future__ import annotations

import os
import signal as signals
import sys
import threading
from collections.abc import Callable
from typing import Any

import faust

from stream_app.config import get_settings


class WatchdogTimer:
    """Exits the process ``timeout_s`` after :meth:`arm` unless it ended before."""

    def __init__(self, timeout_s: float, exit: Callable[[int], Any] = os._exit) -> None:  # noqa: A002
        self.timeout_s = timeout_s
        self.exit = exit
        self.timer: threading.Timer | None = None

    def arm(self, sig: signals.Signals) -> None:
        """Start the timer (once; nothing when the timeout is 0)."""
        if self.timeout_s <= 0 or self.timer is not None:
            return
        self.timer = threading.Timer(self.timeout_s, self._fire, args=(sig,))
        self.timer.daemon = True
        self.timer.start()

    def _fire(self, sig: signals.Signals) -> None:
        print(f"stream-app worker: still stopping {self.timeout_s:g} s after {sig.name} (is "
              "the broker or Redis unreachable?): exiting now; the next start restores the "
              "tables from their changelogs and re-reads uncommitted input "
              "(STREAM_APP_STOP_TIMEOUT_S)", file=sys.stderr, flush=True)
        self.exit(1)


class Worker(faust.Worker):
    """Faust's worker with a :class:`WatchdogTimer` armed by the first stop signal (the app's
    ``Worker`` setting, ``stream_app.app.main``)."""

    def _schedule_shutdown(self, signal: signals.Signals) -> None:
        watchdog = getattr(self, "_stop_watchdog", None)
        if watchdog is None:
            watchdog = self._stop_watchdog = WatchdogTimer(get_settings().stop_timeout_s)
        watchdog.arm(signal)
        super()._schedule_shutdown(signal)
