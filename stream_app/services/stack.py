"""The whole embedded stack: broker, Redis, topics and N workers, started and stopped together.

Used by ``stream-app dev``, the integration-test fixtures, the fault tests and the benchmarks.

Example (starts processes)::

    with Stack(workdir=Path("var/dev"), workers=1) as stack:
        stack.settings_env()        # STREAM_APP_* variables for clients
"""

from __future__ import annotations

import shutil
from pathlib import Path

from stream_app.config import Settings
from stream_app.services.broker import EmbeddedBroker
from stream_app.services.redis_server import EmbeddedRedis
from stream_app.services.topics_admin import create_topics
from stream_app.services.worker import WorkerProcess


class Stack:
    """Broker + Redis + topics + workers on free loopback ports."""

    def __init__(self, workdir: Path, workers: int = 1, partitions: int = 4,
                 env: dict[str, str] | None = None, broker_port: int | None = None,
                 redis_port: int | None = None, clean: bool = True) -> None:
        self.workdir = Path(workdir)
        if clean and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.partitions = partitions
        self.n_workers = workers
        self.extra_env = dict(env or {})
        self.broker = EmbeddedBroker(port=broker_port, workdir=self.workdir)
        self.redis = EmbeddedRedis(port=redis_port, workdir=self.workdir)
        self.workers: list[WorkerProcess] = []

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
        self.broker.start()
        self.redis.start()
        create_topics(self.bootstrap, self.partitions)
        return self

    def add_worker(self, wait: bool = True, timeout: float = 180.0) -> WorkerProcess:
        w = WorkerProcess(self.settings_env(), self.workdir, name=f"worker-{len(self.workers) + 1}")
        self.workers.append(w.start())
        if wait:
            w.wait_ready(timeout)
        return w

    def start(self, wait: bool = True) -> Stack:
        self.start_services()
        for _ in range(self.n_workers):
            self.add_worker(wait=False)
        if wait:
            for w in self.workers:
                w.wait_ready()
        return self

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        self.redis.stop()
        self.broker.stop()

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
