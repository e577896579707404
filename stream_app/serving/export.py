"""Segment export: rows of members with chosen tag values, rendered as CSV or JSON Lines.

A page of user ids (from :meth:`SegmentRunner.page`) becomes rows by one pipelined
``HMGET`` per user of the requested ``tag:<id>`` fields; :func:`render` writes them.
Every CSV page is a complete document with its header; JSON Lines pages concatenate.

Example:
    >>> rows = [{"user_id": "u1", "tags": {"activity": "high", "categories_bought": ["a", "b"]}},
    ...         {"user_id": "u2", "tags": {"activity": None, "categories_bought": None}}]
    >>> print(render(rows, ["activity", "categories_bought"], "csv").decode(), end="")
    user_id,activity,categories_bought
    u1,high,a|b
    u2,,
    >>> print(render(rows[:1], ["activity"], "jsonl").decode(), end="")
    {"user_id":"u1","tags":{"activity":"high","categories_bought":["a","b"]}}
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from stream_app.serving import keys

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def cell(value: Any) -> str:
    """CSV text of a tag value (lists joined by ``|``, booleans ``true``/``false``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "|".join(cell(v) for v in value)
    return str(value)


def render(rows: list[dict[str, Any]], fields: list[str], fmt: str) -> bytes:
    """CSV (header + one line per user) or JSON Lines of ``rows``."""
    if fmt == "jsonl":
        return b"".join(orjson.dumps(r) + b"\n" for r in rows)
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r}; use csv or jsonl")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["user_id", *fields])
    for r in rows:
        tags = r.get("tags", {})
        w.writerow([r["user_id"], *(cell(tags.get(f)) for f in fields)])
    return buf.getvalue().encode()


async def fetch_rows(r: Any, tenant: str, members: list[str],
                     fields: list[str]) -> list[dict[str, Any]]:
    """Rows ``{"user_id", "tags": {field: value or None}}`` for ``members`` (one pipeline)."""
    if not fields:
        return [{"user_id": m, "tags": {}} for m in members]
    pipe = r.pipeline(transaction=False)
    names = [f"tag:{f}" for f in fields]
    for m in members:
        pipe.hmget(keys.user_key(tenant, m), names)
    out = await pipe.execute()
    rows = []
    for m, vals in zip(members, out, strict=True):
        rows.append({"user_id": m, "tags": {f: (orjson.loads(v) if v is not None else None)
                                            for f, v in zip(fields, vals, strict=True)}})
    return rows
