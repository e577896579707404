"""The API over a real Redis: authentication, tenants, errors, export paging."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from stream_app.config import Settings
from stream_app.errors import ConfigError
from stream_app.serving import keys
from stream_app.serving.api import create_app
from stream_app.serving.auth import TokenAuth, load_tenant_tokens
from stream_app.serving.projection import change_ops
from stream_app.serving.segments import parse
from tests.unit.serving import fixtures
from tests.unit.serving.conftest import fresh_client

ADMIN = {"Authorization": "Bearer admin-secret"}
A_TOKEN = {"Authorization": "Bearer token-a"}


@pytest.fixture(scope="module")
def world(ruleset, redis_url):
    fake = fresh_client(redis_url)
    users_a = fixtures.random_users(seed=1, n=80, prefix="a")
    users_b = fixtures.random_users(seed=2, n=50, prefix="b")
    fixtures.fill(fake, "tenant-a", users_a)
    fixtures.fill(fake, "tenant-b", users_b)
    fake = aioredis.Redis.from_url(fake.get_connection_kwargs() and  # same db, fresh pool
                                   f"{redis_url}/{fake.get_connection_kwargs()['db']}")
    app = create_app(Settings(api_token="admin-secret"), redis=fake, ruleset=ruleset,
                     tenant_tokens={"tenant-a": ["token-a"]})
    with TestClient(app) as client:
        yield client, users_a, users_b


def test_routes_need_a_known_bearer_token(world):
    client = world[0]
    for path in ("/v1/tags", "/v1/tenants/tenant-a/users/a0001",
                 "/v1/tenants/tenant-a/segments/size?expr=tag:activity"):
        assert client.get(path).status_code == 401
        r = client.get(path, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert client.get(path, headers=ADMIN).status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.head("/healthz").status_code == 200   # load balancers probe with HEAD


def test_a_tenant_token_reads_only_its_tenant(world):
    client = world[0]
    assert client.get("/v1/tenants/tenant-a/segments/size?expr=tag:activity",
                      headers=A_TOKEN).status_code == 200
    assert client.get("/v1/tenants/tenant-b/segments/size?expr=tag:activity",
                      headers=A_TOKEN).status_code == 403
    assert client.get("/v1/tenants/bad:name/segments/size?expr=tag:activity",
                      headers=ADMIN).status_code == 422


def test_segment_size_and_members_per_tenant(world):
    client, users_a, users_b = world
    expr = "activity IN (high, low) AND NOT tag:refunded"
    for tenant, users in (("tenant-a", users_a), ("tenant-b", users_b)):
        want = fixtures.reference(users, parse(expr))
        size = client.get(f"/v1/tenants/{tenant}/segments/size", params={"expr": expr},
                          headers=ADMIN).json()["size"]
        body = client.get(f"/v1/tenants/{tenant}/segments/members",
                          params={"expr": expr, "limit": 1000}, headers=ADMIN).json()
        assert size == body["total"] == len(want) > 0
        assert sorted(body["members"]) == sorted(want) and body["next_cursor"] is None


def test_bad_expressions_are_400_with_the_reason(world):
    client = world[0]
    r = client.get("/v1/tenants/tenant-a/segments/size", params={"expr": "activity = hgh"},
                   headers=ADMIN)
    assert r.status_code == 400 and "no value 'hgh'" in r.json()["detail"]
    r = client.get("/v1/tenants/tenant-a/segments/members",
                   params={"expr": "tag:activity", "cursor": "zzz"}, headers=ADMIN)
    assert r.status_code == 400


def test_export_csv_pages_with_cursor(world):
    client, users_a, _ = world
    expr = "tag:activity"
    want = fixtures.reference(users_a, parse(expr))
    rows, cursor, pages = [], None, 0
    while True:
        params = {"expr": expr, "format": "csv", "limit": 25,
                  "fields": "family.activity, lead.lead_points"}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/v1/tenants/tenant-a/segments/export", params=params, headers=ADMIN)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        page = list(csv.DictReader(io.StringIO(r.text)))
        rows += page
        pages += 1
        cursor = r.headers.get("x-next-cursor")
        if not cursor:
            break
    ids = [row["user_id"] for row in rows]
    assert sorted(ids) == sorted(want) and len(ids) == len(want)
    assert pages == -(-len(want) // 25)
    for row in rows:
        assert row["activity"] == users_a[row["user_id"]]["activity"]
        lp = users_a[row["user_id"]].get("lead_points")
        assert row["lead_points"] == ("" if lp is None else str(lp))


def test_export_jsonl_all_pages_streamed(world):
    client, users_a, _ = world
    r = client.get("/v1/tenants/tenant-a/segments/export",
                   params={"expr": "lead_points >= 5", "format": "jsonl", "limit": 7,
                           "all": "true", "fields": "lead_points"}, headers=ADMIN)
    lines = [orjson.loads(x) for x in r.text.splitlines()]
    want = {u for u, t in users_a.items() if t.get("lead_points", -1) >= 5}
    assert {x["user_id"] for x in lines} == want and len(lines) == len(want)
    assert all(x["tags"]["lead_points"] >= 5 for x in lines)


def app_on(ruleset: Any, redis_url: str, users: dict[str, dict[str, Any]],
           tenant: str = "t") -> Any:
    """An app over a fresh database holding ``users`` (written by the projection)."""
    r = fresh_client(redis_url)
    fixtures.fill(r, tenant, users)
    url = f"{redis_url}/{r.get_connection_kwargs()['db']}"  # the app's client: its own loop
    return create_app(Settings(api_token="admin-secret"), redis=aioredis.Redis.from_url(url),
                      ruleset=ruleset)


def test_csv_export_neutralises_formulas_in_text_cells(ruleset, redis_url):
    """QA F1: text a spreadsheet would run (``=``, ``+``, ``-``, ``@``, tab, CR) gets a
    leading ``'``; numbers stay numbers; JSON Lines keep the exact values."""
    channels = {"x1": '=HYPERLINK("http://evil","x")', "x2": '+1,2\n"3"', "x3": "-2+3",
                "x4": "@SUM(A1)", "x5": "\tcmd", "x6": "\rcmd", "x7": "'=quoted",
                "x8": "抖音😀", "x9": "a=b"}
    users = {uid: {"first_channel": ch, "lead_points": -5 if uid == "x3" else 2}
             for uid, ch in channels.items()}
    users["=cmd|' /C calc'!A0"] = {"first_channel": "douyin", "lead_points": -1.5}
    with TestClient(app_on(ruleset, redis_url, users)) as client:
        params = {"expr": "tag:first_channel", "fields": "first_channel,lead_points"}
        r = client.get("/v1/tenants/t/segments/export", params=params, headers=ADMIN)
        rows = {row["user_id"]: row for row in csv.DictReader(io.StringIO(r.text, newline=""))}
        assert len(rows) == len(users)
        for uid, ch in channels.items():
            want = "'" + ch if ch[0] in "=+-@\t\r'" else ch
            assert rows[uid]["first_channel"] == want, uid
        assert rows["x3"]["lead_points"] == "-5" and rows["x1"]["lead_points"] == "2"
        assert rows["'=cmd|' /C calc'!A0"]["lead_points"] == "-1.5"
        assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r"))
                       for row in rows.values() for k, v in row.items() if k != "lead_points")
        r = client.get("/v1/tenants/t/segments/export", params={**params, "format": "jsonl"},
                       headers=ADMIN)
        exact = {x["user_id"]: x["tags"] for x in map(orjson.loads, r.text.splitlines())}
        assert exact["x1"]["first_channel"] == channels["x1"] and exact["x3"]["lead_points"] == -5


