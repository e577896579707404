"""``terminate_as_interrupt``: SIGTERM/SIGHUP become one KeyboardInterrupt, a second signal
during the clean-up is ignored, and the previous handlers come back."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from stream_app.services.signals import terminate_as_interrupt


def test_first_signal_interrupts_the_second_is_ignored_and_handlers_come_back():
    seen: list[int] = []
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: seen.append(signum))
    try:
        cleaned = False
        with terminate_as_interrupt():
            with pytest.raises(KeyboardInterrupt, match="SIGHUP"):
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(5)
            os.kill(os.getpid(), signal.SIGTERM)      # during the clean-up: ignored
            time.sleep(0.05)
            cleaned = True
        assert cleaned and seen == []
        os.kill(os.getpid(), signal.SIGHUP)           # the handler from before is back
        time.sleep(0.05)
        assert seen == [signal.SIGHUP]
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_outside_the_main_thread_nothing_changes():
    before = signal.getsignal(signal.SIGTERM)
    inside: list[object] = []

    def body() -> None:
        with terminate_as_interrupt():
            inside.append(signal.getsignal(signal.SIGTERM))

    t = threading.Thread(target=body)
    t.start()
    t.join(5)
    assert inside == [before]
