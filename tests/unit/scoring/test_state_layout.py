"""The scoring state's layout: packed feature vectors (v2), and v1 states still load."""

from __future__ import annotations

import math
import random
from typing import Any

import orjson

from stream_app.scoring.packed import pack, unpack
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer, upgrade_state
from tests.unit.scoring.fixtures import config, lead_stream


def test_pack_round_trips_bit_for_bit() -> None:
    rng = random.Random(11)
    tiny = 5e-324
    x = {f"f{i}": rng.choice([rng.random(), -rng.random() * 1e300, 0.0, -0.0, tiny, 1.0])
         for i in range(200)}
    back = unpack(orjson.loads(orjson.dumps(pack(x))))
    assert list(back) == list(x)
    assert all(math.copysign(1, back[k]) == math.copysign(1, v) and back[k] == v
               for k, v in x.items())


def test_vectors_a_json_round_trip_would_change_stay_dicts() -> None:
    for bad in (float("nan"), float("inf"), 3, True, None):
        x = {"a": 1.0, "b": bad}
        assert pack(x) is x and unpack(pack(x)) is x
    assert pack({}) == {}


def _v1(st: dict[str, Any]) -> dict[str, Any]:
    """A state as the version-1 code wrote it: feature vectors as dicts."""
    st = orjson.loads(orjson.dumps(st))
    st["v"] = 1
    for snaps in (st.get("sn") or {}).values():
        for snap in snaps:
            snap[1] = unpack(snap[1])
    for cp in st.get("cp") or ():
        cp[3] = unpack(cp[3])
    return st


def _outputs(s: Any) -> bytes:
    return orjson.dumps([s.scores, s.layers, s.source, s.training, s.checkpoints, s.alerts])


def test_states_of_the_v1_layout_load_and_continue_alike() -> None:
    """Halfway through a stream, one scorer's users are restored from v1 states (a changelog
    written by the older code): every output after that, and every final state, is the same
    as the scorer that kept its v2 states."""
    cfg = config()
    events = lead_stream(400, seed=5)
    a, b = Scorer(cfg, ModelRegistry(cfg)), Scorer(cfg, ModelRegistry(cfg))
    sa: dict[str, bytes] = {}
    sb: dict[str, bytes] = {}
    half = len(events) // 2
    packed = 0
    for i, e in enumerate(events):
        if i == half:
            packed = sum(b'"sn"' in v or b'"cp"' in v for v in sa.values())
            sb = {u: orjson.dumps(_v1(orjson.loads(v))) for u, v in sa.items()}
            assert all(orjson.loads(v)["v"] == 1 for v in sb.values())
        ra = sa.get(e.user_id)
        rb = sb.get(e.user_id)
        out_a = a.on_event(orjson.loads(ra) if ra else None, e)
        out_b = b.on_event(orjson.loads(rb) if rb else None, e)
        assert _outputs(out_a) == _outputs(out_b)
        sa[e.user_id] = orjson.dumps(out_a.sc_state)
        sb[e.user_id] = orjson.dumps(out_b.sc_state)
    assert packed > 0
    touched = {e.user_id for e in events[half:]}
    assert all(sa[u] == sb[u] for u in touched)     # upgraded on read: the same bytes
    assert {u: _v1(orjson.loads(v)) for u, v in sa.items()} == {
        u: _v1(orjson.loads(v)) for u, v in sb.items()}   # the others: still v1, same content


def test_upgrade_keeps_vectors_and_is_idempotent() -> None:
    x = {"a|n": 0.25, "pts|convert": 1.5}
    st = {"v": 1, "sn": {"convert": [[1, dict(x)], [2, dict(x)]]},
          "cp": [[3, "convert", "g", dict(x), None, 0.0, "rules"]]}
    upgrade_state(st)
    again = orjson.loads(orjson.dumps(st))
    upgrade_state(again)
    assert again == orjson.loads(orjson.dumps(st)) and st["v"] == 2
    assert [unpack(s[1]) for s in st["sn"]["convert"]] == [x, x] and unpack(st["cp"][0][3]) == x
