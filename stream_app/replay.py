"""Read event files (JSON lines, optionally gzip) and produce them to the input topics.

Each line is one event with a ``"stream"`` field naming its input stream (click, study,
order, profile, label). Lines that are not JSON objects with a known stream are counted and
reported with their line numbers, never sent.

Example:
    >>> list(route({"stream": "click", "user_id": "u1", "ts": 1}, _contract()))
    [('events.click', 'u1')]
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from stream_app.contract import Contract, load_contract
from stream_app.errors import ContractError
from stream_app.text import plural


def _contract() -> Contract:
    return load_contract()


def open_lines(path: Path) -> io.TextIOBase | Any:
    """Open ``.jsonl`` or ``.jsonl.gz`` for reading lines (bytes)."""
    if str(path).endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")  # noqa: SIM115


def route(doc: dict[str, Any], contract: Contract) -> Iterator[tuple[str, str]]:
    """Topic and key of one event document; nothing if it has no known stream."""
    stream = doc.get("stream")
    if not isinstance(stream, str):
        return
    try:
        topic = contract.stream_topic(stream)
    except ContractError:
        return
    uid = doc.get("user_id")
    yield topic, uid if isinstance(uid, str) else ""


def skip_reason(doc: Any, contract: Contract) -> str:
    """Why a line cannot be sent (``doc``: the parsed line, None when it is not JSON).

    >>> c = _contract()
    >>> [skip_reason(d, c) for d in (None, [1], {"user_id": "u"}, {"stream": "Click"})]
    ['not JSON', 'not a JSON object', 'no "stream" field', "unknown stream 'Click' (known: \
click, study, order, profile, label, feedback)"]
    """
    if doc is None:
        return "not JSON"
    if not isinstance(doc, dict):
        return "not a JSON object"
    stream = doc.get("stream")
    if stream is None:
        return 'no "stream" field'
    known = [contract.stream_of(t) for t in contract.input_topics()]
    return f"unknown stream {str(stream)[:40]!r} (known: {', '.join(known)})"


@dataclass
class ReplayStats:
    sent: int = 0
    skipped: int = 0
    bad_lines: list[int] = field(default_factory=list)
    #: line number -> why it was skipped (the first ones)
    why: dict[int, str] = field(default_factory=dict)
    first_ts: int | None = None
    last_ts: int | None = None

    def skip(self, n: int, reason: str, keep: int = 20) -> None:
        """Count line ``n`` as skipped for ``reason``."""
        self.skipped += 1
        self.bad_lines.append(n)
        if len(self.why) < keep:
            self.why[n] = reason

    def skipped_text(self) -> str:
        """``; skipped N line(s) (line 3: not JSON, ...)`` or an empty string.

        >>> s = ReplayStats(); s.skip(3, "not JSON"); s.skipped_text()
        '; skipped 1 line (line 3: not JSON)'
        """
        if not self.skipped:
            return ""
        more = ", ..." if self.skipped > len(self.why) else ""
        return (f"; skipped {plural(self.skipped, 'line')} ("
                + ", ".join(f"line {n}: {r}" for n, r in self.why.items()) + more + ")")


def iter_file(path: Path) -> Iterator[tuple[int, bytes, dict[str, Any] | None]]:
    """(line number, raw line, parsed object or None) for each non-blank line."""
    with open_lines(path) as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield n, line, None
                continue
            yield n, line, doc if isinstance(doc, dict) else None


def count_lines(path: Path) -> int:
    with open_lines(path) as fh:
        return sum(1 for _ in fh)
