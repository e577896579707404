"""Numeric bucket edges (QA28 F15): the setting is checked at load, and edges stored in Redis
that the writer did not bucket as the planner assumes are refused with a clear error (a JSON
500 naming redis-rebuild), never re-sorted into wrong members."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from stream_app.config import Settings
from stream_app.errors import ConfigError
from stream_app.serving import segment_runner
from stream_app.serving.api import create_app
from stream_app.serving.segment_runner import SegmentRunner, StoredDataError
from tests.unit.serving import fixtures
from tests.unit.serving.conftest import fresh_client

run = fixtures.run
ADMIN = {"Authorization": "Bearer admin-secret"}
POINTS = [-3, 0, 0.5, 1, 3, 5, 7, 10, 15, 50, 200, 5000]


@pytest.mark.parametrize("value, problem", [
    ("10,5,1,0", "edges must be strictly ascending; 5 comes after 10"),
    ("0,5,5", "edges must be strictly ascending; 5 comes after 5"),
    ("0,abc,5", "'abc' is not a number"),
    ("0,1_000", "'1_000' is not a number"),
    ("0,nan", "'nan' is not a number"),
    ("0,inf", "'inf' is not a number"),
    ("0x10", "'0x10' is not a number"),
    ("", "expected comma-separated numbers"),
    (" , ", "expected comma-separated numbers"),
])
def test_the_setting_is_refused_at_load_naming_the_variable(value, problem, monkeypatch):
    with pytest.raises(ConfigError, match="STREAM_APP_REDIS_NUM_EDGES") as exc:
        Settings(redis_num_edges=value)
    assert problem in str(exc.value)
    monkeypatch.setenv("STREAM_APP_REDIS_NUM_EDGES", value)
    with pytest.raises(ConfigError, match="STREAM_APP_REDIS_NUM_EDGES"):
        Settings()


def test_good_settings_are_kept_tidy():
    assert Settings().redis_num_edges == "0,1,5,10,20,50,100,1000"
    assert Settings(redis_num_edges=" -1, 2.5 ,1e3,").redis_num_edges == "-1,2.5,1e3"


def _world(redis_url, stored_edges):
    """Users with lead_points written by the projection over edges already in Redis (as an
    unchecked setting left them)."""
    r = fresh_client(redis_url)
    if stored_edges is not None:
        run(r.set("sa:t:nbe:lead_points", stored_edges))
    users = {f"u{i:02d}": {"lead_points": v} for i, v in enumerate(POINTS)}
    fixtures.fill(r, "t", users)
    return r, users


@pytest.mark.parametrize("stored, problem", [
    ("10,5,1,0", "are not strictly ascending (5 after 10)"),
    ("0,abc,5", "hold 'abc', which is not a number"),
    ("0,5,5,10", "are not strictly ascending (5 after 5)"),
])
def test_stored_edges_the_planner_cannot_use_are_refused_not_re_sorted(
        redis_url, catalog, ruleset, stored, problem):
    r, _ = _world(redis_url, stored)
    runner = SegmentRunner(r, catalog)
    with pytest.raises(StoredDataError) as exc:
        run(runner.size("t", "lead_points >= 5"))
    msg = str(exc.value)
    assert problem in msg and "sa:t:nbe:lead_points" in msg and "redis-rebuild" in msg
    url = f"{redis_url}/{r.get_connection_kwargs()['db']}"
    app = create_app(Settings(api_token="admin-secret"), redis=aioredis.Redis.from_url(url),
                     ruleset=ruleset)
    with TestClient(app) as client:
        for route in ("size", "members", "explain", "export"):
            a = client.get(f"/v1/tenants/t/segments/{route}",
                           params={"expr": "lead_points < 1"}, headers=ADMIN)
            assert a.status_code == 500, (route, a.text)
            assert a.headers["content-type"] == "application/json"
            assert set(a.json()) == {"detail"} and problem in a.json()["detail"]
            assert "redis-rebuild" in a.json()["detail"]


def test_ascending_stored_edges_answer_exactly(redis_url, catalog):
    r, users = _world(redis_url, "0,1,5,10")
    runner = SegmentRunner(r, catalog)
    for expr, want in (("lead_points >= 5", 7), ("lead_points < 1", 3),
                       ("lead_points <= 10", 8), ("lead_points > 0.5", 9)):
        assert run(runner.size("t", expr)) == want, expr


def test_any_other_fault_in_a_segment_route_is_a_json_error_body(redis_url, ruleset,
                                                                   monkeypatch):
    r, _ = _world(redis_url, None)
    url = f"{redis_url}/{r.get_connection_kwargs()['db']}"
    app = create_app(Settings(api_token="admin-secret"), redis=aioredis.Redis.from_url(url),
                     ruleset=ruleset)

    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(segment_runner.SegmentRunner, "compile", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        for route in ("size", "members", "explain", "export"):
            a = client.get(f"/v1/tenants/t/segments/{route}",
                           params={"expr": "tag:lead_points"}, headers=ADMIN)
            assert a.status_code == 500 and a.headers["content-type"] == "application/json"
            assert a.json() == {"detail": "internal error (RuntimeError); the API's log has "
                                          "the details"}