def test_users_deleted_between_pages_are_counted_as_skipped(ruleset, redis_url):
    """QA F7: a user forgotten after the first page is left out of later pages; the page
    says how many were left out, so members + skipped add up to ``total`` (and an export
    page has ``X-Skipped-Count``)."""
    from stream_app.serving.projection import forget_ops

    users = {f"s{i:02d}": {"activity": "high"} for i in range(10)}
    r = fresh_client(redis_url)
    fixtures.fill(r, "t", users)
    url = f"{redis_url}/{r.get_connection_kwargs()['db']}"
    app = create_app(Settings(api_token="admin-secret"), redis=aioredis.Redis.from_url(url),
                     ruleset=ruleset)
    seg, q = "/v1/tenants/t/segments/", {"expr": "activity = high", "limit": 3}
    with TestClient(app) as client:
        first = client.get(seg + "members", params=q, headers=ADMIN).json()
        assert first["total"] == 10 and first["skipped"] == 0
        exp = client.get(seg + "export", params=q, headers=ADMIN)
        assert exp.headers["x-skipped-count"] == "0"
        for uid in ("s04", "s05", "s09"):        # on the second, second and last page
            fixtures.fill_ops(r, forget_ops("t", uid, users[uid]))
        seen, skipped, cur = list(first["members"]), 0, first["next_cursor"]
        while cur:
            page = client.get(seg + "members", params={**q, "cursor": cur},
                              headers=ADMIN).json()
            assert page["total"] == 10
            seen += page["members"]
            skipped += page["skipped"]
            cur = page["next_cursor"]
        assert len(seen) == 7 and skipped == 3 and len(seen) + skipped == first["total"]
        assert not {"s04", "s05", "s09"} & set(seen)
        rows, skipped, cur = 0, 0, exp.headers["x-next-cursor"]
        rows += len(exp.text.splitlines()) - 1
        while cur:
            e = client.get(seg + "export", params={**q, "cursor": cur}, headers=ADMIN)
            rows += len(e.text.splitlines()) - 1
            skipped += int(e.headers["x-skipped-count"])
            cur = e.headers.get("x-next-cursor")
        assert rows == 7 and skipped == 3 and exp.headers["x-total-count"] == "10"


