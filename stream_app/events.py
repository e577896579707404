"""Input events: the envelope, parsing and validation.

Every input record is turned into an :class:`Event` or rejected with an
:class:`~stream_app.errors.EventError` whose ``reason`` becomes the dead-letter reason:

``too_large``, ``bad_json``, ``not_object``, ``schema``, ``missing_user_id``, ``bad_ts``,
``ts_out_of_range``.

Example:
    >>> raw = b'{"event_id":"e1","user_id":"u1","ts":"2024-05-01T10:00:00+08:00",'
    >>> raw += b'"type":"course_view","props":{}}'
    >>> ev = parse_event(raw, "click")
    >>> ev.user_id, ev.ts, ev.tenant, ev.stream
    ('u1', 1714528800000, 'default', 'click')
    >>> parse_event(b"garbage", "click")
    Traceback (most recent call last):
    ...
    stream_app.errors.EventError: bad_json: unexpected character...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import fastjsonschema
import orjson

from stream_app.contract import load_contract
from stream_app.errors import EventError

#: accepted event-time range: 2000-01-01 .. 2100-01-01 (ms)
TS_MIN_MS = 946_684_800_000
TS_MAX_MS = 4_102_444_800_000
DEFAULT_MAX_BYTES = 64 * 1024


@dataclass(slots=True)
class Event:
    """A validated input event. ``ts`` is event time in epoch milliseconds."""

    event_id: str
    user_id: str
    ts: int
    type: str
    stream: str
    tenant: str = "default"
    props: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with ``ts`` in epoch ms (round-trips through parse_event)."""
        return {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "ts": self.ts,
            "type": self.type,
            "stream": self.stream,
            "tenant": self.tenant,
            "props": self.props,
        }


_validator = None


def _validate(doc: dict[str, Any]) -> None:
    global _validator
    if _validator is None:
        _validator = fastjsonschema.compile(load_contract().schema("events.click"))
    _validator(doc)


def parse_ts(value: Any) -> int:
    """Event time to epoch ms: an ISO-8601 string with offset, or epoch ms.

    >>> parse_ts("2024-05-01T10:00:00+08:00"), parse_ts("2024-05-01T02:00:00Z")
    (1714528800000, 1714528800000)
    >>> parse_ts(1714528800000)
    1714528800000
    """
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
    if not TS_MIN_MS <= ms < TS_MAX_MS:
        raise EventError("ts_out_of_range", f"ts {value!r} is outside 2000..2100")
    return ms


def parse_event(raw: bytes | str | dict[str, Any], stream: str, *,
                max_bytes: int = DEFAULT_MAX_BYTES) -> Event:
    """Decode and validate one record of input ``stream``; raise EventError on bad input."""
    if isinstance(raw, dict):
        doc: Any = raw
    else:
        if raw is None:
            raise EventError("bad_json", "empty record (null value)")
        if len(raw) > max_bytes:
            raise EventError("too_large", f"{len(raw)} bytes > limit {max_bytes}")
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EventError("bad_json", str(exc)[:200]) from None
    if not isinstance(doc, dict):
        raise EventError("not_object", f"value is a JSON {type(doc).__name__}, not an object")
    if not doc.get("user_id") or not isinstance(doc.get("user_id"), str):
        raise EventError("missing_user_id", "user_id is missing, empty or not a string")
    try:
        _validate(doc)
    except fastjsonschema.JsonSchemaException as exc:
        raise EventError("schema", str(exc.message)[:300]) from None
    ts = parse_ts(doc["ts"])
    return Event(
        event_id=doc["event_id"],
        user_id=doc["user_id"],
        ts=ts,
        type=doc["type"],
        stream=stream,
        tenant=doc.get("tenant") or "default",
        props=doc.get("props") or {},
    )
