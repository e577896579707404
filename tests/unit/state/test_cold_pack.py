"""The scorer's cold block packed (stream_app/state/cold_pack.py): every checkpoint and
snapshot comes back exactly (values, their types, the order of names, which entries shared
a dict), and the records the worker writes get smaller."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from stream_app.state.codec import ColdState, decode, encode, merged
from stream_app.state.cold_pack import pack, unpack
from tests.unit.scoring.fixtures import config, lead_stream

_names = st.sampled_from(["ad_landing|7d", "page_view|30d", "channel=douyin", "age_days",
                          "recency", "pts|convert", "用户|n", "~x", "a"]) | st.text(max_size=5)
_values = (st.floats(allow_nan=False, allow_infinity=False) | st.integers(-2**53, 2**53)
           | st.booleans() | st.none() | st.text(max_size=4)
           | st.lists(st.integers(0, 9), max_size=2))
_vector = st.dictionaries(_names, _values, max_size=8)


@st.composite
def _blocks(draw):
    """A cold block in the scorer's layout; some entries share one dict, as a scheduled
    snapshot does for every target."""
    pool = draw(st.lists(_vector, min_size=1, max_size=4))
    pick = st.integers(0, len(pool) - 1)
    cps = [[draw(st.integers(0, 2**41)), draw(st.sampled_from(["convert", "renew"])),
            draw(st.text(max_size=6)), pool[draw(pick)], draw(_values), 0.5, "rules"]
           for _ in range(draw(st.integers(0, 4)))]
    sns = {t: [[draw(st.integers(0, 2**41)), pool[draw(pick)]]
               for _ in range(draw(st.integers(0, 3)))]
           for t in draw(st.lists(st.sampled_from(["convert", "at_risk", "renew"]),
                                  unique=True, max_size=3))}
    block = {}
    if cps or draw(st.booleans()):
        block["~cp"] = cps
    if sns or draw(st.booleans()):
        block["~sn"] = sns
    return block


def _entries(block):
    """Every feature dict of a block with where it is."""
    for i, e in enumerate(block.get("~cp") or []):
        yield ("cp", i), e[3]
    for t, v in (block.get("~sn") or {}).items():
        for i, e in enumerate(v):
            yield ("sn", t, i), e[1]


@settings(max_examples=400, deadline=None)
@given(block=_blocks())
def test_a_packed_block_comes_back_exactly(block):
    wire = orjson.dumps(pack(block))
    back = unpack(orjson.loads(wire))
    # the same JSON text: values and their types (1 against 1.0, True), names in order
    assert orjson.dumps(back) == orjson.dumps(block)
    for (where, x), (_, y) in zip(_entries(block), _entries(back), strict=True):
        assert list(x.items()) == list(y.items()), where
    # entries that shared a dict share one again (so packing it again shares it again) ...
    ids = {}
    for (_, x), (_, y) in zip(_entries(block), _entries(back), strict=True):
        ids.setdefault(id(x), set()).add(id(y))
    assert all(len(v) == 1 for v in ids.values())
    # ... and the next write of an untouched block is the same bytes
    assert orjson.dumps(pack(back)) == orjson.dumps(pack(block))


def test_a_block_not_in_the_scorers_layout_is_written_as_it_is():
    odd = {"~cp": [[1, "convert", "g", "not a dict"]], "~sn": {"convert": [[2, {"a": 1}]]}}
    assert pack(odd) is odd
    assert unpack({"~cp": [[1, "t"]]}) == {"~cp": [[1, "t"]]}


def _scored_table(events, packed: bool) -> dict[str, bytes]:
    """The users' records after the scorer ran over ``events`` through the codec."""
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    table: dict[str, bytes] = {}
    for e in events:
        raw = table.get(e.user_id)
        state, cold = decode(raw) if raw else ({}, ColdState())
        state["sc"] = sc.on_event(state.get("sc"), e, cold=cold).sc_state
        table[e.user_id] = encode(state, cold, packed=packed)
    return table


