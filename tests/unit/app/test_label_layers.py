"""An event the scorer does not score (a label, a feedback verdict) can still move a layer
tag: the engine re-evaluates the clock-reading rules at its time, so a checkpoint read after
a high lead's points decayed turns ``intent`` medium. The profile's layer follows it
(QA39b F2: ``layers.convert`` stayed ``high`` beside ``intent: medium``).

Runs the worker's event handler (bench.glue_cost's fakes: no Kafka, no Redis) in a
subprocess: importing the agents builds the Faust app."""

from __future__ import annotations

import json

from tests.unit.app.snippet import GLUE_FEED, last_line

CODE = GLUE_FEED + r"""
proj = agents.runtime.projection
DAY = 86_400_000
t0 = now - 30 * DAY
for i, etype in enumerate(["course_view", "trial_booked", "consult_request", "cart_add",
                           "cart_add"]):
    feed("events.click", "click", {"event_id": f"c{i}", "user_id": "u1", "ts": t0 + i * 60_000,
                                   "type": etype, "props": {}})
n = len(side.producer.records)
calls = len(proj.calls)
feed("events.label", "label", {"event_id": "cp1", "user_id": "u1", "ts": t0 + 20 * DAY,
                               "type": "checkpoint", "props": {"target": "convert",
                                                               "group": "d20"}})
changes = [orjson.loads(r[2]) for r in side.producer.records[n:] if r[0] == "tags.changes"]
sets = [c[3] for c in map(orjson.loads, proj.calls[calls:]) if c[0] == "set"]
before = [c[3] for c in map(orjson.loads, proj.calls[:calls]) if c[0] == "set"]
print(json.dumps({"changes": changes, "sets": sets, "before": before}))
"""


def test_a_checkpoint_that_turns_intent_medium_writes_the_medium_layer(tmp_path) -> None:
    out = json.loads(last_line(CODE, tmp_path))
    assert out["before"][-1]["score:convert"][1] == "high"
    intent = [c for c in out["changes"] if c["tag_id"] == "intent"]
    assert intent and intent[0]["old"] == "high" and intent[0]["new"] != "high"
    assert out["sets"] and out["sets"][-1]["score:convert"][1] == intent[0]["new"]
