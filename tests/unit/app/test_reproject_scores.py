"""``redis-rebuild --live``: the worker's re-projection of a user writes its score fields
(QA40 F2: it wrote the tags and why records only, so every user re-projected lost
``score:<target>``, and the API served ``scores``, ``layers`` and ``sources`` empty until the
user's next scored event). A user with no clock tick since its last event gets back exactly
what the worker wrote at that event.

Runs the worker's tick handler (bench.glue_cost's fakes: no Kafka, no Redis) in a subprocess:
importing the agents builds the Faust app."""

from __future__ import annotations

import json

from tests.unit.app.snippet import GLUE_FEED, last_line

CODE = GLUE_FEED + r"""
rt = agents.runtime
proj = rt.projection
written = []
proj.reproject = lambda ops, tenant, uid: written.extend(ops)
proj.resume_caches = proj.resume_writes = lambda: None
proj.why_mode, proj.timeline = "compact", 0
for i, etype in enumerate(["course_view", "trial_booked", "course_view", "cart_add"]):
    feed("events.click", "click", {"event_id": f"e{i}", "user_id": "u1",
                                   "ts": now + i * 60_000, "type": etype, "props": {}})
sets = [c[3] for c in map(orjson.loads, proj.calls) if c[0] == "set" and c[2] == "u1"]
last = {}
for fields in sets:
    last.update(fields)
agents._tick(g.Msg(agents.TICKS, 0, 7, b"u1", b"reproject:r1", g.NOW_S))
hsets = [op for op in written if op[0] == "hsetmap"]
print(json.dumps({"last": last, "tags": [op[2] for op in written if op[0] == "hset"],
                  "scores": {f: orjson.loads(v) for op in hsets for f, v in op[2].items()}}))
"""


def test_a_live_reprojection_writes_the_score_fields_the_worker_wrote(tmp_path) -> None:
    out = json.loads(last_line(CODE, tmp_path))
    assert out["tags"]                                     # the tags, as before
    assert set(out["scores"]) == {"score:convert", "score:at_risk"}
    assert out["scores"] == out["last"]                    # as the last event left them
    score, layer, source = out["scores"]["score:convert"]
    assert layer == "high" and source == "rules" and score > 0
