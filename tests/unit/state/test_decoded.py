"""The parsed-state cache (``stream_app.state.decoded.DecodedStates``) against a model: a
kept state is handed out once, only for the very bytes object it was encoded to, and the
oldest user goes past the bound."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.state.codec import decode, encode
from stream_app.state.decoded import DecodedStates

USERS = st.sampled_from(["a", "b", "c", "d", "e"])
OPS = st.lists(st.tuples(st.sampled_from(["keep", "take", "take_other", "discard"]), USERS),
               max_size=60)


@settings(max_examples=300, deadline=None)
@given(size=st.integers(min_value=0, max_value=4), ops=OPS)
def test_it_behaves_like_a_bounded_lru_of_identities(size: int, ops: list) -> None:
    kept = DecodedStates(size)
    model: dict[str, tuple[bytes, dict]] = {}      # oldest first
    stored: dict[str, bytes] = {}
    for i, (op, user) in enumerate(ops):
        if op == "keep":
            state = {"nd": i, "user": user}
            raw = stored[user] = encode(state)
            kept.keep(user, raw, state, None)
            if size:
                model.pop(user, None)
                model[user] = (raw, state)
                if len(model) > size:
                    del model[next(iter(model))]
        elif op in ("take", "take_other"):
            raw = stored.get(user, b"{}")
            if op == "take_other":        # equal bytes, another object (e.g. a restore)
                raw = bytes(bytearray(raw))
            got = kept.take(user, raw)
            want = model.pop(user, None)
            if want is not None and want[0] is raw:
                assert got is not None and got[0] is want[1]
            else:
                assert got is None
        else:
            kept.discard(user)
            model.pop(user, None)
        assert list(kept) == list(model)


def test_a_state_taken_and_changed_without_a_write_is_not_handed_out_again() -> None:
    kept = DecodedStates(8)
    state = {"nd": 1, "tags": {}}
    raw = encode(state)
    kept.keep("u", raw, state, None)
    got, _ = kept.take("u", raw)
    got["tags"]["hot"] = True                # a step that then failed, or wrote nothing
    assert kept.take("u", raw) is None        # the next read parses the stored record
    assert decode(raw)[0] == {"nd": 1, "tags": {}}
    assert (kept.hits, kept.misses) == (1, 1)


def test_size_zero_keeps_nothing() -> None:
    kept = DecodedStates(0)
    raw = encode({"nd": 1})
    kept.keep("u", raw, {"nd": 1}, None)
    assert len(kept) == 0 and kept.take("u", raw) is None
