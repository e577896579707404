"""The users table's record with the scorer's cold block (stream_app/state/codec.py).

The worker decodes a record per event, lets the scorer parse the cold block only when it
reads checkpoints or snapshots, and encodes the state back: every score, checkpoint and
training pair must be what the scorer gives on the whole state, and the block must be
parsed on few events."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from stream_app.state.codec import HEADER, ColdState, decode, due_of, encode, merged
from tests.unit.scoring.fixtures import config, lead_stream


class CountingCold(ColdState):
    """A ColdState that counts how often the block was parsed."""

    parsed = 0

    def __call__(self, sc):
        if not self.loaded and self.raw:
            CountingCold.parsed += 1
        super().__call__(sc)


def _steps(events, through_codec: bool):
    """Every step's outputs, and the final states, with the scoring state kept as a table
    record between events: the whole state as JSON (``through_codec`` False, the layout
    before the cold block) or the codec's record with the block parsed on demand."""
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    table: dict[str, bytes] = {}
    out = []
    for e in events:
        raw = table.get(e.user_id)
        if through_codec:
            state, cold = decode(raw) if raw else ({}, ColdState())
            cold = CountingCold(cold.raw)
            s = sc.on_event(state.get("sc"), e, cold=cold)
            state["sc"] = s.sc_state
            table[e.user_id] = encode(state, cold)
        else:
            state = orjson.loads(raw) if raw else {}
            s = sc.on_event(state.get("sc"), e)
            state["sc"] = s.sc_state
            table[e.user_id] = orjson.dumps(state)
        out.append((e.event_id, s.scores, s.layers, s.source, s.checkpoints,
                    [(t.target, t.x, t.y, t.ts, t.gate) for t in s.training]))
    return out, table


def _normal(state: dict) -> dict:
    """The state without empty checkpoint and snapshot members (the record leaves them out)."""
    sc = dict(state.get("sc") or {})
    for k in ("cp", "sn"):
        if not sc.get(k):
            sc.pop(k, None)
    return {**state, "sc": sc}


def test_the_cold_block_gives_the_same_scores_checkpoints_and_training_pairs():
    events = lead_stream(120, seed=5)
    CountingCold.parsed = 0
    whole, whole_table = _steps(events, through_codec=False)
    split, split_table = _steps(events, through_codec=True)
    assert split == whole
    assert sum(len(s[5]) for s in split) > 100          # training pairs were made ...
    assert sum(len(s[4]) for s in split) == 120         # ... and every checkpoint resolved
    # the block is parsed on few events (labels, orders, scheduled snapshots), not all
    assert 0 < CountingCold.parsed < 0.3 * len(events)
    assert {u: _normal(merged(orjson.loads(r))) for u, r in split_table.items()} == \
        {u: _normal(orjson.loads(r)) for u, r in whole_table.items()}
    assert any(r.startswith(HEADER) for r in split_table.values())


def test_a_record_of_the_earlier_layout_is_read_and_rewritten_with_the_block():
    old = orjson.dumps({"nd": 9, "sc": {"t0": 1, "cp": [[5, "convert", "g"]], "yo": {}}})
    state, cold = decode(old)
    assert state["sc"]["cp"] == [[5, "convert", "g"]] and not cold.raw
    new = encode(state, cold)
    assert new.startswith(HEADER) and b'"cp"' not in new
    assert merged(orjson.loads(new)) == orjson.loads(old)
    assert due_of(new) == due_of(old) == 9


def test_an_earlier_release_reads_the_hot_part_and_its_rewrite_is_read_back():
    state = {"nd": 3, "tags": {"intent": "high"}, "sc": {"t0": 1, "sn": {"convert": [[2, {}]]}}}
    rec = encode(orjson.loads(orjson.dumps(state)))
    # a worker of the earlier release parses the record whole: its state has the hot members
    # (and three it does not know), no snapshots in sc; it adds a checkpoint there and writes
    # the whole dict back
    theirs = orjson.loads(rec)
    assert theirs["tags"] == {"intent": "high"} and "sn" not in theirs["sc"]
    theirs["sc"]["cp"] = [[4, "convert", "g"]]
    back, cold = decode(orjson.dumps(theirs))
    assert "~c" not in back and back["sc"]["cp"] == [[4, "convert", "g"]]
    # written again without the scorer reading the block (e.g. after a tick): what it added
    # and what the block kept are both in the new record
    again, cold = decode(encode(back, cold))
    cold(again["sc"])
    assert again["sc"] == {"t0": 1, "cp": [[4, "convert", "g"]], "sn": {"convert": [[2, {}]]}}


def test_a_header_that_does_not_add_up_is_read_whole():
    rec = encode({"nd": 1, "sc": {"cp": [[1, "x"]]}})
    bad = rec.replace(HEADER + b"15", HEADER + b"14")
    assert bad != rec
    assert decode(bad)[0] == {"nd": 1, "sc": {"cp": [[1, "x"]]}}


def test_detach_is_idempotent_and_an_emptied_block_is_dropped():
    state, cold = decode(encode({"nd": 1, "sc": {"cp": [[1, "x"]]}}))
    assert not cold.detach(state["sc"]) and not cold.detach(state["sc"])
    cold(state["sc"])
    state["sc"]["cp"].clear()
    assert cold.detach(state["sc"]) and cold.raw is None
    assert encode(state, cold) == b'{"nd":1,"sc":{}}'


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=20)
_tricky = st.sampled_from(['"~c":', '{"~c":12,', ',"~cp":', "}", "用户", '\\"'])


@settings(max_examples=300, deadline=None)
@given(hot=st.dictionaries(st.text(max_size=6) | _tricky, _json, max_size=5),
       sc=st.dictionaries(st.text(max_size=4) | _tricky, _json, max_size=4),
       cp=st.lists(_json | _tricky, max_size=3),
       sn=st.dictionaries(st.text(max_size=4) | _tricky, st.lists(_json, max_size=2),
                          max_size=3))
def test_any_state_survives_the_record(hot, sc, cp, sn):
    hot.pop("sc", None)
    for k in ("~c", "~cp", "~sn", "~n", "~k", "~x", "~pc", "~ps"):
        hot.pop(k, None)
    sc = {k: v for k, v in sc.items() if k not in ("cp", "sn")}
    state = {**hot, "sc": {**sc, "cp": cp, "sn": sn}}
    expected = _normal(orjson.loads(orjson.dumps(state)))
    rec = encode(orjson.loads(orjson.dumps(state)))
    assert orjson.loads(rec)          # still one JSON object
    got, cold = decode(rec)
    cold(got["sc"])
    assert _normal(got) == expected
    assert _normal(merged(orjson.loads(rec))) == expected
    # untouched, the block is copied back byte for byte
    again, cold2 = decode(rec)
    assert encode(again, cold2) == rec
