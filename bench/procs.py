"""Faust worker processes of the benchmark: the stream-app worker and the pass-through app."""

from __future__ import annotations

import sys
from pathlib import Path

from stream_app.services.stack import Stack
from stream_app.services.worker import WorkerProcess

REPO = Path(__file__).resolve().parent.parent


class ModuleWorker(WorkerProcess):
    """A Faust worker process of any module (``python -m <module> worker``), with the
    stack's environment."""

    def __init__(self, stack: Stack, module: str, name: str,
                 env: dict[str, str] | None = None, log_level: str = "warn") -> None:
        super().__init__({**stack.settings_env(), **(env or {}),
                          "PYTHONPATH": str(REPO)}, stack.workdir, name=name,
                         log_level=log_level)
        self.module = module

    def start(self) -> ModuleWorker:
        from stream_app.services.process import ManagedProcess  # noqa: PLC0415

        (self.workdir / self.name).mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", self.module, "worker", "-l", self.log_level,
                "--web-port", str(self.web_port)]
        self.process = ManagedProcess(self.name, argv,
                                      self.workdir / "logs" / f"{self.name}.log",
                                      env=self.env, cwd=REPO)
        return self

    @property
    def log_path(self) -> Path:
        return self.workdir / "logs" / f"{self.name}.log"

    def processed(self) -> int:
        return int(self.stats().get("processed", 0))
