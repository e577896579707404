"""parse_event's fast path accepts nothing that fastjsonschema rejects, and changes no outcome.

The oracle is the parse_event of before the fast path (every record through fastjsonschema,
the Event built by keywords), kept here as :func:`reference_parse`. Each test compares the
whole outcome: the Event's fields and their types, or the error's reason and detail.

The one intended change: a ``ts`` the schema rejects is ``bad_ts`` (it was ``schema``, while
the same kind of value caught by parse_ts, and by the evaluate reader that skips the schema,
was ``bad_ts``); the reference does the same, and :func:`assert_same` also checks that the
fast path and the schema-only path give equal outcomes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import fastjsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app import events
from stream_app.contract import load_contract
from stream_app.errors import EventError
from stream_app.events import Event, parse_event, parse_ts

SCHEMA = load_contract().schema("events.click")
VALIDATOR = fastjsonschema.compile(SCHEMA)
BASE = {"event_id": "s42-0-0", "user_id": "u0000000", "ts": 1772381222099,
        "type": "ad_landing", "tenant": "default", "stream": "click",
        "props": {"channel": "baidu_sem", "campaign": "sem_brand", "n": 3, "ok": True}}


def reference_ts(value: Any) -> int:
    """parse_ts before the fast path."""
    if isinstance(value, bool):
        raise EventError("bad_ts", f"ts {value!r} is not a time")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise EventError("bad_ts", f"ts {value[:40]!r} is not ISO-8601 or epoch ms") from None
        if dt.tzinfo is None:
            raise EventError("bad_ts", f"ts {value[:40]!r} has no UTC offset")
        ms = int(dt.timestamp() * 1000)
    else:
        raise EventError("bad_ts", f"ts of type {type(value).__name__} is not a time")
    if not events.TS_MIN_MS <= ms < events.TS_MAX_MS:
        raise EventError("ts_out_of_range", f"ts {value!r} is outside 2000..2100")
    return ms


def reference_parse(raw: Any, stream: str) -> Event:
    """parse_event before the fast path: every record through fastjsonschema."""
    if isinstance(raw, dict):
        doc: Any = raw
    else:
        if raw is None:
            raise EventError("bad_json", "empty record (null value)")
        if len(raw) > events.DEFAULT_MAX_BYTES:
            raise EventError("too_large", f"{len(raw)} bytes > limit {events.DEFAULT_MAX_BYTES}")
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EventError("bad_json", str(exc)[:200]) from None
    if not isinstance(doc, dict):
        kind = events._JSON_KIND.get(type(doc), "value")
        raise EventError("not_object", f"value is a JSON {kind}, not an object")
    if not doc.get("user_id") or not isinstance(doc.get("user_id"), str):
        raise EventError("missing_user_id", "user_id is missing, empty or not a string")
    try:
        VALIDATOR(doc)
    except fastjsonschema.JsonSchemaException as exc:
        # (session 27) the detail leads with what broke, in words (events._what_broke)
        what = events._what_broke(exc.name or "", doc)
        detail = (f"{what} ({exc.message})" if what else str(exc.message))[:300]
        if exc.name != "data.ts":
            raise EventError("schema", detail) from None
        try:   # a ts the schema rejects: bad_ts, in parse_ts's words where it has some
            reference_ts(doc["ts"])
        except EventError as ts_exc:
            if ts_exc.reason == "bad_ts":
                raise ts_exc from None
        raise EventError("bad_ts", detail) from None
    return Event(event_id=doc["event_id"], user_id=doc["user_id"], ts=reference_ts(doc["ts"]),
                 type=doc["type"], stream=stream, tenant=doc.get("tenant") or "default",
                 props=doc.get("props") or {})


def outcome(parse: Any, raw: Any) -> tuple[Any, ...]:
    """What the worker would do with ``raw``: the Event's fields (with their types), or the
    error's reason and detail (the dead-letter record), or another exception's text."""
    try:
        ev = parse(raw, "click")
    except EventError as exc:
        return ("error", exc.reason, exc.detail)
    except Exception as exc:  # noqa: BLE001 - the worker's "invalid" dead letter
        return ("other", type(exc).__name__, str(exc))
    fields = ev.to_dict()
    return ("ok", repr(fields), tuple(type(v) for v in fields.values()))


def encode(doc: Any) -> bytes:
    """JSON bytes of ``doc`` (stdlib json where orjson refuses integers beyond 64 bits)."""
    try:
        return orjson.dumps(doc)
    except TypeError:
        return json.dumps(doc, ensure_ascii=False).encode()


def schema_only_parse(raw: Any, stream: str) -> Event:
    """parse_event with the fast path off: every record through fastjsonschema."""
    was = events._fast_path
    events._fast_path = False
    try:
        return parse_event(raw, stream)
    finally:
        events._fast_path = was


def assert_same(doc: Any) -> None:
    """Bytes and dict input give the reference outcome, the same (reason, detail, Event) on
    the fast path and the schema-only path; an accepted doc is schema-valid."""
    parse_event(orjson.dumps(BASE), "click")   # the validator (and the fast path) loaded
    raw = encode(doc)
    assert outcome(parse_event, raw) == outcome(reference_parse, raw)
    assert outcome(parse_event, doc) == outcome(reference_parse, doc)
    assert outcome(parse_event, raw) == outcome(schema_only_parse, raw)
    if isinstance(doc, dict) and events._surely_valid(doc):
        VALIDATOR(doc)   # raises if the fast path accepted what the schema rejects


def test_fast_path_is_on_for_the_contract_schema():
    """The fast path encodes this schema's rules; a changed schema must be re-checked."""
    assert events.schema_digest(SCHEMA) == events.FAST_PATH_SCHEMA_SHA256, (
        "topics/schemas/event.schema.json changed: check events._surely_valid against it, "
        "then set FAST_PATH_SCHEMA_SHA256 to the new digest")
    parse_event(orjson.dumps(BASE), "click")
    assert events._fast_path and events._surely_valid(dict(BASE))


