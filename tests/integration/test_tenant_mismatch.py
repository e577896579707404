"""A user belongs to one tenant: an event or a deletion request for the same ``user_id``
under another tenant is dead-lettered (reason ``tenant_mismatch``) instead of being mixed into
the first tenant's state, tags and Redis keys. Before, such an event changed the first
tenant's tags and wrote score fields under the second tenant's key, and a deletion request
of the second tenant deleted the first tenant's user."""

from __future__ import annotations

import base64

import pytest

from tests.helpers import DAY, TopicReader, event, uid, wait_until

pytestmark = pytest.mark.integration


def test_the_same_user_id_under_another_tenant_is_dead_lettered(stack, harness, tags_reader):
    dlq = TopicReader(stack.bootstrap, "events.dlq", stack.partitions)
    u = uid("tenant")
    t = harness.base_ts()
    harness.send("click", event(u, "page_view", t, tenant="acme"))
    [first] = tags_reader.wait_for(user_id=u, tag_id="activity")
    assert first["tenant"] == "acme"
    # another tenant's events under the same id: an active day more, and a deletion request
    harness.send("click", event(u, "page_view", t + DAY, tenant="globex",
                                event_id=f"{u}-globex-view"))
    harness.send("profile", event(u, "deletion_requested", t + 2 * DAY, tenant="globex",
                                  event_id=f"{u}-globex-delete"))

    def mine() -> list[dict]:
        return [r for r in dlq.poll() if r.get("key_b64")
                and base64.b64decode(r["key_b64"]).decode() == u]

    recs = wait_until(lambda: (lambda m: m if len(m) >= 2 else None)(mine()), 60,
                      what="2 DLQ records of the other tenant")
    assert sorted(r["reason"] for r in recs) == ["tenant_mismatch", "tenant_mismatch"]
    assert "belongs to tenant 'acme'" in recs[0]["detail"]
    originals = {base64.b64decode(r["value_b64"]) for r in recs}
    assert any(f"{u}-globex-delete".encode() in o for o in originals)
    # acme's user is untouched: still there with one active day; nothing under globex
    harness.send("click", event(u, "page_view", t + 3 * DAY, tenant="acme"))
    [later] = tags_reader.wait_for(user_id=u, tag_id="activity", new="medium")
    assert later["old"] == "low" and later["tenant"] == "acme"
    assert all(r["tenant"] == "acme" for r in tags_reader.where(user_id=u))
    assert harness.store.profile("acme", u)
    assert not harness.store.profile("globex", u)
    dlq.close()