def test_profile_why_and_timeline(world):
    client, users_a, _ = world
    def n_changes(tags: dict) -> int:  # enums go through another value first
        return len(tags) + sum(k in fixtures.ENUMS for k in tags)

    # a user whose whole history fits in the timeline Redis keeps (keys.TIMELINE_MAX)
    uid = next(u for u, t in users_a.items()
               if "activity" in t and n_changes(t) <= keys.TIMELINE_MAX)
    p = client.get(f"/v1/tenants/tenant-a/users/{uid}", headers=ADMIN).json()
    assert p["tags"] == users_a[uid]
    assert p["labels"]["activity"]["en"] == users_a[uid]["activity"].capitalize()
    w = client.get(f"/v1/tenants/tenant-a/users/{uid}/why/activity", headers=ADMIN).json()
    assert w["value"] == users_a[uid]["activity"]
    assert w["why"] == {"rule": "activity", "rule_version": 1, "values": {"x": 1}}
    assert [c["new"] for c in w["timeline"]][0] == users_a[uid]["activity"]
    assert len(w["timeline"]) == 2  # the enum went through another value first
    t = client.get(f"/v1/tenants/tenant-a/users/{uid}/timeline?limit=3", headers=ADMIN).json()
    assert len(t["changes"]) == min(3, len(users_a[uid]) + 2)
    assert client.get(f"/v1/tenants/tenant-b/users/{uid}", headers=ADMIN).status_code == 404
    assert client.get(f"/v1/tenants/tenant-a/users/{uid}/why/nope",
                      headers=ADMIN).status_code == 404
    # a longer history: the activity changes left the timeline, the why record stays
    old_uid = next(u for u, t in users_a.items()
                   if "activity" in t and n_changes(t) > keys.TIMELINE_MAX + 1)
    w = client.get(f"/v1/tenants/tenant-a/users/{old_uid}/why/activity", headers=ADMIN).json()
    assert w["value"] == users_a[old_uid]["activity"] and w["why"]["values"] == {"x": 1}
    t = client.get(f"/v1/tenants/tenant-a/users/{old_uid}/timeline", headers=ADMIN).json()
    assert len(t["changes"]) == keys.TIMELINE_MAX and t["note"] is None
    every = client.get(f"/v1/tenants/tenant-a/users/{old_uid}/why", headers=ADMIN).json()
    assert set(every["why"]) == set(users_a[old_uid])


