"""One running stack per work directory: a second ``stream-app dev`` (``make run``) on the
directory of one that runs (the default ``var/dev``) is refused before it deletes anything,
naming the running stack and ``--workdir``; a directory left by a killed run is taken over
with a notice (QA M5: ``Stack(clean=True)`` deleted the running stack's worker store and
logs). No broker: the stacks are built, never started."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stream_app.cli import main
from stream_app.errors import WorkdirBusyError
from stream_app.services.stack import Stack
from stream_app.services.workdir_lock import LOCK_NAME

#: a process that builds a stack on argv[1] (as ``dev`` does before starting it), records
#: argv[2] as the pid of its "broker" when given, writes a worker store, and waits
HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from stream_app.services.stack import Stack
    s = Stack(workdir=Path(sys.argv[1]), workers=0)
    if len(sys.argv) > 2:
        s.lock.note_services([("broker", int(sys.argv[2]))])
    (s.workdir / "worker-1").mkdir()
    (s.workdir / "worker-1" / "store").write_text("the running stack's table store")
    print("ready", flush=True)
    sys.stdin.read()
""")


@pytest.fixture()
def holder(tmp_path: Path):
    """Start a process holding ``tmp_path / 'dev'`` like a running ``stream-app dev``."""
    started: list[subprocess.Popen] = []

    def start(*extra: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "dev"), *extra],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_a_second_stack_on_a_running_stacks_workdir_deletes_nothing(tmp_path, holder) -> None:
    running = holder()
    workdir = tmp_path / "dev"
    with pytest.raises(WorkdirBusyError) as err:
        Stack(workdir=workdir, workers=0)
    assert f"{workdir} is in use by a running stack (pid {running.pid}" in str(err.value)
    assert f"`kill {running.pid}`" in str(err.value)
    assert err.value.owner["pid"] == running.pid
    assert (workdir / "worker-1" / "store").read_text() == "the running stack's table store"


def test_dev_refuses_a_running_stacks_workdir_and_names_workdir(tmp_path, holder, monkeypatch,
                                                                  capsys) -> None:
    running = holder()
    monkeypatch.setattr(Stack, "start_services",
                        lambda self: pytest.fail("dev started services"))
    with pytest.raises(SystemExit) as stop:
        main(["dev", "--workdir", str(tmp_path / "dev"), "--duration", "1"])
    err = capsys.readouterr().err
    assert stop.value.code == 1
    assert err.startswith("Error: ")
    assert f"in use by a running stack (pid {running.pid}" in err
    assert "stream-app dev --workdir var/dev-2" in err
    assert "Traceback" not in err
    assert (tmp_path / "dev" / "worker-1" / "store").exists()


def test_a_stack_in_the_same_process_is_refused_until_the_first_stops(tmp_path) -> None:
    first = Stack(workdir=tmp_path, workers=0)
    with pytest.raises(WorkdirBusyError):
        Stack(workdir=tmp_path, workers=0)
    first.stop()
    first.stop()   # twice: still fine
    second = Stack(workdir=tmp_path, workers=0)
    assert second.took_over is None and second.takeover_notice() is None   # a clean stop
    second.stop()


def test_a_killed_runs_workdir_is_taken_over_with_a_notice(tmp_path, holder, capsys,
                                                           monkeypatch) -> None:
    # the killed run's "broker" outlives it, as its services do after a kill -9
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gone = holder(str(orphan.pid))
        gone.send_signal(signal.SIGKILL)
        gone.wait(10)
        workdir = tmp_path / "dev"
        told: list[str] = []
        stack = Stack(workdir=workdir, workers=0, on_takeover=told.append)
        try:
            assert stack.took_over["pid"] == gone.pid
            notice = stack.takeover_notice()
            assert told == [notice]
            assert f"was left by a run that is gone (pid {gone.pid}" in notice
            assert f"broker (pid {orphan.pid}) still run" in notice
            assert f"kill -- -{orphan.pid}" in notice
            assert not (workdir / "worker-1").exists()          # cleaned as before
            assert (workdir / LOCK_NAME).exists()
        finally:
            stack.stop()
        # dev says so before it starts (its services are not started here)
        gone = holder()
        gone.send_signal(signal.SIGKILL)
        gone.wait(10)

        def interrupted(self: Stack) -> Stack:
            raise KeyboardInterrupt

        monkeypatch.setattr(Stack, "start_services", interrupted)
        main(["dev", "--workdir", str(workdir), "--duration", "1"])
        captured = capsys.readouterr()
        out = " ".join(captured.out.split())
        assert f"note: {workdir} was left by a run that is gone (pid {gone.pid}" in out
        assert " ".join((captured.out + captured.err).split()).count("was left by a run") == 1
    finally:
        orphan.kill()
        orphan.wait(10)
