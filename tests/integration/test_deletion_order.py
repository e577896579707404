"""A user's event older than their deletion request, read after it, does not bring the
user back; a later event starts a new user. In a backlog the deletion (on ``events.profile``)
can be read before the user's older events still queued on a lagging partition of another
topic (a worker back after an outage, a replay): before the deletion marker
(``stream_app/state/deletion.py``) such an event created the user again (state, tags, Redis
hash). Found in session 20: a 30-day replay counted 8 events of 2 deleted users in a fast
replay and none in a slow one."""

from __future__ import annotations

import time

import pytest

from stream_app.kafka_io import partition_of
from tests.helpers import DAY, event, uid

pytestmark = pytest.mark.integration
#: an event of each input topic (alerts.feedback: any other)
BY_TOPIC = {"events.click": ("page_view", {}), "events.study": ("lesson_attended", {}),
            "events.order": ("order_paid", {"amount": 4980}),
            "events.profile": ("profile_updated", {}),
            "events.label": ("checkpoint", {"target": "convert", "group": "d31"})}


def test_an_event_older_than_the_deletion_does_not_bring_the_user_back(stack, harness,
                                                                       tags_reader):
    u = uid("gone")
    t = harness.base_ts() + 10 * DAY
    harness.send("click", event(u, "course_view", t - 2 * 3_600_000))
    tags_reader.wait_for(user_id=u, tag_id="activity")
    harness.send("profile", event(u, "deletion_requested", t))
    tags_reader.wait_for(user_id=u, reason="deleted")
    # an event from before the deletion, read after it (its partition lagged behind)
    harness.send("click", event(u, "course_view", t - 3_600_000))
    # a later event of another user on the same click partition: once it is processed,
    # the older event of `u` has been too
    parts = stack.partitions
    v = next(x for x in (uid("after") for _ in range(10_000))
             if partition_of(x, parts) == partition_of(u, parts))
    harness.send("click", event(v, "course_view", t))
    tags_reader.wait_for(user_id=v, tag_id="activity")
    removed_at = max(c["seq"] for c in tags_reader.where(user_id=u, reason="deleted"))
    again = [c for c in tags_reader.where(user_id=u) if c["seq"] > removed_at]
    assert again == [], again[:3]
    assert harness.store.profile("default", u) == {}
    dropped = sum(float(line.rsplit(" ", 1)[1]) for line in _metrics(stack).splitlines()
                  if line.startswith("stream_app_deleted_user_events_total{"))
    assert dropped >= 1
    # an event after the deletion: a new user (a new registration, say)
    harness.send("click", event(u, "course_view", t + 3_600_000))
    fresh = tags_reader.wait_for(user_id=u, tag_id="activity", reason="added", count=2)
    assert fresh[-1]["seq"] > removed_at and fresh[-1]["new"] == "low"
    assert harness.store.profile("default", u) != {}


def _metrics(stack) -> str:
    import urllib.request

    return "".join(urllib.request.urlopen(w.url + "/metrics", timeout=5).read().decode()
                   for w in stack.workers)


def test_the_marker_holds_only_the_id_and_time_and_gives_way_to_a_tombstone(stack, harness,
                                                                          tags_reader):
    """The marker keeps nothing but the user id, tenant and deletion time, and the clock
    sweep replaces it by a tombstone once ``deletion_marker_days`` (30) have passed on the
    user's partition of every input topic, not on the most advanced one only."""
    import orjson

    from stream_app.cli.rebuild_cmd import changelog_topic, decode_key
    from stream_app.kafka_io import read_assigned
    from tests.helpers import wait_until

    u = uid("marked")
    t = harness.base_ts() + 10 * DAY
    harness.send("click", event(u, "course_view", t, props={"channel": "douyin"}))
    harness.send("profile", event(u, "deletion_requested", t + 60_000))
    consumer = read_assigned(stack.bootstrap, changelog_topic("stream-app"), stack.partitions)
    values: list[bytes | None] = []

    def last_of_u() -> list[bytes | None]:
        for msg in consumer.consume(num_messages=5000, timeout=0.3):
            if not msg.error() and decode_key(msg.key()) == u:
                values.append(msg.value())
        return values

    try:
        wait_until(lambda: (v := last_of_u()) and v[-1] is not None
                   and b"deleted_at" in v[-1], 60, what="the deletion marker")
        assert orjson.loads(values[-1]) == {"uid": u, "tenant": "default",
                                            "deleted_at": t + 60_000, "nd": t + 60_000 + 30 * DAY}
        # the user's click partition moves 31 days on (another user's event there), while its
        # profile partition, which may still hold older events of the user, lags: kept
        parts = stack.partitions
        v = next(x for x in (uid(f"later{i}") for i in range(1000))
                 if partition_of(x, parts) == partition_of(u, parts))
        harness.send("click", event(v, "page_view", t + 31 * DAY))
        tags_reader.wait_for(user_id=v, tag_id="activity")
        time.sleep(3)   # three sweeps (1 s apart in the test stack) with the marker due
        assert last_of_u()[-1] is not None and b"deleted_at" in last_of_u()[-1]
        # every input topic of the user's partition passes the time: a tombstone
        from stream_app.contract import load_contract

        for topic in load_contract().input_topics():
            etype, props = BY_TOPIC.get(topic, ("alert_feedback", {"verdict": "useful"}))
            harness.producer.produce(topic, key=v, value=orjson.dumps(
                event(v, etype, t + 31 * DAY, props)))
        harness.producer.flush(10)
        wait_until(lambda: last_of_u()[-1] is None, 60, what="a tombstone after the marker")
    finally:
        consumer.close()
