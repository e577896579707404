"""``stream_app_rule_backfill_progress`` is the share of a worker's users *re-evaluated* after a
rule-set change, counted as their backfill ticks are handled, not as the sweep queues them
(QA session 26, F3: the log and the gauge said 33,938/33,938 while the ticks still waited
behind the input backlog and Redis held 1,554 users under the old value).

Runs the worker's tick handler (bench.glue_cost's fakes: no Kafka, no Redis) in a subprocess:
importing the agents builds the Faust app."""

from __future__ import annotations

import json

from tests.unit.app.snippet import last_line

CODE = r"""
import json, time
import orjson
from bench import glue_cost as g

mods = g.import_tree(None)
side = g.Side(mods, mods)
agents, rt = side.agents, side.agents.runtime
BACKFILL_TICK, TICKS = agents.BACKFILL_TICK, agents.TICKS
now = int(time.time() * 1000) - 3_600_000
for i, uid in enumerate(["u1", "u2", "u3", "u4"]):
    ev = {"event_id": f"c{i}", "user_id": uid, "ts": now + i, "type": "page_view", "props": {}}
    side.run([(g.Msg("events.click", 0, i, uid.encode(), orjson.dumps(ev), g.NOW_S), "click")])


def gauge():
    return side.registry.get_sample_value("stream_app_rule_backfill_progress")


# a rule-set change queued four users (as broadcast.py does), the sweep sent every tick
rt.backfill, rt.backfill_total, rt.backfill_done = [], 4, 0
side.metrics.BACKFILL_PROGRESS.set(0.0)
seen = [gauge()]
for off, (uid, value) in enumerate([("u1", BACKFILL_TICK), ("u2", b"tick"),
                                    ("u2", BACKFILL_TICK), ("u3", BACKFILL_TICK),
                                    ("u4", BACKFILL_TICK)]):
    agents._tick(g.Msg(TICKS, 0, off, uid.encode(), value, g.NOW_S))
    seen.append(gauge())
print(json.dumps({"seen": seen, "done": rt.backfill_done}))
"""


def test_backfill_progress_counts_users_re_evaluated(tmp_path) -> None:
    out = json.loads(last_line(CODE, tmp_path))
    # an ordinary clock tick (u2's first) does not count
    assert out["seen"] == [0.0, 0.25, 0.25, 0.5, 0.75, 1.0] and out["done"] == 4


FRESH = r"""
from stream_app.app import agents  # noqa: F401 - the worker's app, as a worker imports it
from stream_app import metrics

body, _ = metrics.render()
print(next(line for line in body.decode().splitlines()
           if line.startswith("stream_app_rule_backfill_progress ")))
"""


def test_a_worker_without_a_rule_change_reports_its_backfill_done(tmp_path) -> None:
    """QA40 F5.2: the gauge started at 0, so on a dashboard every fresh worker (no rule-set
    change, nothing to backfill) looked like a stuck backfill; it is 1 until a change."""
    assert last_line(FRESH, tmp_path) == "stream_app_rule_backfill_progress 1.0"
