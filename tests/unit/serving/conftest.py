from __future__ import annotations

import fakeredis
import pytest

from stream_app.serving.segments import Catalog
from tests.unit.serving import fixtures


@pytest.fixture(scope="module")
def ruleset():
    return fixtures.ruleset()


@pytest.fixture(scope="module")
def catalog(ruleset):
    return Catalog.from_ruleset(ruleset)


@pytest.fixture()
def fake():
    """A fresh fakeredis (async client) per test."""
    return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
