"""A child process with readiness polling and clean shutdown.

Example:
    >>> port = free_port()
    >>> 1024 < port < 65536
    True
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from stream_app.errors import ServiceError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1,
             proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Poll ``check`` until it returns True; raise ServiceError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with code {proc.returncode}{_tail(log)}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        time.sleep(interval)
    raise ServiceError(f"{what} not ready after {timeout:.0f}s{_tail(log)}")


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n--- last lines of " + str(log) + " ---\n" + "\n".join(text)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class ManagedProcess:
    """A started child process (own process group) whose output goes to a log file."""

    def __init__(self, name: str, argv: Sequence[str], log: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(log, "ab")  # noqa: SIM115 - closed in stop()
        try:
            self.proc = subprocess.Popen(
                self.argv, stdout=self._fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
        except OSError as exc:
            self._fh.close()
            raise ServiceError(f"cannot start {name} ({self.argv[0]}): {exc}") from exc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_code(self) -> int | None:
        """The process's return code once it has ended (negative: killed by that signal),
        None while it runs."""
        return self.proc.poll()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (SIGSTOP/SIGCONT/SIGKILL in fault tests)."""
        if self.alive():
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        self._fh.close()

    def kill(self) -> None:
        """SIGKILL at once (crash simulation)."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


class EmbeddedService:
    """Base of the embedded services: a port, a work directory, a process; a context manager.

    Subclasses implement ``start()`` (start ``self.process`` and wait until it answers).
    """

    default_timeout = 30.0

    def __init__(self, port: int | None = None, workdir: Path = Path("var"),
                 startup_timeout: float | None = None) -> None:
        self.port = port or free_port()
        self.workdir = Path(workdir)
        self.startup_timeout = startup_timeout or self.default_timeout
        self.process: ManagedProcess | None = None

    def start(self) -> EmbeddedService:  # pragma: no cover - abstract
        raise NotImplementedError

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def __enter__(self) -> EmbeddedService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
