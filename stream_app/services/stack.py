"""The whole embedded stack: broker, Redis, topics and N workers, started and stopped together.

Used by ``stream-app dev``, the integration-test fixtures, the fault tests and the benchmarks.

One stack per work directory: the stack takes the directory's lock
(:mod:`~stream_app.services.workdir_lock`) before it cleans it, so a second stack on the
directory of one that still runs raises :class:`~stream_app.errors.WorkdirBusyError` and
deletes nothing; :meth:`Stack.stop` gives the directory up. A directory left by a run that is
gone is taken over: :attr:`Stack.took_over` holds that run's record, and ``on_takeover``
(default: a logged warning) gets :meth:`Stack.takeover_notice`.

Example (starts processes)::

    with Stack(workdir=Path("var/dev"), workers=1) as stack:
        stack.settings_env()        # STREAM_APP_* variables for clients
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from stream_app.config import Settings
from stream_app.services.broker import EmbeddedBroker
from stream_app.services.redis_server import EmbeddedRedis
from stream_app.services.topics_admin import create_topics
from stream_app.services.workdir_lock import LOCK_NAME, WorkdirLock, describe
from stream_app.services.worker import WorkerProcess

log = logging.getLogger(__name__)


def clean_workdir(workdir: Path) -> None:
    """Delete what is in ``workdir`` but its lock file."""
    for entry in workdir.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


class Stack:
    """Broker + Redis + topics + workers on free loopback ports.

    Raises :class:`~stream_app.errors.WorkdirBusyError` (before anything is deleted or
    started) when a stack that still runs holds ``workdir``."""

    def __init__(self, workdir: Path, workers: int = 1, partitions: int = 4,
                 env: dict[str, str] | None = None, broker_port: int | None = None,
                 redis_port: int | None = None, clean: bool = True,
                 on_takeover: Callable[[str], None] | None = None) -> None:
        self.workdir = Path(workdir)
        self.lock = WorkdirLock(self.workdir).acquire()   # WorkdirBusyError: nothing touched
        #: the record of a run that held ``workdir`` and is gone (killed), or None
        self.took_over = self.lock.previous
        notice = self.takeover_notice()
        if notice:
            (on_takeover or log.warning)(notice)
        if clean:
            clean_workdir(self.workdir)
        self.partitions = partitions
        self.n_workers = workers
        self.extra_env = dict(env or {})
        self.broker = EmbeddedBroker(port=broker_port, workdir=self.workdir)
        self.redis = EmbeddedRedis(port=redis_port, workdir=self.workdir)
        self.workers: list[WorkerProcess] = []

    def takeover_notice(self) -> str | None:
        """What to tell the user when the directory was taken over from a run that is gone
        (None when it was not): that run, and its services that still run."""
        prev = self.took_over
        if not prev:
            return None
        text = (f"{self.workdir} was left by a run that is gone ({describe(prev)}): "
                "taking it over")
        left = self.lock.leftovers
        if left:
            names = ", ".join(f"{s.get('name', '?')} (pid {s['pid']})" for s in left)
            groups = " ".join(f"-{s['pid']}" for s in left)   # each runs in its own group
            text += f"; its {names} still run: stop them with `kill -- {groups}`"
        return text

    def _note_services(self) -> None:
        procs = [(name, svc.process.pid) for name, svc in (("broker", self.broker),
                                                            ("redis", self.redis))
                 if svc.process is not None]
        procs += [(w.name, w.process.pid) for w in self.workers if w.process is not None]
        self.lock.note_services(procs)

    def settings_env(self) -> dict[str, str]:
        """Environment that points stream-app clients and workers at this stack."""
        return {
            "STREAM_APP_BROKER_URL": self.broker.url,
            "STREAM_APP_REDIS_URL": self.redis.url,
            "STREAM_APP_PARTITIONS": str(self.partitions),
            # Faust reads these from the environment: short group timeouts make a
            # consumer-group join on tansu take ~8 s instead of ~30 s
            "BROKER_SESSION_TIMEOUT": "6",
            "BROKER_HEARTBEAT_INTERVAL": "1",
            "BROKER_REBALANCE_TIMEOUT": "10",
            **self.extra_env,
        }

    def settings(self) -> Settings:
        return Settings(broker_url=self.broker.url, redis_url=self.redis.url,
                        partitions=self.partitions)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def start_services(self) -> Stack:
        try:
            self.broker.start()
            self.redis.start()
        finally:
            self._note_services()
        create_topics(self.bootstrap, self.partitions)
        return self

    def add_worker(self, wait: bool = True, timeout: float = 180.0) -> WorkerProcess:
        w = WorkerProcess(self.settings_env(), self.workdir, name=f"worker-{len(self.workers) + 1}")
        self.workers.append(w.start())
        self._note_services()
        if wait:
            w.wait_ready(timeout)
        return w

    def restart_worker(self, worker: WorkerProcess) -> WorkerProcess:
        """Start ``worker`` again (same name, web port and data directory) after its process
        exited; its log file is appended to. It does not wait until the worker is ready.

        Example (starts processes)::

            if not stack.workers[0].alive():
                stack.restart_worker(stack.workers[0])
        """
        if worker.process is not None:
            worker.process.stop()     # gone already: closes its log file
        worker.start()
        self._note_services()
        return worker

    def start(self, wait: bool = True) -> Stack:
        self.start_services()
        for _ in range(self.n_workers):
            self.add_worker(wait=False)
        if wait:
            for w in self.workers:
                w.wait_ready()
        return self

    def stop(self) -> None:
        """Stop the workers and services, then give the work directory up."""
        try:
            for w in self.workers:
                w.stop()
            self.redis.stop()
            self.broker.stop()
        finally:
            self.lock.release()

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