def test_why_404_tells_an_unknown_user_from_a_tag_not_held(world):
    """QA30 F6: one 404 detail ("no why record or history of 'intent' for 'nobody'") served
    an unknown user and a known user without the tag."""
    client, users_a, _ = world
    uid = next(u for u, t in users_a.items() if "activity" in t)
    r = client.get(f"/v1/tenants/tenant-a/users/{uid}/why/nope", headers=ADMIN)
    assert r.status_code == 404
    assert r.json()["detail"] == f"user {uid!r} has no why record or history of 'nope'"
    for tenant, user in (("tenant-b", uid), ("tenant-a", "nobody")):   # not in that tenant
        r = client.get(f"/v1/tenants/{tenant}/users/{user}/why/activity", headers=ADMIN)
        assert r.status_code == 404 and r.json()["detail"] == f"no profile for user {user!r}"
        p = client.get(f"/v1/tenants/{tenant}/users/{user}", headers=ADMIN)
        assert p.status_code == 404 and p.json()["detail"] == r.json()["detail"]


def test_without_a_timeline_the_api_says_how_to_enable_it(ruleset, redis_url):
    r = fresh_client(redis_url)
    ch = {"user_id": "u1", "tenant": "t", "tag_id": "activity", "old": None, "new": "high",
          "seq": 1}
    why = {"rule": "activity", "rule_version": 3, "case": "count(x) > 2",
           "values": {"count(x)": 3}, "value": "high", "trigger": "e1"}
    fixtures.fill_ops(r, change_ops(ch, why, timeline=0))
    url = f"{redis_url}/{r.get_connection_kwargs()['db']}"  # the app's client: its own loop
    app = create_app(Settings(api_token="admin-secret", redis_timeline=0),
                     redis=aioredis.Redis.from_url(url), ruleset=ruleset)
    with TestClient(app) as client:
        t = client.get("/v1/tenants/t/users/u1/timeline", headers=ADMIN).json()
        assert t["changes"] == [] and "STREAM_APP_REDIS_TIMELINE" in t["note"]
        w = client.get("/v1/tenants/t/users/u1/why/activity", headers=ADMIN).json()
        assert w["value"] == "high" and w["timeline"] == []
        assert w["why"] == {"rule": "activity", "rule_version": 3, "case": "count(x) > 2",
                            "values": {"count(x)": 3}}
        assert client.get("/v1/tenants/t/users/u2/timeline", headers=ADMIN).status_code == 404
    # the note follows what Redis holds, not the API's own setting: a user with a timeline
    # gets no note, also when a tag filter leaves nothing of it
    fixtures.fill_ops(r, change_ops({**ch, "user_id": "u3", "tag_id": "lifecycle", "new": "new"},
                                    None, timeline=5))
    app = create_app(Settings(api_token="admin-secret", redis_timeline=0),
                     redis=aioredis.Redis.from_url(url), ruleset=ruleset)
    with TestClient(app) as client:
        t = client.get("/v1/tenants/t/users/u3/timeline?tag=activity", headers=ADMIN).json()
        assert t["changes"] == [] and t["note"] is None
        t = client.get("/v1/tenants/t/users/u3/timeline", headers=ADMIN).json()
        assert [c["new"] for c in t["changes"]] == ["new"] and t["note"] is None
        assert "STREAM_APP_REDIS_TIMELINE" in client.get(
            "/v1/tenants/t/users/u1/timeline", headers=ADMIN).json()["note"]


