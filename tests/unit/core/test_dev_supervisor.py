"""``stream-app dev`` notices a worker that died (QA F7: ``kill -9`` of the worker left the
summary running with frozen tag counts and a growing backlog): the live loop looks at every
worker process, says which one exited, how and where its log is, restarts it (at most 3 times
in 5 minutes) and stops the run with exit status 1 when it keeps exiting."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from stream_app.cli import dev_cmd, main
from stream_app.errors import ServiceError
from stream_app.services import stack as stack_mod
from stream_app.services.process import ManagedProcess
from stream_app.services.supervisor import Supervisor, describe_exit


class FakeWorker:
    """A worker whose process has ended with ``code`` (None: it runs)."""

    def __init__(self, name: str = "worker-1", code: int | None = None) -> None:
        self.name, self.code, self.is_ready = name, code, False
        self.log = Path(f"var/dev/logs/{name}.log")
        self.starts = 0

    def alive(self) -> bool:
        return self.code is None

    def exit_code(self) -> int | None:
        return self.code

    def ready(self) -> bool:
        return self.is_ready


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _restart(w: FakeWorker) -> None:
    w.code, w.is_ready = None, False
    w.starts += 1


def test_a_dead_worker_is_reported_and_restarted() -> None:
    ok, dead = FakeWorker("worker-1"), FakeWorker("worker-2", code=-9)
    sup = Supervisor([ok, dead], _restart, clock=Clock())
    notices = sup.check()
    assert notices[0] == ("worker-2 exited unexpectedly (killed by signal 9, SIGKILL); "
                          "its log: var/dev/logs/worker-2.log")
    assert notices[1].startswith("worker-2 restarted (restart 1 of at most 3 in 5 min)")
    assert (ok.starts, dead.starts) == (0, 1)
    assert sup.down() == ["worker-2"]
    assert "worker-2 restarting" in sup.status()
    assert sup.check() == []            # restarted, not ready yet: nothing new


def test_a_restarted_worker_is_announced_once_ready() -> None:
    clock = Clock()
    w = FakeWorker(code=1)
    sup = Supervisor([w], _restart, clock=clock)
    sup.check()
    clock.t = 12.0
    w.is_ready = True
    assert sup.check() == ["worker-1 is back (ready 12s after its restart)"]
    assert sup.down() == [] and sup.status() == ""
    assert sup.check() == []


def test_a_worker_that_keeps_exiting_stops_the_run() -> None:
    clock = Clock()
    w = FakeWorker(code=1)
    sup = Supervisor([w], _restart, clock=clock)
    for i in range(3):
        clock.t = 10.0 * i
        w.code = 1
        sup.check()
    assert w.starts == 3
    clock.t = 40.0
    w.code = 1
    with pytest.raises(ServiceError, match=r"worker-1 exited \(exit status 1\) again after 3 "
                       r"restarts in 5 min: not restarting it.*var/dev/logs/worker-1.log"):
        sup.check()
    assert w.starts == 3


def test_restarts_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    w = FakeWorker()
    sup = Supervisor([w], _restart, clock=clock)
    for t in (0.0, 100.0, 200.0, 301.0, 402.0):   # never 4 within 300 s
        clock.t = t
        w.code = -9
        sup.check()
    assert w.starts == 5 and sup.total_restarts == 5


def test_describe_exit() -> None:
    assert describe_exit(-int(signal.SIGTERM)) == "killed by signal 15, SIGTERM"
    assert describe_exit(3) == "exit status 3"


def test_a_killed_process_is_seen_and_started_again(tmp_path: Path) -> None:
    """A real child process killed with SIGKILL: its exit code is -9, and a restart (what
    ``Stack.restart_worker`` does) appends to the same log."""

    class Proc:
        name = "worker-1"

        def __init__(self) -> None:
            self.process: ManagedProcess | None = None
            self.log = tmp_path / "logs" / "worker-1.log"

        def start(self) -> None:
            self.process = ManagedProcess(self.name, [sys.executable, "-c",
                                                      "print('up', flush=True); "
                                                      "import time; time.sleep(60)"], self.log)

        def alive(self) -> bool:
            return bool(self.process and self.process.alive())

        def exit_code(self) -> int | None:
            return self.process.exit_code() if self.process else None

        def ready(self) -> bool:
            return self.alive()

    w = Proc()
    w.start()
    first = w.process
    try:
        sup = Supervisor([w], lambda p: (p.process.stop(), p.start()))
        assert sup.check() == []
        first.kill()
        notices = sup.check()
        assert notices[0].startswith("worker-1 exited unexpectedly (killed by signal 9, SIGKILL)")
        assert w.process is not first and w.alive()
    finally:
        w.process.stop()
        first.stop()


def test_stack_restart_worker_starts_the_same_worker_again(monkeypatch) -> None:
    started, noted = [], []
    old = SimpleNamespace(stop=lambda: started.append("stopped old"))
    worker = SimpleNamespace(process=old, start=lambda: started.append("started"))
    fake = SimpleNamespace(_note_services=lambda: noted.append(True))
    assert stack_mod.Stack.restart_worker(fake, worker) is worker
    assert started == ["stopped old", "started"] and noted == [True]


class _Consumer:
    def consume(self, num_messages: int = 1, timeout: float = 0.0) -> list:
        return []


class _FakeStack:
    """A stack whose one worker dies again at every look (a worker that cannot run)."""

    instances: list[_FakeStack] = []

    def __init__(self, **kw: object) -> None:
        self.workers: list[FakeWorker] = []
        self.bootstrap = "127.0.0.1:1"
        self.redis = SimpleNamespace(url="redis://127.0.0.1:1")
        self.restarts = 0
        self.stopped = False
        _FakeStack.instances.append(self)

    def start_services(self) -> None:
        pass

    def add_worker(self, wait: bool = False) -> FakeWorker:
        w = FakeWorker(f"worker-{len(self.workers) + 1}")
        w.url = "http://127.0.0.1:1"
        w.wait_ready = lambda timeout: None
        self.workers.append(w)
        return w

    def restart_worker(self, w: FakeWorker) -> FakeWorker:
        self.restarts += 1
        w.code = None
        return w

    def settings_env(self) -> dict[str, str]:
        return {}

    def settings(self) -> SimpleNamespace:
        return SimpleNamespace(app_id="stream-app")

    def stop(self) -> None:
        self.stopped = True


def test_dev_restarts_a_dead_worker_then_gives_up_with_exit_1(tmp_path, monkeypatch,
                                                               capsys) -> None:
    import stream_app.kafka_io as kafka_io
    from stream_app.services import supervisor as supervisor_mod

    _FakeStack.instances.clear()
    monkeypatch.setattr(stack_mod, "Stack", _FakeStack)
    monkeypatch.setattr(kafka_io, "read_assigned", lambda *a, **k: _Consumer())
    monkeypatch.setattr(kafka_io, "group_backlog", lambda *a, **k: 0)
    monkeypatch.setattr(dev_cmd, "WORKER_CHECK_EVERY_S", 0.0)

    def produce(stack, sim, speed, stop: threading.Event, stats: Counter, failed) -> None:
        stats["events"] += 1
        stop.wait(30)

    monkeypatch.setattr(dev_cmd, "_produce_simulation", produce)
    # the worker dies again each time it is looked at
    real_check = supervisor_mod.Supervisor.check

    def check(self: Supervisor) -> list[str]:
        for w in self.workers:
            w.code = -9
        return real_check(self)

    monkeypatch.setattr(supervisor_mod.Supervisor, "check", check)
    with pytest.raises(SystemExit) as stop:
        main(["dev", "--duration", "20", "--workdir", str(tmp_path / "dev")])
    out, err = capsys.readouterr()
    assert stop.value.code == 1
    assert "worker-1 exited unexpectedly (killed by signal 9, SIGKILL); its log: " \
           "var/dev/logs/worker-1.log" in out
    assert "worker-1 restarted (restart 3 of at most 3 in 5 min)" in out
    assert "Error: worker-1 exited (killed by signal 9, SIGKILL) again after 3 restarts" in err
    assert "Traceback" not in err
    (stack,) = _FakeStack.instances
    assert stack.restarts == 3 and stack.stopped


def test_a_clean_stop_from_outside_is_no_crash_but_is_restarted_and_counted() -> None:
    """QA40 F5.5: a graceful ``kill -TERM`` of a worker (exit status 0) was reported as
    "exited unexpectedly (exit status 0)". dev did not ask for it, so it is still restarted,
    and it counts toward the limit (docs/OPERATIONS.md "Restarts and the table store")."""
    clock = Clock()
    w = FakeWorker(code=0)
    sup = Supervisor([w], _restart, clock=clock)
    notices = sup.check()
    assert notices[0] == ("worker-1 stopped cleanly (exit status 0), not by dev: a stop "
                          "signal from outside (kill -TERM?); its log: var/dev/logs/worker-1.log")
    assert notices[1].startswith("worker-1 restarted (restart 1 of at most 3 in 5 min)")
    assert w.starts == 1
    for t in (10.0, 20.0):
        clock.t = t
        w.code = 0
        sup.check()
    clock.t = 30.0
    w.code = 0
    with pytest.raises(ServiceError, match=r"^worker-1 stopped cleanly \(exit status 0\) again "
                       r"after 3 restarts in 5 min: not restarting it; the run stops\. "
                       r"Something outside dev keeps stopping it \(its log: "
                       r"var/dev/logs/worker-1.log\)$"):
        sup.check()
    assert w.starts == 3


def test_a_worker_stopped_by_sigterm_is_seen_as_a_clean_stop(tmp_path: Path) -> None:
    """A real child that stops on SIGTERM the way Faust's worker does (exit status 0)."""
    log = tmp_path / "worker-1.log"
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
            "print('up', flush=True)\n"
            "time.sleep(60)\n")
    proc = ManagedProcess("worker-1", [sys.executable, "-c", code], log)
    try:
        while "up" not in (log.read_text() if log.exists() else ""):
            assert proc.alive(), log.read_text()
            time.sleep(0.05)
        proc.signal(signal.SIGTERM)
        proc.proc.wait(10)
        w = SimpleNamespace(name="worker-1", log=log, alive=proc.alive,
                            exit_code=proc.exit_code, ready=lambda: False)
        notices = Supervisor([w], lambda _: None).check()
        assert notices[0].startswith("worker-1 stopped cleanly (exit status 0), not by dev")
    finally:
        proc.stop()
