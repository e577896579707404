"""The agent's parsed-state cache (``agents.DECODED``, :mod:`stream_app.state.decoded`):
the worker's per-event code gives the same outputs with it as without it (every output
record, Redis projection call, stored state, due time and metric, over the simulator's
events), uses it for most events, and never hands out a state the store no longer holds.
Run in a subprocess: importing the agents builds the Faust app."""

from __future__ import annotations

import json

from tests.unit.app.snippet import last_line

CODE = r"""
import json
from bench import glue_cost as g
from bench.workload import build
from stream_app.state.codec import decode, encode

wl = build(users=300, seed=11, days=3)
mods = g.import_tree(None)
side = g.Side(mods, mods)
agents = side.agents
kept = agents.DECODED
msgs = g.messages(wl, 3000, agents.settings.partitions)
out = {"events": len(msgs)}


class HeldProjection:
    # holds the objects it is given until its flush, as RedisProjection does (a kept state
    # must not change them in place before they are written)
    def __init__(self):
        self.held, self.written = [], []
    def apply_changes(self, changes, why):
        self.held.append(["apply", changes, why])
    def set_fields(self, tenant, uid, fields):
        self.held.append(["set", tenant, uid, fields])
    def forget(self, tenant, uid, tags):
        self.held.append(["forget", tenant, uid, tags])
    def reset_caches(self):
        pass
    def flush(self):
        self.written += [json.dumps(c, default=repr, sort_keys=True) for c in self.held]
        self.held = []


for size in (0, 32):
    side.reset()
    kept.max_users, kept.hits, kept.misses = size, 0, 0
    side.run(msgs)
    out[size] = {"outputs": side.outputs(), "hits": kept.hits, "misses": kept.misses}
    side.reset()
    held = agents.runtime.projection = HeldProjection()
    for start in range(0, len(msgs), 50):
        side.run(msgs[start:start + 50], start)
        held.flush()
    out[size]["held"] = held.written

# the last user processed is kept; another writer (a restore) replaces its record
msg = msgs[-1][0]
uid, part = msg.key.decode(), msg.partition
s0, c0 = agents.load_state(uid, part)
agents.store_state(uid, s0, part, c0)
assert uid in kept
state, cold = decode(agents.STATE_WRITER.get(uid, part))
state["tags"]["planted"] = 1
side.store.cache.vals[agents.STATE_WRITER.encode_key(uid)] = encode(state, cold)
out["replaced"] = agents.load_state(uid, part)[0]["tags"].get("planted")

# a state taken and changed, then not written (a failed step): not handed out again
s1, c1 = agents.load_state(uid, part)
agents.store_state(uid, s1, part, c1)
s2, _ = agents.load_state(uid, part)
s2["tags"]["unwritten"] = 1
s3, _ = agents.load_state(uid, part)
out["same_object_after_write"] = s2 is s1
out["unwritten"] = s3["tags"].get("unwritten")
print(json.dumps(out))
"""


def test_the_cache_changes_no_output_and_serves_only_what_the_store_holds(tmp_path) -> None:
    out = json.loads(last_line(CODE, tmp_path))
    off, on = out["0"], out["32"]
    assert on["outputs"] == off["outputs"]              # every digest: records, Redis, ...
    assert on["held"] == off["held"] and len(on["held"]) > 1000   # written after a delay
    assert off["hits"] == 0
    assert on["hits"] > 0.5 * out["events"]            # most events skip the parse
    assert out["replaced"] == 1                         # the store's record, not the kept state
    assert out["same_object_after_write"] is True
    assert out["unwritten"] is None