def test_without_why_records_the_api_answers_with_the_value(ruleset, redis_url):
    """``STREAM_APP_REDIS_WHY=off`` keeps no why records: the why routes give the held
    values with a null record, and 404 only for a tag the user does not hold."""
    r = fresh_client(redis_url)
    ch = {"user_id": "u1", "tenant": "t", "tag_id": "activity", "old": None, "new": "high",
          "seq": 1}
    fixtures.fill_ops(r, change_ops(ch, None, timeline=0))
    url = f"{redis_url}/{r.get_connection_kwargs()['db']}"
    app = create_app(Settings(api_token="admin-secret"), redis=aioredis.Redis.from_url(url),
                     ruleset=ruleset)
    with TestClient(app) as client:
        w = client.get("/v1/tenants/t/users/u1/why/activity", headers=ADMIN)
        assert w.status_code == 200 and w.json()["value"] == "high" and w.json()["why"] is None
        every = client.get("/v1/tenants/t/users/u1/why", headers=ADMIN)
        assert every.status_code == 200 and every.json()["why"] == {"activity": None}
        assert client.get("/v1/tenants/t/users/u1/why/intent",
                          headers=ADMIN).status_code == 404
        assert client.get("/v1/tenants/t/users/nobody/why", headers=ADMIN).status_code == 404


def test_user_ids_with_a_slash_are_read_through_percent_encoding(ruleset, redis_url):
    """The contract allows '/' in a user id; a client writes it %2F, and an id that ends
    like a sub-route (``tl/timeline``) is still that user's profile."""
    r = fresh_client(redis_url)
    users = {"org/42": {"activity": "high"}, "tl/timeline": {"activity": "low"},
             "tl": {"activity": "churned"}}
    fixtures.fill(r, "t", users)
    url = f"{redis_url}/{r.get_connection_kwargs()['db']}"
    app = create_app(Settings(api_token="admin-secret"), redis=aioredis.Redis.from_url(url),
                     ruleset=ruleset)
    with TestClient(app) as client:
        for uid, tags in users.items():
            enc = uid.replace("/", "%2F")
            p = client.get(f"/v1/tenants/t/users/{enc}", headers=ADMIN)
            assert p.status_code == 200, (uid, p.text)
            assert p.json()["user_id"] == uid and p.json()["tags"] == tags
            w = client.get(f"/v1/tenants/t/users/{enc}/why/activity", headers=ADMIN).json()
            assert w["user_id"] == uid and w["value"] == tags["activity"]
            assert set(client.get(f"/v1/tenants/t/users/{enc}/why",
                                  headers=ADMIN).json()["why"]) == {"activity"}
        t = client.get("/v1/tenants/t/users/org%2f42/timeline", headers=ADMIN).json()
        assert t["user_id"] == "org/42" and t["changes"][0]["new"] == "high"
        assert client.get("/v1/tenants/t/users/org/42", headers=ADMIN).status_code == 404
        members = client.get("/v1/tenants/t/segments/members", params={"expr": "tag:activity"},
                             headers=ADMIN).json()["members"]
        assert sorted(members) == sorted(users)


def test_deep_expressions_and_forged_cursors_are_400(world):
    client, users_a, _ = world
    seg = "/v1/tenants/tenant-a/segments/"
    r = client.get(seg + "size", params={"expr": "NOT " * 500 + "tag:refunded"},
                   headers=ADMIN)
    assert r.status_code == 400 and "nested more than" in r.json()["detail"]
    expr = "tag:activity"
    first = client.get(seg + "members", params={"expr": expr, "limit": 5},
                       headers=ADMIN).json()
    cursor = first["next_cursor"]
    raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))

    def forged(bit: int) -> str:
        return base64.urlsafe_b64encode(json.dumps({**raw, "c": bit}).encode()).decode().rstrip("=")

    for bit in (2**66, 2**40, 10**30):   # out of range, past the snapshot's end
        r = client.get(seg + "members", params={"expr": expr, "limit": 5,
                                                "cursor": forged(bit)}, headers=ADMIN)
        assert r.status_code == 400 and "malformed cursor" in r.json()["detail"], r.text
    # the snapshot survived: the real cursor still pages on to the end
    seen, cur = list(first["members"]), cursor
    while cur:
        page = client.get(seg + "members", params={"expr": expr, "limit": 5, "cursor": cur},
                          headers=ADMIN).json()
        seen += page["members"]
        cur = page["next_cursor"]
    assert sorted(seen) == sorted(fixtures.reference(users_a, parse(expr)))


