"""Segment export: rows of members with chosen tag values, rendered as CSV or JSON Lines.

A page of user ids (from :meth:`SegmentRunner.page`) becomes rows by one pipelined
``HMGET`` per user of the requested ``tag:<id>`` fields; :func:`render` writes them.
Every CSV page is a complete document with its header; JSON Lines pages concatenate.

CSV pages are meant to be opened in spreadsheets, so a text cell a spreadsheet would run as
a formula (first character ``=``, ``+``, ``-``, ``@``, tab or carriage return: OWASP "CSV
injection") gets a leading ``'``, as does a text cell already starting with ``'`` (so the
rule is reversible: drop the first character of a cell starting with ``'``). Numbers and
booleans are written as they are; JSON Lines keep every value exact.

Example:
    >>> rows = [{"user_id": "u1", "tags": {"activity": "high", "categories_bought": ["a", "b"]}},
    ...         {"user_id": "u2", "tags": {"activity": None, "categories_bought": None}}]
    >>> print(render(rows, ["activity", "categories_bought"], "csv").decode(), end="")
    user_id,activity,categories_bought
    u1,high,a|b
    u2,,
    >>> bad = [{"user_id": "=1+1", "tags": {"activity": '=HYPERLINK("http://x")',
    ...                                      "categories_bought": -5}}]
    >>> print(render(bad, ["activity", "categories_bought"], "csv").decode(), end="")
    user_id,activity,categories_bought
    '=1+1,"'=HYPERLINK(""http://x"")",-5
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


#: first characters that make a spreadsheet read a text cell as a formula (OWASP), and the
#: quote itself (so that a leading quote always means "added by the export")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def cell(value: Any) -> str:
    """CSV text of a tag value (lists joined by ``|``, booleans ``true``/``false``); a text
    cell starting with a :data:`FORMULA_START` character gets a leading ``'``.

    >>> cell(-5), cell(2.5), cell(True), cell(["a", "b"]), cell(None)
    ('-5', '2.5', 'true', 'a|b', '')
    >>> cell("-5"), cell("@SUM(A1)"), cell(["=x", "y"]), cell("'q"), cell("a=b")
    ("'-5", "'@SUM(A1)", "'=x|y", "''q", 'a=b')
    """
    return neutralise(_plain(value)) if isinstance(value, str | list | tuple) else _plain(value)


def neutralise(text: str) -> str:
    r"""``text`` with a leading ``'`` when a spreadsheet would run it as a formula.

    >>> neutralise("=HYPERLINK(1)"), neutralise("\tx"), neutralise("douyin")
    ("'=HYPERLINK(1)", "'\tx", 'douyin')
    """
    return "'" + text if text.startswith(FORMULA_START) else text


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "|".join(_plain(v) for v in value)
    return str(value)


def render(rows: list[dict[str, Any]], fields: list[str], fmt: str) -> bytes:
    """CSV (header + one line per user; text cells neutralised, see :func:`cell`) or JSON
    Lines of ``rows``."""
    if fmt == "jsonl":
        return b"".join(orjson.dumps(r) + b"\n" for r in rows)
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r}; use csv or jsonl")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    # the writer quotes cells holding its line terminator "\n" but not a lone "\r", which
    # readers take as a line break: a row holding one is written fully quoted
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    w.writerow(["user_id", *fields])
    for r in rows:
        tags = r.get("tags", {})
        line = [neutralise(r["user_id"]), *(cell(tags.get(f)) for f in fields)]
        (quoted if any("\r" in c for c in line) else w).writerow(line)
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