def test_fast_path_off_for_another_schema(monkeypatch):
    """Any other schema: every record goes through fastjsonschema."""
    monkeypatch.setattr(events, "FAST_PATH_SCHEMA_SHA256", "0" * 64)
    monkeypatch.setattr(events, "_validator", None)
    monkeypatch.setattr(events, "_fast_path", False)
    assert parse_event(orjson.dumps(BASE), "click").user_id == "u0000000"
    assert events._validator is not None and not events._fast_path


def test_workload_shaped_records_take_the_fast_path():
    for doc in (BASE, {**BASE, "ts": "2024-05-01T10:00:00+08:00"},
                {**BASE, "props": {"tags": ["a", 1, None, 2.5, False]}},
                {k: v for k, v in BASE.items() if k not in ("tenant", "stream", "props")}):
        assert events._surely_valid(orjson.loads(orjson.dumps(doc))), doc
        assert_same(doc)


@pytest.mark.parametrize("change", [
    {"type": "page_view\n"}, {"tenant": "acme\n"}, {"type": "a b"}, {"tenant": "a.b"},
    {"type": "é"}, {"type": "x" * 65}, {"tenant": "x" * 65}, {"type": ""}, {"tenant": ""},
    {"tenant": None}, {"props": None}, {"props": []}, {"stream": None}, {"stream": "x" * 33},
    {"event_id": ""}, {"event_id": "x" * 129}, {"user_id": "x" * 129}, {"ts": True},
    {"ts": 1714528800000.0}, {"ts": 1.5}, {"ts": "2024-05-0"}, {"ts": "x" * 41}, {"ts": None},
    {"ts": 2**70}, {"props": {"x" * 65: 1}}, {"props": {"a": "x" * 2049}},
    {"props": {"a": ["x" * 257]}}, {"props": {"a": list(range(65))}}, {"props": {"a": [[1]]}},
    {"props": {"a": {"b": 1}}}, {"props": {f"k{i}": i for i in range(65)}},
    {"props": {"a": (1, 2)}}, {"props": {"a": ({"b": 1},)}}, {"props": {"a": ("x" * 257,)}},
    {"extra": {"deep": [{"x": 1}]}},
])
def test_boundary_cases_match_the_reference(change):
    assert_same({**BASE, **change})


BAD_TS = ["2024-05-0", "garbage!!", "x" * 41, "2024-05-01", True, 1.5, 1714528800000.0, None,
          [1], {"ms": 1}]


@pytest.mark.parametrize("ts", BAD_TS)
def test_a_bad_ts_is_bad_ts_on_every_path(ts, tmp_path):
    """Same record, same dead-letter reason: parse_event's fast path, its schema-only path and
    the evaluate reader with and without --validate (a ts the schema caught was ``schema``
    on the first two and ``bad_ts`` on the reader that skips the schema)."""
    from stream_app.scoring.evaluate import read_events

    doc = {**BASE, "ts": ts}
    raw = orjson.dumps(doc)
    reasons = {outcome(parse_event, raw)[1], outcome(parse_event, doc)[1],
               outcome(schema_only_parse, raw)[1]}
    path = tmp_path / "ev.jsonl"
    path.write_bytes(raw + b"\n")
    for validate in (False, True):
        with pytest.raises(EventError) as exc:
            list(read_events(path, validate=validate))
        reasons.add(exc.value.reason)
    assert reasons == {"bad_ts"}


