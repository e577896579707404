"""Recently processed users' states kept parsed, so that a user's next event skips the parse.

The worker stores each state as its JSON record (:mod:`stream_app.state.codec`) and used to
parse it on every event: ~12% of the worker's main thread (py-spy, docs/PERFORMANCE.md item
38). A user's events come in sessions: in the benchmark's workload 90% of the events whose
user has a state find it among the last 32 users written. So the agent keeps the state it
has just written, parsed, for a few users, and uses it at the user's next event instead of
parsing the record again. Few on purpose: a kept state is ~45 objects the garbage collector
tracks, and states kept past a few young-generation collections get promoted and scanned
again; in-process, 128 kept users and more were slower than none.

A kept state is used only while the store still holds *the very bytes object* that was
encoded from it (an identity test, not a comparison): any other writer (a restore from the
changelog, a rebalance, Faust's own table path, a write of another release) leaves other
bytes in the store, and the record is parsed as before. The entry holds a reference to its
bytes, so their identity cannot be reused by another object while it is kept.

An entry is taken out when it is read (:meth:`DecodedStates.take`) and put back only when
the state is written (:meth:`DecodedStates.keep`): a step that changes the state in place and
then fails, turns out to be a duplicate or writes nothing leaves no entry behind, and the
next read parses the stored record. Reads and writes move a user to the young end; past
``max_users`` the oldest entry goes.

Example:
    >>> from stream_app.state.codec import encode
    >>> kept = DecodedStates(max_users=2)
    >>> state = {"nd": 5}
    >>> raw = encode(state)
    >>> kept.keep("u1", raw, state, None)
    >>> kept.take("u1", raw)[0] is state            # the same bytes: the parsed state
    True
    >>> kept.take("u1", raw) is None                # taken out by the read
    True
    >>> kept.keep("u1", raw, state, None)
    >>> kept.take("u1", encode({"nd": 5})) is None  # equal bytes, another object: parse
    True
    >>> for u in ("a", "b", "c"):
    ...     kept.keep(u, raw, {}, None)
    >>> sorted(kept), (kept.hits, kept.misses)      # the oldest went
    (['b', 'c'], (1, 2))
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["DecodedStates"]


class DecodedStates:
    """A bounded map of user -> (stored record, its parsed state, its cold block)."""

    __slots__ = ("max_users", "_entries", "hits", "misses")

    def __init__(self, max_users: int) -> None:
        #: users kept at most; 0 keeps none (every read parses the record)
        self.max_users = max_users
        self._entries: dict[Any, tuple[bytes, dict[str, Any], Any]] = {}
        self.hits = 0
        self.misses = 0

    def take(self, key: Any, raw: bytes) -> tuple[dict[str, Any], Any] | None:
        """The parsed state and cold block kept for ``key`` if the store's record ``raw`` is
        the very object they were encoded to, else None; either way the entry is gone."""
        entry = self._entries.pop(key, None)
        if entry is not None and entry[0] is raw:
            self.hits += 1
            return entry[1], entry[2]
        self.misses += 1
        return None

    def keep(self, key: Any, raw: bytes, state: dict[str, Any], cold: Any) -> None:
        """Remember that the record ``raw`` just stored for ``key`` is ``state`` (and
        ``cold``, the codec's cold block it was encoded with); the caller must not change
        ``state`` afterwards unless it takes it again first."""
        if not self.max_users:
            return
        entries = self._entries
        entries.pop(key, None)
        entries[key] = (raw, state, cold)
        if len(entries) > self.max_users:
            del entries[next(iter(entries))]

    def discard(self, key: Any) -> None:
        """Forget ``key`` (its state was deleted)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every entry (the counters stay)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._entries)
