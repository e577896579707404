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


def pin(pid: int, cpus: set[int]) -> int:
    """Restrict every thread of ``pid`` and of its children to ``cpus``; return the threads
    pinned (threads started later inherit the set of the thread that starts them).

    Example:
        >>> import os
        >>> pin(os.getpid(), os.sched_getaffinity(0)) >= 1
        True
    """
    import os  # noqa: PLC0415

    from bench.measure import tree_pids  # noqa: PLC0415

    n = 0
    for p in tree_pids(pid):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{p}/task")]
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
                n += 1
            except (ProcessLookupError, PermissionError):
                pass
    return n
