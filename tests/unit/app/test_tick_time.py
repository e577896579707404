"""A sweep's tick carries the sweep's clock, and the user is evaluated at that time: a tick
delivered again after a crash (the state write lost, the tick not committed) makes the same
tag changes, not copies with the restarted worker's clock (QA34 F2: 9 re-sent ids with a
``ts`` 75.8 h of event time later and other evidence under ``stream-app dev``).

Runs the worker's tick handler (bench.glue_cost's fakes: no Kafka, no Redis) in a subprocess:
importing the agents builds the Faust app."""

from __future__ import annotations

import json

from stream_app.ticks import tick_time, tick_value
from tests.unit.app.snippet import GLUE_FEED, last_line

CODE = GLUE_FEED + r"""
rt = agents.runtime
DAY = 86_400_000
t0 = int(time.time() * 1000) - 40 * DAY
events = [("events.study", "study", "u1", "lesson_attended", t0),
          ("events.click", "click", "u1", "course_view", t0 + 1),
          ("events.click", "click", "u2", "course_view", t0 + 20 * DAY)]   # moves the clock
for i, (topic, stream, uid, etype, ts) in enumerate(events):
    feed(topic, stream, {"event_id": f"e{i}", "user_id": uid, "ts": ts, "type": etype,
                         "props": {}})

before = dict(side.store.cache.vals)
sweep_at = t0 + 14 * DAY + 3_600_000           # the stall passed an hour before the sweep


def tick(value):
    n = len(side.producer.records)
    agents._tick(g.Msg(agents.TICKS, 0, 99, b"u1", value, g.NOW_S))
    return [orjson.loads(r[2]) for r in side.producer.records[n:]
            if r[0] == "tags.changes" and r[1] in ("u1", b"u1")]


first = tick(b"tick:%d" % sweep_at)
side.store.cache.vals.clear()
side.store.cache.vals.update(before)               # the crash: the state write is lost
agents.DECODED.clear()
side.wall[0] += 3600                                # the restarted worker's clock went on
again = tick(b"tick:%d" % sweep_at)
clock = rt.clock.now()
side.store.cache.vals.clear()
side.store.cache.vals.update(before)               # a second crash, and this time the
agents.DECODED.clear()                              # restarted clock has seen no event yet
rt.clock = mods["stream_app.clock"].HybridClock(wall=lambda: side.wall[0])
fresh = tick(b"tick:%d" % sweep_at)
print(json.dumps({"first": first, "again": again, "fresh": fresh, "clock": clock,
                  "fresh_clock": rt.clock.now(), "at": sweep_at}))
"""


def test_a_tick_is_evaluated_at_the_sweeps_time_and_its_copy_is_identical(tmp_path) -> None:
    out = json.loads(last_line(CODE, tmp_path))
    assert out["clock"] > out["at"]                 # the worker's clock is past the sweep
    stall = [c for c in out["first"] if c["tag_id"] == "at_risk"]
    assert stall and stall[0]["new"] is True
    assert {c["ts"] for c in out["first"]} == {out["at"]}
    assert out["again"] == out["first"]
    # QA36 F1: a restarted worker whose clock has seen no event yet still evaluates it
    assert out["fresh_clock"] is None and out["fresh"] == out["first"]


def test_tick_values() -> None:
    assert tick_time(tick_value(1_700_000_000_123)) == 1_700_000_000_123
    assert tick_time(b"tick") is None and tick_time(b"backfill") is None
    assert tick_time(b"tick:x") is None and tick_time(None) is None
