"""Serving unit tests run against a real redis-server (the projection writes bitmaps through
Lua scripts, which fakeredis cannot run without lupa), one per test session; each test gets
its own database number, flushed first."""

from __future__ import annotations

import itertools

import pytest
import redis.asyncio as aioredis

from stream_app.serving.segments import Catalog
from tests.unit.serving import fixtures

_DBS = itertools.cycle(range(1, 16))


@pytest.fixture(scope="module")
def ruleset():
    return fixtures.ruleset()


@pytest.fixture(scope="module")
def catalog(ruleset):
    return Catalog.from_ruleset(ruleset)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server for the session (``redis://127.0.0.1:<port>``, no db)."""
    from stream_app.services.redis_server import EmbeddedRedis

    srv = EmbeddedRedis(workdir=tmp_path_factory.mktemp("redis")).start()
    try:
        yield srv.url.rsplit("/", 1)[0]
    finally:
        srv.stop()


def fresh_client(redis_url: str) -> aioredis.Redis:
    """An async client on the next database, flushed (used on :data:`fixtures.LOOP`)."""
    client = aioredis.Redis.from_url(f"{redis_url}/{next(_DBS)}")
    fixtures.run(client.flushdb())
    return client


@pytest.fixture()
def fake(redis_url):
    """A fresh, empty Redis database (async client) per test (the name is historical)."""
    return fresh_client(redis_url)
