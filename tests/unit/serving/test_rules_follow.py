"""Following published rule sets: the API's tag catalog switches with the workers'."""

from __future__ import annotations

import fakeredis
from fastapi.testclient import TestClient

from stream_app.config import Settings
from stream_app.rules_bundle import encode
from stream_app.serving.api import create_app
from stream_app.serving.rules_follow import RuleFollower
from tests.unit.serving import fixtures

EXTRA = """
  - {id: vip, family: consumption, zh: 贵宾, en: VIP, kind: bool, value: "count(order_paid) > 5"}
"""


def bundle(text: str) -> bytes:
    return encode({"files": {"rules.yaml": text}, "published_at": 0, "source": "test"})


def test_follower_hands_over_new_valid_rule_sets_only():
    seen = []
    f = RuleFollower("unused:9092", seen.append)
    assert f.handle(bundle(fixtures.RULES))
    assert not f.handle(bundle(fixtures.RULES))              # same version: nothing to do
    assert not f.handle(bundle("tags: [{id: x}]"))            # invalid: refused, kept the old
    assert not f.handle(b"not json")
    assert f.handle(bundle(fixtures.RULES + EXTRA))
    assert [len(rs.tags) for rs in seen] == [7, 8] and f.version == seen[-1].version


def test_api_catalog_and_tag_list_follow_the_rule_set(ruleset):
    app = create_app(Settings(api_token="a"), redis=fakeredis.FakeAsyncRedis(),
                     ruleset=ruleset)
    h = {"Authorization": "Bearer a"}
    with TestClient(app) as c:
        q = {"expr": "vip = true"}
        assert c.get("/v1/tenants/t/segments/size", params=q, headers=h).status_code == 400
        f = RuleFollower("unused:9092", app.state.use_ruleset)
        assert f.handle(bundle(fixtures.RULES + EXTRA))
        assert c.get("/v1/tenants/t/segments/size", params=q, headers=h).json()["size"] == 0
        tags = c.get("/v1/tags", headers=h).json()
        assert "vip" in [t["id"] for t in tags["tags"]] and tags["ruleset_version"] == f.version
