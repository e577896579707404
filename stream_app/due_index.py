"""When is each held user next due for a clock tick? A heap, so the sweep never scans everyone.

The tag engine stores each user's next due time in the state (``state["nd"]``: the next
business-day boundary, the time its next ``since()`` threshold passes, or when the user's TTL
runs out, whichever is first: ``TagEngine._next_due``). The worker records it here on every
state write; the sweep pops only the users whose time has come. Entries are replaced lazily:
a user re-scheduled later leaves a stale heap entry that is skipped when it surfaces.

After a rebalance the users a worker holds change: :meth:`invalidate` marks the index stale
and the sweep rebuilds it once from the table (:meth:`rebuild`).

Example:
    >>> idx = DueIndex()
    >>> idx.rebuild([("a", 100), ("b", 50), ("c", 300)])
    >>> idx.set("b", 200)          # b was re-scheduled: its old entry (50) is now stale
    >>> idx.pop_due(150)
    ['a']
    >>> idx.pop_due(250), len(idx)
    (['b'], 1)
    >>> idx.discard("c"); idx.pop_due(10**12)
    []
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class DueIndex:
    """user -> next due time (ms), with the earliest due users found in O(log n)."""

    def __init__(self) -> None:
        self._due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self.stale = True            # not built from the table yet
        self._generation = 0         # bumped by invalidate/begin_rebuild
        self._touched: set[str] | None = None   # users written during a stepwise rebuild

    def __len__(self) -> int:
        return len(self._due)

    def set(self, uid: str, due_ms: int) -> None:
        """Schedule ``uid`` at ``due_ms`` (replaces an earlier schedule)."""
        if self._touched is not None:
            self._touched.add(uid)
        if self._due.get(uid) == due_ms:
            return
        self._due[uid] = due_ms
        heapq.heappush(self._heap, (due_ms, uid))
        if len(self._heap) > 4 * len(self._due) + 1024:
            self._compact()

    def discard(self, uid: str) -> None:
        """Forget ``uid`` (its state was deleted or moved away)."""
        if self._touched is not None:
            self._touched.add(uid)
        self._due.pop(uid, None)

    def pop_due(self, now_ms: int, limit: int | None = None) -> list[str]:
        """Users due at ``now_ms`` (at most ``limit``); they leave the index until set again."""
        out: list[str] = []
        heap, due = self._heap, self._due
        while heap and heap[0][0] <= now_ms and (limit is None or len(out) < limit):
            t, uid = heapq.heappop(heap)
            if due.get(uid) == t:
                del due[uid]
                out.append(uid)
        return out

    def invalidate(self) -> None:
        """The set of held users changed (rebalance): rebuild before the next use (a rebuild
        in progress is abandoned)."""
        self.stale = True
        self._generation += 1
        self._touched = None

    def rebuild(self, entries: Iterable[tuple[str, int]]) -> None:
        """Replace the index with ``(uid, due_ms)`` pairs read from the table."""
        self._due = dict(entries)
        self._heap = [(t, uid) for uid, t in self._due.items()]
        heapq.heapify(self._heap)
        self.stale = False

    def begin_rebuild(self) -> int:
        """Start a rebuild read in steps (the table is read between other work): users set or
        discarded from now on keep their live schedule. Returns the token for
        :meth:`finish_rebuild`.

        >>> idx = DueIndex()
        >>> token = idx.begin_rebuild()
        >>> idx.set("b", 500)                 # written by the agent while the table is read
        >>> idx.finish_rebuild([("a", 100), ("b", 50)], token)
        True
        >>> idx.pop_due(200), idx.pop_due(600)
        (['a'], ['b'])
        """
        self._generation += 1
        self._touched = set()
        return self._generation

    def stale_token(self, token: int) -> bool:
        """Whether the rebuild of ``token`` was overtaken (invalidated or restarted)."""
        return token != self._generation or self._touched is None

    def finish_rebuild(self, entries: Iterable[tuple[str, int]], token: int) -> bool:
        """End the rebuild started with ``token``: the table's pairs, except for users touched
        meanwhile. False (nothing replaced) if the index was invalidated in between."""
        if self.stale_token(token):
            return False
        touched = self._touched
        assert touched is not None       # stale_token checked it
        live = {uid: self._due[uid] for uid in touched if uid in self._due}
        self._touched = None
        self.rebuild([*((u, t) for u, t in entries if u not in touched), *live.items()])
        return True

    def _compact(self) -> None:
        self._heap = [(t, uid) for uid, t in self._due.items()]
        heapq.heapify(self._heap)
