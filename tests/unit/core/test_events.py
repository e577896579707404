"""Event parsing and validation: every bad input has its DLQ reason."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.errors import EventError
from stream_app.events import parse_event, parse_ts

GOOD = {"event_id": "e1", "user_id": "u1", "ts": "2024-05-01T10:00:00+08:00",
        "type": "course_view", "props": {"channel": "douyin", "amount": 9.9, "tags": ["a", 1]}}


def reason(raw) -> str:
    with pytest.raises(EventError) as info:
        parse_event(raw, "click", max_bytes=2048)
    return info.value.reason


def test_good_event_parses_with_defaults():
    ev = parse_event(orjson.dumps(GOOD), "click")
    assert (ev.user_id, ev.ts, ev.type, ev.tenant) == ("u1", 1714528800000, "course_view",
                                                       "default")
    assert ev.props["channel"] == "douyin"
    assert parse_event(orjson.dumps({**GOOD, "tenant": "acme"}), "click").tenant == "acme"


@pytest.mark.parametrize(("raw", "expected"), [
    (b"garbage", "bad_json"),
    (b"\xff\xfe{}", "bad_json"),
    (b'{"a": NaN}', "bad_json"),
    (b"[1, 2]", "not_object"),
    (b"null", "not_object"),
    (orjson.dumps({**GOOD, "user_id": ""}), "missing_user_id"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "user_id"}), "missing_user_id"),
    (orjson.dumps({**GOOD, "user_id": 7}), "missing_user_id"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "event_id"}), "schema"),
    (orjson.dumps({**GOOD, "props": {"deep": {"a": {"b": 1}}}}), "schema"),
    (orjson.dumps({**GOOD, "type": "has space"}), "schema"),
    (orjson.dumps({**GOOD, "ts": "not-a-date-at-all"}), "bad_ts"),
    (orjson.dumps({**GOOD, "ts": "2024-05-01T10:00:00"}), "bad_ts"),
    (orjson.dumps({**GOOD, "ts": "9999-01-01T00:00:00+00:00"}), "ts_out_of_range"),
    (orjson.dumps({**GOOD, "ts": 5}), "ts_out_of_range"),
    (orjson.dumps({**GOOD, "props": {"x": "y" * 3000}}), "too_large"),
])
def test_bad_input_reasons(raw, expected):
    assert reason(raw) == expected


def test_epoch_and_iso_agree():
    assert parse_ts("2024-05-01T02:00:00Z") == parse_ts(1714528800000)
    with pytest.raises(EventError):
        parse_ts(True)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False)
                              | st.text(max_size=20) | st.integers(-(2**63), 2**63 - 1),
                              lambda c: st.lists(c, max_size=4)
                              | st.dictionaries(st.text(max_size=8), c, max_size=4),
                              max_leaves=20).map(orjson.dumps)))
def test_fuzz_never_raises_anything_but_event_error(raw):
    """Hostile payloads either parse or raise EventError with a reason (never anything else)."""
    try:
        ev = parse_event(raw, "click")
    except EventError as exc:
        assert exc.reason in {"bad_json", "not_object", "schema", "missing_user_id", "bad_ts",
                              "ts_out_of_range", "too_large"}
    else:
        assert ev.user_id and isinstance(ev.ts, int)
