"""Start stream-app workers as child processes and wait until they are ready.

Example (needs a broker and Redis)::

    w = WorkerProcess(env={"STREAM_APP_BROKER_URL": broker.url, ...}, workdir=Path("var"))
    w.start(); w.wait_ready(120)
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import orjson

from stream_app.services.process import ManagedProcess, free_port, wait_for


def http_json(url: str, timeout: float = 2.0) -> dict:
    """GET ``url`` and decode its JSON body (raises on errors and non-2xx)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
        return orjson.loads(resp.read())


class WorkerProcess:
    """One ``stream-app worker`` process with its own web port and data directory."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str = "worker-1",
                 web_port: int | None = None, log_level: str = "warn") -> None:
        self.name = name
        self.web_port = web_port or free_port()
        self.workdir = Path(workdir)
        self.env = {
            **env,
            "STREAM_APP_WEB_PORT": str(self.web_port),
            "STREAM_APP_DATADIR": str((self.workdir / name).resolve()),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_level = log_level
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> WorkerProcess:
        (self.workdir / self.name).mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "stream_app", "worker", "-l", self.log_level,
                "--web-port", str(self.web_port)]
        self.process = ManagedProcess(self.name, argv, self.workdir / "logs" / f"{self.name}.log",
                                      env=self.env)
        return self

    def ready(self) -> bool:
        try:
            return bool(http_json(self.url + "/ready").get("ready"))
        except Exception:  # noqa: BLE001 - 503 or not listening yet
            return False

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Block until the worker has joined the group and recovered its tables."""
        assert self.process is not None, "start() first"
        wait_for(self.ready, timeout, f"worker {self.name}", interval=0.5,
                 proc=self.process.proc, log=self.process.log)

    def stats(self) -> dict:
        return http_json(self.url + "/healthz")

    def held_users(self) -> int | None:
        """Keys the worker's users table holds (its ``stream_app_table_users`` gauge, set
        every 10 s), or None when the worker does not answer.

        >>> w = object.__new__(WorkerProcess); w.web_port = 9   # nothing listens there
        >>> w.held_users() is None
        True
        """
        import urllib.request  # noqa: PLC0415

        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:  # noqa: S310
                text = r.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("stream_app_table_users{") and 'table="users"' in line:
                return int(float(line.rsplit(" ", 1)[1]))
        return None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process:
            self.process.stop(timeout)

    def kill(self) -> None:
        if self.process:
            self.process.kill()

    def alive(self) -> bool:
        return bool(self.process and self.process.alive())

    def exit_code(self) -> int | None:
        """The return code of the worker's process once it has ended (negative: the signal
        that killed it), None while it runs or before it was started."""
        return self.process.exit_code() if self.process else None

    @property
    def log(self) -> Path | None:
        """The worker's log file (``WORKDIR/logs/NAME.log``), None before it was started."""
        return self.process.log if self.process else None
