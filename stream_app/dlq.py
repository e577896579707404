"""Dead-letter records: the reason, the source position and the original bytes.

Example:
    >>> rec = dead_letter(b"\\xff garbage", "bad_json", "not JSON", "events.click", 2, 17,
    ...                   key=b"u1", now_ms=1)
    >>> rec["reason"], rec["source_partition"], base64.b64decode(rec["value_b64"])
    ('bad_json', 2, b'\\xff garbage')
"""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson


def _b64(data: bytes | str | None) -> str | None:
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return base64.b64encode(data).decode("ascii")


def dead_letter(value: bytes | str | None, reason: str, detail: str, topic: str, partition: int,
                offset: int, *, key: bytes | str | None = None,
                now_ms: int | None = None) -> dict[str, Any]:
    """Build a record for ``events.dlq`` (topics/schemas/dlq.schema.json)."""
    return {
        "reason": reason,
        "detail": detail[:500],
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "key_b64": _b64(key),
        "value_b64": _b64(value) or "",
        "ts": int(time.time() * 1000) if now_ms is None else now_ms,
    }


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def original(rec: dict[str, Any]) -> tuple[bytes | None, bytes]:
    """The dead-lettered record's original key and value bytes.

    >>> original(dead_letter(b'{"a":1}', "schema", "x", "events.click", 0, 3, key=b"u1"))
    (b'u1', b'{"a":1}')
    """
    return _unb64(rec.get("key_b64")), _unb64(rec.get("value_b64")) or b""


def replay_doc(rec: dict[str, Any], streams: dict[str, str]) -> dict[str, Any] | None:
    """The dead-lettered event as a line of ``stream-app replay`` (its original JSON object
    with the ``stream`` of the topic it came from), or None when the original is not a JSON
    object or came from no input topic (``streams``: input topic -> stream).

    >>> rec = dead_letter(b'{"user_id":"u1","ts":"garbage"}', "bad_ts", "x", "events.click",
    ...                   0, 3)
    >>> replay_doc(rec, {"events.click": "click"})
    {'user_id': 'u1', 'ts': 'garbage', 'stream': 'click'}
    >>> replay_doc(dead_letter(b"\\xff", "bad_json", "x", "events.click", 0, 4),
    ...            {"events.click": "click"}) is None
    True
    """
    stream = streams.get(rec.get("source_topic", ""))
    if stream is None:
        return None
    try:
        doc = orjson.loads(original(rec)[1])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    doc["stream"] = stream
    return doc


def describe(rec: dict[str, Any], width: int = 100) -> str:
    """One line of ``stream-app dlq show``: when, reason, where it came from, the detail and
    the start of the original value (as text; undecodable bytes escaped).

    >>> print(describe(dead_letter(b'{"ts":"garbage"}', "bad_ts", "ts 'garbage' is not a "
    ...       "time", "events.click", 2, 17, now_ms=1_764_900_000_000)))
    2025-12-05 02:00:00Z  bad_ts  events.click[2]@17  ts 'garbage' is not a time
        value: {"ts":"garbage"}
    """
    when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(rec.get("ts", 0) / 1000))
    value = original(rec)[1].decode("utf-8", "backslashreplace")
    if len(value) > width:
        value = value[:width] + f"... ({len(value):,} characters)"
    return (f"{when}  {rec.get('reason')}  {rec.get('source_topic')}"
            f"[{rec.get('source_partition')}]@{rec.get('source_offset')}  "
            f"{rec.get('detail', '')}\n    value: {value}")
