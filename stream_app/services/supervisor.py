"""Watch a stack's worker processes and restart one that exits, with a restart limit.

``stream-app dev`` calls :meth:`Supervisor.check` from its live loop (about once a second).
A worker that exits while the stack runs (a crash, an OOM kill, ``kill -9``) is reported
(which worker, how it ended, where its log is) and started again on its own data directory,
like a production supervisor would (systemd's ``Restart=always`` with a start limit, a
Kubernetes pod's restart): the restarted worker finds no clean-stop marker, restores its stores
from the changelog and goes on from the group's committed offsets. A worker that stops cleanly
(exit status 0: a ``kill -TERM`` from outside; dev stops its workers only when it stops
itself) is reported as such, not as an unexpected exit (QA40 F5.5), and restarted the same
way (it reads its stores' changelog tail only). Every restart counts toward the limit, a clean
stop's too: dev cannot tell an operator's stop from whatever else keeps stopping a worker, and
Kubernetes' back-off and systemd's ``StartLimitBurst`` count every start alike. More than
``max_restarts`` restarts within ``window_s`` seconds means the worker cannot run here:
:meth:`check` raises :class:`~stream_app.errors.ServiceError` (the caller stops the run with a
non-zero exit).

Example (a fake worker that has died once):
    >>> from pathlib import Path
    >>> class W:
    ...     name, log, code, ready_now = "worker-1", Path("var/dev/logs/worker-1.log"), -9, False
    ...     def alive(self): return self.code is None
    ...     def exit_code(self): return self.code
    ...     def ready(self): return self.ready_now
    >>> w = W()
    >>> def restart(worker): worker.code = None
    >>> clock = iter([0.0, 4.0]).__next__
    >>> sup = Supervisor([w], restart, clock=clock)
    >>> for line in sup.check(): print(line)
    worker-1 exited unexpectedly (killed by signal 9, SIGKILL); its log: var/dev/logs/worker-1.log
    worker-1 restarted (restart 1 of at most 3 in 5 min), restoring its stores
    >>> sup.down()
    ['worker-1']
    >>> w.ready_now = True
    >>> sup.check()
    ['worker-1 is back (ready 4s after its restart)']
    >>> sup.down()
    []
"""

from __future__ import annotations

import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from stream_app.errors import ServiceError

#: restarts of one worker allowed within :data:`RESTART_WINDOW_S` before the run is stopped
MAX_RESTARTS = 3
#: the window of :data:`MAX_RESTARTS`, in seconds
RESTART_WINDOW_S = 300.0
#: seconds between two readiness checks of a restarted worker
READY_CHECK_EVERY_S = 2.0


class Supervised(Protocol):
    """What the supervisor needs of a worker (a
    :class:`~stream_app.services.worker.WorkerProcess`)."""

    name: str

    @property
    def log(self) -> Path | None: ...

    def alive(self) -> bool: ...

    def exit_code(self) -> int | None: ...

    def ready(self) -> bool: ...


def describe_exit(code: int | None) -> str:
    """How a process ended, from its return code (negative: the signal that killed it).

    >>> describe_exit(-9), describe_exit(1), describe_exit(0), describe_exit(None)
    ('killed by signal 9, SIGKILL', 'exit status 1', 'exit status 0', 'exit status unknown')
    >>> describe_exit(-200)
    'killed by signal 200'
    """
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by signal {-code}, {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def exit_notice(name: str, code: int | None) -> str:
    """What ``dev`` says of a worker it finds ended (it stops its workers only when it stops):
    a clean stop (exit status 0, e.g. a ``kill -TERM`` from outside) is no crash.

    >>> exit_notice("worker-1", -9)
    'worker-1 exited unexpectedly (killed by signal 9, SIGKILL)'
    >>> exit_notice("worker-1", 0)
    'worker-1 stopped cleanly (exit status 0), not by dev: a stop signal from outside (kill -TERM?)'
    """
    if code == 0:
        return (f"{name} stopped cleanly (exit status 0), not by dev: a stop signal from "
                "outside (kill -TERM?)")
    return f"{name} exited unexpectedly ({describe_exit(code)})"


def _window_text(seconds: float) -> str:
    """``300.0`` -> ``'5 min'``, ``45`` -> ``'45 s'``."""
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


class Supervisor:
    """Restart workers that exit, at most ``max_restarts`` times each in ``window_s`` seconds.

    Parameters:
        workers: the workers to watch (the list is read at each check, so workers added
            later are watched too).
        restart: starts a dead worker again (``Stack.restart_worker``).
        clock: monotonic seconds (a test passes a fake one).
    """

    def __init__(self, workers: Sequence[Supervised],
                 restart: Callable[[Supervised], object], *,
                 max_restarts: int = MAX_RESTARTS, window_s: float = RESTART_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.workers = workers
        self.restart = restart
        self.max_restarts, self.window_s = max_restarts, window_s
        self.clock = clock
        #: worker name -> monotonic times of its restarts within the window
        self.restarts: dict[str, deque[float]] = {}
        #: worker name -> (time of its restart, time of the last readiness check)
        self._pending: dict[str, tuple[float, float]] = {}
        #: restarts done so far, all workers
        self.total_restarts = 0

    def down(self) -> list[str]:
        """Names of the workers restarted and not ready again yet."""
        return sorted(self._pending)

    def status(self) -> str:
        """A few words for a summary line: ``''`` when every worker is up.

        >>> Supervisor([], lambda w: None).status()
        ''
        """
        down = self.down()
        if not down:
            return ""
        return f"{', '.join(down)} restarting (not processing: the backlog grows until it is back)"

    def check(self) -> list[str]:
        """Look at every worker once; return what to tell the user (may be empty).

        Raises :class:`ServiceError` when a worker exited more than ``max_restarts`` times
        within ``window_s`` seconds."""
        notices: list[str] = []
        for w in list(self.workers):
            if w.alive():
                self._check_ready(w, notices)
                continue
            now = self.clock()
            code = w.exit_code()
            how = describe_exit(code)
            log = f"; its log: {w.log}" if w.log is not None else ""
            notices.append(f"{exit_notice(w.name, code)}{log}")
            times = self.restarts.setdefault(w.name, deque())
            while times and now - times[0] > self.window_s:
                times.popleft()
            if len(times) >= self.max_restarts:
                where = w.log if w.log is not None else "its log"
                raise ServiceError(
                    f"{w.name} {'stopped cleanly' if code == 0 else 'exited'} ({how}) again "
                    f"after {len(times)} restarts in {_window_text(self.window_s)}: not "
                    "restarting it; the run stops. " + (
                        f"Something outside dev keeps stopping it (its log: {where})"
                        if code == 0 else f"See {where} for why it exits"))
            self.restart(w)
            times.append(now)
            self.total_restarts += 1
            self._pending[w.name] = (now, now)
            notices.append(f"{w.name} restarted (restart {len(times)} of at most "
                           f"{self.max_restarts} in {_window_text(self.window_s)}), "
                           "restoring its stores")
        return notices

    def _check_ready(self, w: Supervised, notices: list[str]) -> None:
        pending = self._pending.get(w.name)
        if pending is None:
            return
        now = self.clock()
        since, last = pending
        if now - last < READY_CHECK_EVERY_S:
            return
        self._pending[w.name] = (since, now)
        if w.ready():
            del self._pending[w.name]
            notices.append(f"{w.name} is back (ready {now - since:.0f}s after its restart)")