def test_a_missing_ts_stays_schema():
    doc = {k: v for k, v in BASE.items() if k != "ts"}
    assert outcome(parse_event, doc)[:2] == outcome(schema_only_parse, doc)[:2] == (
        "error", "schema")


def test_names_remembered_only_when_valid():
    """The type/tenant memo must never hold a value the pattern rejects."""
    for bad in ("page_view\n", "a b", "x" * 65):
        assert_same({**BASE, "type": bad, "tenant": bad})
    assert all(events._TYPE_NAME(t) and len(t) <= 64 for t in events._GOOD_TYPES)
    assert all(events._TENANT_NAME(t) and len(t) <= 64 for t in events._GOOD_TENANTS)


class StrSub(str):
    """A str subclass (dict input only): must take the slow path."""


class DictSub(dict):
    """A dict subclass (dict input only)."""


@pytest.mark.parametrize("doc", [
    {**BASE, "type": StrSub("page_view")}, {**BASE, "user_id": StrSub("u1")},
    {**BASE, "props": DictSub(a=1)}, {**BASE, "props": {StrSub("k"): 1}}, {**BASE, "props": {1: 1}},
])
def test_dict_input_with_subclasses_matches_the_reference(doc):
    assert_same(doc)


# -- fuzzing: mutated records around the schema's edges -------------------------------------

def sized_text(sizes: list[int], alphabet: str | None = None) -> st.SearchStrategy[str]:
    """Strings with lengths at and around the schema's limits."""
    chars = st.sampled_from(alphabet) if alphabet else st.characters(codec="utf-8")
    return st.sampled_from(sizes).flatmap(
        lambda n: st.text(chars, min_size=n, max_size=n) | st.just("x" * n))


NAME_CHARS = "AZaz09_.:- \n/é"
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([0.0, 1.0, 1714528800000.0, 946684800000, 4102444800000])
           | sized_text([0, 1, 5, 255, 256, 257]))
PROP_VALUES = (SCALARS | sized_text([2047, 2048, 2049])
               | st.lists(SCALARS, max_size=3) | st.lists(st.integers(), min_size=63, max_size=66)
               | st.lists(st.lists(SCALARS, max_size=2), min_size=1, max_size=2)
               | st.dictionaries(st.text(max_size=3), SCALARS, max_size=2))
PROPS = (st.dictionaries(sized_text([0, 3, 64, 65]) | st.sampled_from(["channel", "phone"]),
                         PROP_VALUES, max_size=6)
         | st.integers(60, 66).map(lambda n: {f"k{i}": i for i in range(n)})
         | st.none() | st.lists(SCALARS, max_size=2) | SCALARS)
FIELD_VALUES = {
    "event_id": sized_text([0, 1, 128, 129]) | SCALARS,
    "user_id": sized_text([0, 1, 128, 129]) | SCALARS,
    "ts": (st.integers(-(2**70), 2**70) | st.integers(946684800000 - 2, 4102444800000 + 2)
           | sized_text([9, 10, 25, 40, 41])
           | st.sampled_from(["2024-05-01T10:00:00+08:00", "2024-05-01T10:00:00",
                              "2024-05-01", "20240501T100000Z", "2024-05-01T10:00:00.5+00:00"])
           | SCALARS | st.lists(SCALARS, max_size=1)),
    "type": sized_text([0, 1, 5, 64, 65], NAME_CHARS) | sized_text([1, 5]) | SCALARS,
    "tenant": sized_text([0, 1, 7, 64, 65], NAME_CHARS) | st.just("default") | SCALARS,
    "stream": sized_text([0, 5, 32, 33]) | SCALARS,
    "props": PROPS,
    "extra": PROP_VALUES | st.dictionaries(st.text(max_size=3), PROP_VALUES, max_size=2),
}


@st.composite
def mutated_records(draw: st.DrawFn) -> Any:
    """A workload-shaped record with fields changed, removed or added."""
    doc: dict[str, Any] = dict(BASE)
    for name in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=4)):
        if draw(st.integers(0, 4)) == 0:
            doc.pop(name, None)
        else:
            doc[name] = draw(FIELD_VALUES[name])
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from([[doc], "text", 1, None]))
    return doc


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_records())
def test_fuzzed_records_match_the_reference(doc):
    assert_same(doc)


@settings(max_examples=500, deadline=None)
@given(st.integers(-(2**70), 2**70) | st.integers(946684800000 - 2, 4102444800000 + 2)
       | st.booleans() | st.floats() | st.text(max_size=30) | st.none())
def test_parse_ts_matches_the_reference(value):
    def call(f: Any) -> Any:
        try:
            ms = f(value)
        except EventError as exc:
            return exc.reason, exc.detail
        return ms, type(ms)
    assert call(parse_ts) == call(reference_ts)