def test_the_scorers_records_are_smaller_and_read_the_same():
    events = lead_stream(200, seed=11)
    packed = _scored_table(events, packed=True)
    plain = _scored_table(events, packed=False)
    assert packed.keys() == plain.keys()
    # the same states, whether tools read the record whole or the worker reads its parts
    for uid in plain:
        assert merged(orjson.loads(packed[uid])) == merged(orjson.loads(plain[uid]))
        a, ca = decode(packed[uid])
        b, cb = decode(plain[uid])
        ca(a.setdefault("sc", {}))
        cb(b.setdefault("sc", {}))
        assert orjson.dumps(a) == orjson.dumps(b)
    # a block of several feature dicts is packed, and smaller; one of one dict is not
    several = [u for u in plain if plain[u].count(b'"age_days"') > 1]
    assert several and all(b'"~x"' in packed[u] and len(packed[u]) < len(plain[u])
                           for u in several)
    assert all(packed[u] == plain[u] for u in plain if plain[u].count(b'"age_days"') == 1)
    assert sum(map(len, packed.values())) < 0.9 * sum(map(len, plain.values()))


def test_a_plain_block_is_read_and_written_packed_once_it_changes():
    x = {"a|7d": 0.6931471805599453, "b|30d": 1.0}
    plain = encode({"nd": 1, "sc": {"sn": {"convert": [[5, x]], "at_risk": [[5, x]]}}},
                   packed=False)
    assert b'"~sn"' in plain and b'"~x"' not in plain
    state, cold = decode(plain)
    assert encode(state, cold) == plain            # untouched: copied back as it was
    cold(state["sc"])
    state["sc"]["sn"]["convert"].append([6, dict(x)])
    rec = encode(state, cold)
    assert b'"~x"' in rec and b'"~sn"' not in rec
    got, cold = decode(rec)
    cold(got["sc"])
    sn = got["sc"]["sn"]
    assert sn == {"convert": [[5, x], [6, x]], "at_risk": [[5, x]]}
    # parsed from the plain block, the two snapshots at 5 were two dicts, and stay two;
    # one dict given to both targets (as the scorer does) is written and read back once
    assert sn["convert"][0][1] is not sn["at_risk"][0][1]
    shared = dict(x)
    sn["convert"][1][1] = sn["at_risk"][0][1] = shared
    cold.loaded = True
    rec2 = encode(got, cold)
    assert rec2.count(b"0.6931471805599453") == 2
    again, cold = decode(rec2)
    cold(again["sc"])
    assert again["sc"]["sn"]["convert"][1][1] is again["sc"]["sn"]["at_risk"][0][1]


def test_a_packed_block_an_earlier_release_kept_in_the_state_goes_back_into_the_block():
    x = {"a|7d": 0.5, "b|30d": 1.0}
    rec = encode({"nd": 2, "sc": {"t0": 1, "cp": [[3, "convert", "d1", x, 0.1, 0.2, "r"]],
                                  "sn": {"convert": [[3, x]], "at_risk": [[3, x]]}}})
    assert b'"~x"' in rec
    # a release before cold_pack merges the block's members into sc by their names as they
    # are, finds no cp/sn, and writes the state back whole (no block)
    theirs = orjson.loads(rec)
    sc = theirs["sc"]
    for k in [k for k in theirs if k.startswith("~") and k != "~c"]:
        sc.setdefault(k, theirs.pop(k))
    del theirs["~c"]
    back, cold = decode(orjson.dumps(theirs))
    assert "~x" in back["sc"] and not cold.raw
    # this release moves them back into the block the next time it writes the state
    rec2 = encode(back, cold)
    state, cold = decode(rec2)
    assert set(state["sc"]) == {"t0"}
    cold(state["sc"])
    assert state["sc"]["cp"] == [[3, "convert", "d1", x, 0.1, 0.2, "r"]]
    assert state["sc"]["sn"] == {"convert": [[3, x]], "at_risk": [[3, x]]}