def test_the_documented_nesting_bound_is_served_and_one_more_is_400(world):
    from tests.unit.serving.test_segments import nested

    client, users_a, _ = world
    seg = "/v1/tenants/tenant-a/segments/"
    for expr in ("NOT " * 100 + "tag:refunded", nested(100)):   # docs/API.md: at most 100
        want = fixtures.reference(users_a, parse(expr))
        r = client.get(seg + "members", params={"expr": expr, "limit": 1000}, headers=ADMIN)
        assert r.status_code == 200, r.text[:300]
        assert sorted(r.json()["members"]) == sorted(want)
    for expr in ("NOT " * 101 + "tag:refunded", nested(101)):
        r = client.get(seg + "size", params={"expr": expr}, headers=ADMIN)
        assert r.status_code == 400
        assert "more than 100 levels deep (levels of NOT, AND and OR" in r.json()["detail"]


#: the error codes each route really answers (QA F8), besides 200 and FastAPI's 422
ROUTE_ERRORS = {
    "/v1/tags": {"401"},
    "/v1/tenants/{tenant}/users/{user_id}": {"401", "403", "404", "500", "503"},
    "/v1/tenants/{tenant}/users/{user_id}/timeline": {"401", "403", "404", "500", "503"},
    "/v1/tenants/{tenant}/users/{user_id}/why": {"401", "403", "404", "500", "503"},
    "/v1/tenants/{tenant}/users/{user_id}/why/{tag_id}": {"401", "403", "404", "500", "503"},
    "/v1/tenants/{tenant}/segments/size": {"400", "401", "403", "500", "503"},
    "/v1/tenants/{tenant}/segments/members": {"400", "401", "403", "410", "500", "503"},
    "/v1/tenants/{tenant}/segments/explain": {"400", "401", "403", "500", "503"},
    "/v1/tenants/{tenant}/segments/export": {"400", "401", "403", "410", "500", "503"},
}


def test_openapi_declares_every_error_answer_with_its_body(world):
    client = world[0]
    spec = client.get("/openapi.json").json()
    v1 = {p: ops for p, ops in spec["paths"].items() if p.startswith("/v1")}
    assert set(v1) == set(ROUTE_ERRORS)
    error_body = spec["components"]["schemas"]["ErrorBody"]
    assert error_body["required"] == ["detail"]
    for path, ops in v1.items():
        assert set(ops) == {"get"}, path
        responses = ops["get"]["responses"]
        assert set(responses) - {"200"} == ROUTE_ERRORS[path] | ({"422"} if "{tenant}" in path
                                                                  else set()), path
        for code in ROUTE_ERRORS[path]:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, code)
    export = v1["/v1/tenants/{tenant}/segments/export"]["get"]["responses"]["200"]["content"]
    assert set(export) == {"text/csv", "application/x-ndjson"}
    ready = spec["paths"]["/ready"]["get"]["responses"]["503"]["content"]["application/json"]
    assert ready["schema"] == {"$ref": "#/components/schemas/NotReady"}
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    # and the bodies are what the spec says: {"detail": text}
    r = client.get("/v1/tenants/tenant-a/segments/size", params={"expr": "nope = 1"},
                   headers=ADMIN)
    assert r.status_code == 400 and set(r.json()) == {"detail"}
    assert isinstance(r.json()["detail"], str)
    for code, path in ((401, "/v1/tags"), (404, "/v1/tenants/tenant-a/users/nobody")):
        r = client.get(path, headers=ADMIN if code == 404 else {})
        assert r.status_code == code and isinstance(r.json()["detail"], str)


