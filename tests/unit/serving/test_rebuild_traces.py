"""QA31 F2: ``redis-rebuild --check-only`` said a forgotten user was still in Redis when its
id was part of another user's id (``lead-7`` and ``lead-77``): ``traces`` matched key names
by substring. Key names are now matched exactly; the member checks are unchanged. Against a
real redis-server, written through the projection's own operations."""

from __future__ import annotations

import redis

from stream_app.cli.rebuild_cmd import check, traces
from stream_app.serving import keys
from stream_app.serving.projection import RedisProjection
from tests.unit.serving.conftest import _DBS
from tests.unit.serving.fixtures import run

TAGS = {"activity": "low", "lead_points": 3}


def changes(user: str) -> list[dict]:
    return [{"tenant": "default", "user_id": user, "tag_id": tag, "old": None, "new": value,
             "seq": 1, "ts": 1} for tag, value in TAGS.items()]


def test_a_forgotten_user_whose_id_is_part_of_another_users_leaves_no_trace(redis_url):
    url = f"{redis_url}/{next(_DBS)}"
    r = redis.Redis.from_url(url)
    r.flushdb()
    proj = RedisProjection(url, timeline=5)      # timeline keys too: sa:default:timeline:U
    try:
        for user in ("lead-7", "lead-77", "x-lead-7"):
            proj.apply_changes(changes(user))
        run(proj.flush())
        r.hset(keys.why_key("default", "lead-77"), "activity", "{}")   # the old why layout
        before = traces(r, "lead-7")
        assert set(keys.user_keys("default", "lead-7")[::2]) <= set(before)   # hash, timeline
        assert keys.seg_key("default", "activity", "low") in before            # its bit
        assert keys.num_key("default", "lead_points") in before               # its member

        proj.forget("default", "lead-7", TAGS)
        run(proj.flush())
        assert not r.exists(keys.user_key("default", "lead-7"))
        assert traces(r, "lead-7") == []          # was: lead-77's user, why and timeline keys
        assert check(r, {}, deleted=["lead-7"]) == []
        # the others keep every trace, and the check still sees what a deletion left
        assert set(keys.user_keys("default", "lead-77")) <= set(traces(r, "lead-77"))
        assert keys.seg_key("default", "activity", "low") in traces(r, "x-lead-7")
        r.hset(keys.why_key("default", "lead-7"), "activity", "{}")
        assert traces(r, "lead-7") == [keys.why_key("default", "lead-7")]
        [problem] = check(r, {}, deleted=["lead-7"])
        assert problem.startswith("lead-7: deleted from the table but Redis still has")
    finally:
        run(proj.client.aclose())
        r.close()
