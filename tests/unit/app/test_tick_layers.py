"""A clock tick that moves a layer tag writes the profile's layer with it (QA39 F1, QA40 F1:
``at_risk`` turned true by the 14-day stall was served with ``layers.at_risk: low`` until the
learner's next event, i.e. never for an idle learner; ``intent`` decaying to medium kept
``layers.convert: high``).

Runs the worker's tick handler (bench.glue_cost's fakes: no Kafka, no Redis) in a subprocess:
importing the agents builds the Faust app."""

from __future__ import annotations

import json

from tests.unit.app.snippet import GLUE_FEED, last_line

CODE = GLUE_FEED + r"""
rt = agents.runtime
proj = rt.projection
DAY = 86_400_000
t0 = int(time.time() * 1000) - 40 * DAY
for i, (topic, stream, uid, etype, ts) in enumerate([
        ("events.study", "study", "u1", "lesson_attended", t0),
        ("events.click", "click", "u1", "course_view", t0 + 1),
        ("events.click", "click", "u2", "course_view", t0 + 20 * DAY)]):
    feed(topic, stream, {"event_id": f"e{i}", "user_id": uid, "ts": ts, "type": etype,
                         "props": {}})


def sets(uid):
    return [c[3] for c in map(orjson.loads, proj.calls) if c[0] == "set" and c[2] == uid]


before = sets("u1")
n = len(side.producer.records)
calls = len(proj.calls)
agents._tick(g.Msg(agents.TICKS, 0, 99, b"u1", b"tick:%d" % (t0 + 15 * DAY), g.NOW_S))
changes = [orjson.loads(r[2]) for r in side.producer.records[n:] if r[0] == "tags.changes"]
after = [c[3] for c in map(orjson.loads, proj.calls[calls:]) if c[0] == "set"]
calls = len(proj.calls)
agents._tick(g.Msg(agents.TICKS, 0, 100, b"u1", b"tick:%d" % (t0 + 15 * DAY + 1), g.NOW_S))
quiet = [c for c in map(orjson.loads, proj.calls[calls:]) if c[0] == "set"]
print(json.dumps({"before": before, "changes": changes, "after": after, "quiet": quiet}))
"""


def test_a_tick_that_turns_at_risk_true_writes_the_high_layer(tmp_path) -> None:
    out = json.loads(last_line(CODE, tmp_path))
    assert out["before"][-1]["score:at_risk"][1] == "low"
    assert any(c["tag_id"] == "at_risk" and c["new"] is True for c in out["changes"])
    assert len(out["after"]) == 1
    score, layer, source = out["after"][0]["score:at_risk"]
    assert layer == "high" and source == "rules"
    assert out["after"][0]["score:convert"][1] == "low"   # intent is low: its layer too
    assert out["quiet"] == []            # a tick that moves no layer tag writes no score