def test_tag_definitions_come_from_the_rule_set(world, ruleset):
    body = world[0].get("/v1/tags", headers=A_TOKEN).json()
    assert body["ruleset_version"] == ruleset.version
    assert [t["id"] for t in body["tags"]] == [t.id for t in ruleset.tags]
    act = next(t for t in body["tags"] if t["id"] == "activity")
    assert {v["value"]: v["zh"] for v in act["values"]}["high"] == "高"


def test_token_map_file_and_digests(tmp_path):
    f = tmp_path / "tokens.yaml"
    digest = "sha256:" + __import__("hashlib").sha256(b"tok-b").hexdigest()
    f.write_text(f"tenants:\n  a: [tok-a]\n  b: ['{digest}']\n", encoding="utf-8")
    auth = TokenAuth("", load_tenant_tokens(f))
    assert auth.allows("tok-b", "b") and not auth.allows("tok-b", "a")
    assert not auth.known("") and not auth.known(digest)
    f.write_text("tenants: [a, b]\n", encoding="utf-8")
    with pytest.raises(Exception, match="tenants"):
        load_tenant_tokens(f)


def test_redis_down_is_503_and_not_ready(ruleset, caplog):
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from stream_app.services.process import free_port

    port = free_port()
    dead = aioredis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=0.5,
                          retry=Retry(NoBackoff(), 0))
    app = create_app(Settings(api_token="admin-secret"), redis=dead, ruleset=ruleset,
                     tenant_tokens={"t": ["token-t"]})
    with TestClient(app) as client, caplog.at_level("WARNING"):
        assert client.get("/healthz").status_code == 200
        # QA F9: /ready is open, so its 503 names no host or port but to the admin token
        for headers in ({}, {"Authorization": "Bearer token-t"},
                        {"Authorization": "Bearer wrong"}):
            r = client.get("/ready", headers=headers)
            assert r.status_code == 503 and r.json() == {
                "status": "not ready", "redis": "Redis does not answer (the API's log has "
                "the error)"}
        r = client.get("/ready", headers=ADMIN)
        assert r.status_code == 503 and str(port) in r.json()["redis"]
        logged = [m for m in caplog.messages if "Redis PING failed" in m]
        assert len(logged) == 1 and str(port) in logged[0]    # once while the error lasts
        r = client.get("/v1/tenants/t/segments/size", params={"expr": "tag:activity"},
                       headers=ADMIN)
        assert r.status_code == 503 and "Redis unavailable" in r.json()["detail"]
        # QA F4: the API's stream_app_ready is its own readiness, read at each scrape
        assert "\nstream_app_ready 0.0\n" in client.get("/metrics").text


def test_the_api_exports_its_own_readiness(world):
    """The API served the worker's registry with ``stream_app_ready 0`` (never set), a
    not-ready "worker" on every dashboard; it is now Redis answering PING, at each scrape."""
    from stream_app import metrics

    metrics.set_ready(False)
    assert "\nstream_app_ready 1.0\n" in world[0].get("/metrics").text


def test_tenant_tokens_from_the_token_setting(ruleset, redis_url):
    app = create_app(Settings(api_token="acme=tok-acme-1, master-key"),
                     redis=aioredis.Redis.from_url(f"{redis_url}/15"),
                     ruleset=ruleset)
    q = {"expr": "tag:activity"}
    with TestClient(app) as c:
        def status(tenant: str, token: str) -> int:
            return c.get(f"/v1/tenants/{tenant}/segments/size", params=q,
                         headers={"Authorization": f"Bearer {token}"}).status_code
        assert status("acme", "tok-acme-1") == 200 and status("other", "tok-acme-1") == 403
        assert status("other", "master-key") == 200
        assert status("acme", "acme=tok-acme-1, master-key") == 401


