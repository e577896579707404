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


#: the UTF-8 byte-order mark Windows tools (Excel, Notepad, many editors) put first in a file
UTF8_BOM = b"\xef\xbb\xbf"


def iter_file(path: Path) -> Iterator[tuple[int, bytes, Any]]:
    """(line number, raw line, parsed JSON value or None when it is not JSON) for each
    non-blank line (a JSON value that is not an object is yielded as is: :func:`skip_reason`
    says "not a JSON object"). A UTF-8 byte-order mark before the first line is not part of
    it (the raw line is sent without it)."""
    with open_lines(path) as fh:
        for n, line in enumerate(fh, 1):
            line = (line.removeprefix(UTF8_BOM) if n == 1 else line).strip()
            if not line:
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield n, line, None
                continue
            yield n, line, doc


def count_lines(path: Path) -> int:
    """Lines of ``path`` (``.gz`` read through)."""
    with open_lines(path) as fh:
        return sum(1 for _ in fh)


#: delivery errors that refuse the record itself: sending it again would fail again, so its
#: line is skipped (reported), not left to resume from
REFUSED_ERRORS = frozenset({"MSG_SIZE_TOO_LARGE", "INVALID_MSG", "CORRUPT_MESSAGE",
                            "INVALID_RECORD", "INVALID_MSG_SIZE", "_MSG_SIZE_TOO_LARGE",
                            "_INVALID_ARG", "TOPIC_AUTHORIZATION_FAILED",
                            "UNKNOWN_TOPIC_OR_PART", "INVALID_TOPIC_EXCEPTION"})


class Deliveries:
    """The producer's delivery reports of a replay, by line number: what was delivered is
    counted when the broker acknowledged it (never at the produce call), a record the broker
    refused for itself (too large, ...) is a skipped line of ``stats``, and what is still in
    flight or failed otherwise (broker unreachable, timed out) is where to resume from.

    Example:
        >>> stats = ReplayStats()
        >>> d = Deliveries(stats, reason_of=lambda n, err: f"refused: {err}")
        >>> for n in (1, 2, 3, 4):
        ...     d.sent(n)
        >>> d.report(1, None); d.report(3, None)
        >>> class Err:
        ...     def __init__(self, name): self._name = name
        ...     def name(self): return self._name
        ...     def str(self): return self._name.lower()
        ...     def __str__(self): return self._name
        >>> d.report(2, Err("MSG_SIZE_TOO_LARGE"))
        >>> d.delivered, d.in_flight(), stats.skipped_text()
        (2, 1, '; skipped 1 line (line 2: refused: MSG_SIZE_TOO_LARGE)')
        >>> d.resume_line(next_unread=5)      # line 4 is not acknowledged yet
        4
        >>> d.report(4, Err("_MSG_TIMED_OUT"))
        >>> d.failed, d.resume_line(next_unread=5)
        ({4: '_msg_timed_out'}, 4)
    """

    def __init__(self, stats: ReplayStats,
                 reason_of: Any = None) -> None:
        self.stats = stats
        #: ``reason_of(line, err)``: why the broker refused a line (default: its error text)
        self.reason_of = reason_of or (lambda n, err: f"refused by the broker: {err.str()}")
        self.delivered = 0
        self.pending: set[int] = set()
        #: line -> error, for records not delivered that could be on a new try
        self.failed: dict[int, str] = {}

    def sent(self, n: int) -> None:
        """Line ``n`` was handed to the producer."""
        self.pending.add(n)

    def report(self, n: int, err: Any, msg: Any = None) -> None:
        """The delivery report of line ``n`` (``on_delivery(err, msg)`` of confluent-kafka)."""
        self.pending.discard(n)
        if err is None:
            self.delivered += 1
        elif err.name() in REFUSED_ERRORS:
            self.stats.skip(n, self.reason_of(n, err))
        else:
            self.failed[n] = err.str()

    def in_flight(self) -> int:
        """Records handed to the producer with no report yet."""
        return len(self.pending)

    def resume_line(self, next_unread: int | None) -> int | None:
        """The first line not delivered yet (neither acknowledged nor skipped): where a new
        run resumes (``--start-line``); None when every line was."""
        lines = [*self.pending, *self.failed]
        if next_unread is not None:
            lines.append(next_unread)
        return min(lines) if lines else None
