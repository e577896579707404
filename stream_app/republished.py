"""The header a worker puts on input records it re-publishes itself, and how to read it.

A worker writes two kinds of records back to the input topics: **derived** events (referral
progress for an inviter, :mod:`stream_app.rules.derive`) and **re-keyed** copies of records
that were not keyed by their user. Each lands at the end of another partition, which may be
further on in event time than the partition the record came from: in a backlog that spans
more than the late grace period (a replay of history, a worker back after days), an on-time
record would be judged late there and dead-lettered (a referral credit lost). So their
lateness is judged once, where they came from, and the copy carries this header, which tells
the worker not to judge it again.

Example:
    >>> is_republished([(HEADER, b"derived")]), is_republished({HEADER: b"rekeyed"})
    (True, True)
    >>> is_republished(None), is_republished([("trace-id", b"1")])
    (False, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DERIVED", "HEADER", "REKEYED", "is_republished"]

#: the header's name; its value says why the record was re-published
HEADER = "stream-app-republished"
#: headers of a derived event / of a re-keyed copy (as librdkafka's ``produce`` takes them)
DERIVED = [(HEADER, b"derived")]
REKEYED = [(HEADER, b"rekeyed")]


def is_republished(headers: Any) -> bool:
    """True if a record's headers (a list of ``(name, value)`` pairs, a mapping or None)
    hold :data:`HEADER`."""
    if not headers:
        return False
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return any(name == HEADER for name, _ in pairs)