@pytest.mark.parametrize("key, yaml_type", [("007", "int"), ("on", "bool"), ("no", "bool"),
                                            ("0755", "int"), ("1_000", "int"), ("~", "null"),
                                            ("2024-01-01", "timestamp"), ("1.5", "float")])
def test_token_map_refuses_tenant_names_yaml_retypes(tmp_path, key, yaml_type):
    # QA28 F4: `007: [tok]` was read as tenant "7", so tenant 007's token read tenant 7
    f = tmp_path / "tokens.yaml"
    f.write_text(f"tenants:\n  acme: [tok-acme]\n  {key}: [tok-x]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_tenant_tokens(f)
    msg = str(exc.value)
    assert f"tokens.yaml:3: tenant name {key} is read by YAML as {yaml_type}" in msg
    assert f"quote it ('{key}'" in msg
    f.write_text(f"tenants:\n  acme: [tok-acme]\n  '{key}': [tok-x]\n", encoding="utf-8")
    auth = TokenAuth("", load_tenant_tokens(f))
    assert auth.allows("tok-x", key) and not auth.allows("tok-x", "7")
    assert not auth.allows("tok-x", "True") and not auth.allows("tok-x", "acme")


@pytest.mark.parametrize("body, problem", [
    ("a: [0123]", "token 1 is read by YAML as int, not text (quote"),
    ("a: [ok, yes]", "token 2 is read by YAML as bool"),
    ("a: 2024-01-01", "token 1 is read by YAML as timestamp"),
    ("a: ['']", "token 1 is empty"),
    ("a: [[x]]", "token 1 is read by YAML as a list"),
    ("a: [x]\n  a: [y]", "tenant 'a' is listed twice"),
])
def test_token_map_refuses_retyped_tokens_and_duplicate_tenants(tmp_path, body, problem):
    f = tmp_path / "tokens.yaml"
    f.write_text(f"tenants:\n  {body}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_tenant_tokens(f)


def test_an_over_long_user_id_with_a_slash_is_the_declared_422(world):
    # QA28 F7: an id holding %2F took another path whose 422 detail was a string
    client = world[0]
    plain, slashed = "y" * 257, "y" * 255 + "%2Fz"
    for route in ("", "/why", "/why/activity", "/timeline"):
        a = client.get(f"/v1/tenants/tenant-a/users/{plain}{route}", headers=ADMIN)
        b = client.get(f"/v1/tenants/tenant-a/users/{slashed}{route}", headers=ADMIN)
        assert a.status_code == b.status_code == 422, (route, a.text, b.text)
        (ea,), (eb,) = a.json()["detail"], b.json()["detail"]
        assert eb["loc"] == ["path", "user_id"] and eb["input"] == "y" * 255 + "/z"
        assert {k: v for k, v in eb.items() if k != "input"} == \
            {k: v for k, v in ea.items() if k != "input"}
    short = client.get("/v1/tenants/tenant-a/users/" + "y" * 254 + "%2Fz", headers=ADMIN)
    assert short.status_code == 404


def test_profile_labels_of_set_and_bool_tags_are_readable(world):
    # QA28 F5: "['java', 'pmp']" and "True" were the labels
    client, users_a, _ = world
    uid = next(u for u, t in users_a.items()
               if len(t.get("categories_bought", ())) == 2 and "at_risk" in t)
    tags = users_a[uid]
    labels = client.get(f"/v1/tenants/tenant-a/users/{uid}", headers=ADMIN).json()["labels"]
    assert labels["categories_bought"] == {"zh": "、".join(tags["categories_bought"]),
                                           "en": ", ".join(tags["categories_bought"])}
    # the test rule set gives no labels: yes/no, as `why` words them
    assert labels["at_risk"] == ({"zh": "是", "en": "yes"} if tags["at_risk"]
                                 else {"zh": "否", "en": "no"})
