"""``stream-app dev`` stopped by SIGTERM (``kill``, ``timeout``, a CI runner) prints the same
``done: ...`` summary as at the end of ``--duration`` (QA F11: it printed only
``stopping...``), and stops its stack."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

import stream_app.kafka_io as kafka_io
from stream_app.cli import dev_cmd, main
from stream_app.services import stack as stack_mod
from tests.unit.core.test_dev_supervisor import _Consumer, _FakeStack


def test_sigterm_prints_the_done_summary(tmp_path, monkeypatch, capsys) -> None:
    _FakeStack.instances.clear()
    monkeypatch.setattr(stack_mod, "Stack", _FakeStack)
    monkeypatch.setattr(kafka_io, "read_assigned", lambda *a, **k: _Consumer())
    monkeypatch.setattr(kafka_io, "group_backlog", lambda *a, **k: 0)

    def produce(stack, sim, speed, stop: threading.Event, stats: Counter, failed) -> None:
        stats["events"] += 7
        stats["tags"] += 1
        stop.wait(30)

    monkeypatch.setattr(dev_cmd, "_produce_simulation", produce)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        main(["dev", "--duration", "30", "--workdir", str(tmp_path / "dev")])
    finally:
        timer.cancel()
    out = capsys.readouterr().out
    assert "stopping..." in out
    assert ("done: 7 events, 1 tag change, 0 hot-lead alerts, 0 at-risk alerts, "
            "0 DLQ records") in out
    (stack,) = _FakeStack.instances
    assert stack.stopped
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
