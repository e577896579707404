"""A termination signal stops a command the way Ctrl-C does, so its services are stopped too.

The embedded broker, Redis and the workers run in process groups of their own
(:class:`~stream_app.services.process.ManagedProcess`), so a signal sent to the command
(``kill``, ``timeout``, a CI runner, a supervisor) does not reach them, and Python's default
SIGTERM action ends the command without running its ``finally`` blocks: they would be left
running. Inside :func:`terminate_as_interrupt`, SIGTERM and SIGHUP raise
:class:`KeyboardInterrupt` in the main thread instead, and the command's clean-up runs. A
second signal while that clean-up runs is ignored, so it is not cut short (SIGKILL still ends
the command at once).

Example:
    >>> import os, signal, time
    >>> with terminate_as_interrupt():
    ...     try:
    ...         os.kill(os.getpid(), signal.SIGTERM)
    ...         time.sleep(5)
    ...     except KeyboardInterrupt as exc:
    ...         print("stopping:", exc)
    stopping: SIGTERM
    >>> signal.getsignal(signal.SIGTERM) is signal.SIG_DFL     # restored on the way out
    True
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

__all__ = ["terminate_as_interrupt"]


@contextmanager
def terminate_as_interrupt(signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGHUP),
                           ) -> Iterator[None]:
    """Within the block, ``signals`` raise KeyboardInterrupt once (then are ignored until
    the block ends); outside the main thread, where handlers cannot be set, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signals}

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for s in signals:                 # the clean-up that follows is not interrupted
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for s in signals:
        signal.signal(s, interrupt)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
