"""Worker-like child processes for the benchmark: the stream-app worker (optionally under
pyinstrument), the Faust pass-through app, the Quix Streams peer."""

from __future__ import annotations

import sys
from pathlib import Path

from stream_app.services.stack import Stack
from stream_app.services.worker import WorkerProcess

REPO = Path(__file__).resolve().parent.parent


class ModuleWorker(WorkerProcess):
    """A Faust worker process of any module (``python -m <module> worker``), with the
    stack's environment; ``profile_to`` runs it under pyinstrument (text report)."""

    def __init__(self, stack: Stack, module: str, name: str, env: dict[str, str] | None = None,
                 profile_to: Path | None = None) -> None:
        super().__init__({**stack.settings_env(), **(env or {}),
                          "PYTHONPATH": str(REPO)}, stack.workdir, name=name)
        self.module = module
        self.profile_to = profile_to

    def start(self) -> ModuleWorker:
        from stream_app.services.process import ManagedProcess  # noqa: PLC0415

        (self.workdir / self.name).mkdir(parents=True, exist_ok=True)
        argv = [sys.executable]
        if self.profile_to is not None:
            argv += ["-m", "pyinstrument", "-r", "text", "--show-all", "-o",
                     str(self.profile_to), "-m", self.module]
        else:
            argv += ["-m", self.module]
        argv += ["worker", "-l", self.log_level, "--web-port", str(self.web_port)]
        self.process = ManagedProcess(self.name, argv,
                                      self.workdir / "logs" / f"{self.name}.log",
                                      env=self.env, cwd=REPO)
        return self

    def processed(self) -> int:
        return int(self.stats().get("processed", 0))
