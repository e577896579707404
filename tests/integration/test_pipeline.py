"""End to end on the real broker, real Redis and a real worker process."""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.helpers import DAY, T0, TopicReader, event, uid, wait_until

pytestmark = pytest.mark.integration


def test_garbage_and_schema_violations_go_to_dlq(stack, harness):
    dlq = TopicReader(stack.bootstrap, "events.dlq", stack.partitions)
    marker = uid("dlq")
    garbage = f"garbage {marker} \xff".encode("utf-8", "surrogatepass")
    harness.send("click", garbage, key=marker)
    harness.send("study", orjson.dumps({"event_id": "x", "user_id": marker, "ts": 5,
                                        "type": "lesson_missed"}), key=marker)
    harness.send("order", orjson.dumps({"event_id": "y", "user_id": marker,
                                        "ts": "not-a-date-at-all", "type": "order_paid"}),
                 key=marker)
    harness.send("click", orjson.dumps({"event_id": "z", "ts": T0, "type": "page_view"}),
                 key=marker)
    harness.send("click", orjson.dumps({"event_id": "w", "user_id": marker, "ts": T0,
                                        "type": "page_view", "props": {"deep": {"a": 1}}}),
                 key=marker)

    def mine():
        return [r for r in dlq.poll() if marker.encode() in base64.b64decode(r["value_b64"])
                or (r.get("key_b64") and marker.encode() in base64.b64decode(r["key_b64"]))]

    recs = wait_until(lambda: (lambda m: m if len(m) >= 5 else None)(mine()), 60,
                      what="5 DLQ records")
    by_topic_reason = sorted((r["source_topic"], r["reason"]) for r in recs)
    assert by_topic_reason == [("events.click", "bad_json"), ("events.click", "missing_user_id"),
                               ("events.click", "schema"), ("events.order", "bad_ts"),
                               ("events.study", "ts_out_of_range")]
    original = [r for r in recs if r["reason"] == "bad_json"][0]
    assert base64.b64decode(original["value_b64"]) == garbage
    assert original["source_offset"] >= 0 and original["detail"]
    dlq.close()


def test_unkeyed_events_are_rekeyed_and_unknown_types_accepted(harness, tags_reader):
    u = uid()
    harness.send("click", event(u, "brand_new_action", harness.base_ts()), key="not-the-user")
    change = tags_reader.wait_for(user_id=u, tag_id="activity")[0]
    assert change["new"] == "low"


def test_duplicates_change_nothing(harness, tags_reader):
    u = uid()
    t = harness.base_ts()
    e = event(u, "page_view", t, event_id=f"dup-{u}")
    harness.send("click", e)
    harness.send("click", e)
    harness.send("click", event(u, "page_view", t + DAY))
    harness.send("click", e)
    changes = tags_reader.wait_for(user_id=u, tag_id="activity", count=2)
    assert [c["new"] for c in changes] == ["low", "medium"]  # 2 active days, dup not counted
    assert [c["seq"] for c in changes] == sorted(c["seq"] for c in changes)


def test_churn_on_the_clock_without_new_events(harness, tags_reader):
    """A user idle for 30 days becomes churned by the sweep, with no event of its own."""
    idle, other = uid("idle"), uid("other")
    t = harness.base_ts()
    harness.send("click", event(idle, "course_view", t))
    tags_reader.wait_for(user_id=idle, tag_id="activity", new="low")
    # another user's events move stream time 31 days on
    harness.send("click", event(other, "page_view", t + 31 * DAY))
    [churn] = tags_reader.wait_for(timeout=90, user_id=idle, tag_id="activity", new="churned")
    assert churn["old"] == "low"
    assert churn["trigger"] is None


def test_restart_keeps_counts(stack, harness, tags_reader):
    """State survives a worker restart: it is recovered from the table changelog."""
    u = uid("restart")
    t = harness.base_ts()
    harness.send("click", event(u, "page_view", t))
    tags_reader.wait_for(user_id=u, tag_id="activity", new="low")
    worker = stack.workers[0]
    worker.stop()
    worker.start()
    worker.wait_ready(240)
    harness.send("click", event(u, "page_view", t + DAY))
    [medium] = tags_reader.wait_for(timeout=120, user_id=u, tag_id="activity", new="medium")
    assert medium["old"] == "low"  # day 1 was remembered across the restart
