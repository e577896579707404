"""Topic contract, dead-letter records, clock, projection operations, replay routing."""

from __future__ import annotations

import base64

import pytest

from stream_app.clock import HybridClock
from stream_app.contract import load_contract
from stream_app.dlq import dead_letter
from stream_app.errors import ContractError
from stream_app.replay import route
from stream_app.serving import keys
from stream_app.serving.projection import change_ops, forget_ops


def test_contract_has_every_topic_with_explicit_retention():
    c = load_contract()
    for name in ["events.click", "events.study", "events.order", "events.profile", "events.label",
                 "tags.changes", "alerts.hot_lead", "alerts.at_risk", "alerts.metric_anomaly",
                 "events.dlq"]:
        spec = c.topic(name)
        assert "retention.ms" in spec.config and "retention.bytes" in spec.config
    assert c.stream_topic("study") == "events.study"
    assert c.schema("tags.changes")["required"]
    with pytest.raises(ContractError):
        c.topic("nope")


def test_dead_letter_keeps_original_bytes_and_position():
    raw = b"\x00\xffnot json"
    rec = dead_letter(raw, "bad_json", "x" * 900, "events.click", 3, 42, key=None, now_ms=7)
    assert base64.b64decode(rec["value_b64"]) == raw
    assert (rec["source_topic"], rec["source_partition"], rec["source_offset"]) == (
        "events.click", 3, 42)
    assert rec["key_b64"] is None and len(rec["detail"]) == 500


def test_clock_never_goes_back_and_drifts_with_wall_time():
    wall = [0.0]
    c = HybridClock(wall=lambda: wall[0])
    c.observe(10_000)
    c.observe(5_000)  # older event: no step back
    assert c.now() == 10_000
    wall[0] = 2.5
    assert c.now() == 12_500
    c.observe(11_000)  # older than now (12,500): ignored
    assert c.now() == 12_500


def test_clock_watermark_is_the_slowest_partition():
    wall = [0.0]
    c = HybridClock(wall=lambda: wall[0])
    c.observe(50_000, partition=0)
    c.observe(10_000, partition=1)
    assert c.watermark() == 10_000 and c.now(1) == 10_000 and c.now() == 50_000
    c.observe(60_000, partition=1)
    assert c.watermark() == 50_000 and c.now() == 60_000
    c.revoke({1})
    assert c.now() == 50_000 and c.partitions() == [0]


def test_projection_ops_move_segment_membership():
    ch = {"user_id": "u", "tenant": "t", "tag_id": "activity", "old": "low", "new": "high",
          "seq": 2}
    ops = change_ops(ch, why={"rule": "activity"})
    assert ("srem", keys.seg_key("t", "activity", "low"), "u") in ops
    assert ("sadd", keys.seg_key("t", "activity", "high"), "u") in ops
    num = change_ops({**ch, "tag_id": "lead_score", "old": 3, "new": 7.5}, why=None)
    assert ("zadd", keys.num_key("t", "lead_score"), "u", 7.5) in num
    removed = change_ops({**ch, "new": None}, why=None)
    assert ("hdel", keys.user_key("t", "u"), "tag:activity") in removed
    assert not any(op[0] == "sadd" and "seg" in op[1] for op in removed)
    cats = change_ops({**ch, "tag_id": "cats", "old": ["java"], "new": ["java", "sql"]},
                      why=None)
    assert ("srem", keys.seg_key("t", "cats", ["java"]), "u") in cats
    assert ("sadd", keys.seg_key("t", "cats", ["java", "sql"]), "u") in cats
    assert ("sadd", keys.values_key("t", "cats"), '["java","sql"]') in cats
    assert ("sadd", keys.values_key("t", "activity"), "high") in ops
    gone = forget_ops("t", "u", {"activity": "high", "lead_score": 4, "cats": ["sql"]})
    assert ("srem", keys.seg_key("t", "cats", ["sql"]), "u") in gone
    assert ("srem", keys.seg_key("t", "activity", "high"), "u") in gone
    assert ("zrem", keys.num_key("t", "lead_score"), "u") in gone


def test_replay_routes_by_stream():
    c = load_contract()
    assert list(route({"stream": "order", "user_id": "u9"}, c)) == [("events.order", "u9")]
    assert list(route({"stream": "nope", "user_id": "u9"}, c)) == []
    assert list(route({"user_id": "u9"}, c)) == []
