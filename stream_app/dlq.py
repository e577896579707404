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
