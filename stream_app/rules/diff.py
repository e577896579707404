"""Shadow comparison of two rule sets over the same user states (pure).

``diff_rulesets(old, new, states, now_ms)`` evaluates both rule sets on every state at the
same clock and reports, per tag, how many users would gain, lose or change which value, with
a few sample user ids per transition: what a rule change would do before it goes live.

Example:
    >>> from stream_app.rules.loader import ruleset_from_text
    >>> from stream_app.state import new_state
    >>> def rs(threshold):
    ...     return ruleset_from_text(f'''
    ... tags:
    ...   - {{id: busy, family: activity, zh: 忙, en: Busy, kind: bool,
    ...      value: "count(page_view) >= {threshold}"}}''')
    >>> states = []
    >>> for uid, n in (("a", 1), ("b", 3)):
    ...     s = new_state(uid); s["st"]["page_view"] = "click"; s["n"]["page_view"] = n
    ...     states.append(s)
    >>> d = diff_rulesets(rs(3), rs(1), states, now_ms=0)
    >>> d.users, d.changed_users, d.tags["busy"].transitions
    (2, 1, {(False, True): 1})
    >>> d.tags["busy"].samples[(False, True)]
    ['a']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stream_app.rules.model import RuleSet


@dataclass
class TagDiff:
    """What changes for one tag: transitions ``(old, new) -> users`` and samples."""

    tag_id: str
    transitions: dict[tuple[Any, Any], int] = field(default_factory=dict)
    samples: dict[tuple[Any, Any], list[str]] = field(default_factory=dict)

    def gained(self) -> dict[Any, int]:
        """Users per value newly held (from another value or none)."""
        out: dict[Any, int] = {}
        for (_, new), n in self.transitions.items():
            if new is not None:
                out[_token(new)] = out.get(_token(new), 0) + n
        return out

    def lost(self) -> dict[Any, int]:
        """Users per value no longer held."""
        out: dict[Any, int] = {}
        for (old, _), n in self.transitions.items():
            if old is not None:
                out[_token(old)] = out.get(_token(old), 0) + n
        return out


@dataclass
class RulesetDiff:
    """Result of :func:`diff_rulesets`."""

    old_version: str
    new_version: str
    users: int = 0
    changed_users: int = 0
    added_tags: list[str] = field(default_factory=list)     # only in the new rule set
    removed_tags: list[str] = field(default_factory=list)   # only in the old rule set
    tags: dict[str, TagDiff] = field(default_factory=dict)  # tags with at least one change
    #: aggregates the new rules read that states kept under the old rules do not have: they
    #: start empty at the switch (e.g. "sum order_paid.price"), so values built on them are
    #: incomplete until enough new events arrive
    missing_history: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (transitions as ``"old -> new"`` strings)."""
        return {
            "old_version": self.old_version, "new_version": self.new_version,
            "users": self.users, "changed_users": self.changed_users,
            "added_tags": self.added_tags, "removed_tags": self.removed_tags,
            "missing_history": self.missing_history,
            "tags": {tid: {"gained": d.gained(), "lost": d.lost(),
                           "transitions": {f"{_token(o)} -> {_token(n)}": c
                                           for (o, n), c in d.transitions.items()},
                           "samples": {f"{_token(o)} -> {_token(n)}": s
                                       for (o, n), s in d.samples.items()}}
                     for tid, d in sorted(self.tags.items())},
        }


def _token(v: Any) -> Any:
    """Hashable, printable form of a value (sets become comma-joined text)."""
    if isinstance(v, list):
        return ",".join(map(str, v))
    return v


def missing_history(old: RuleSet, new: RuleSet) -> list[str]:
    """Aggregates ``new`` needs that states kept under ``old`` lack.

    >>> from stream_app.rules.loader import ruleset_from_text
    >>> def rs(expr):
    ...     return ruleset_from_text("tags:\\n  - {id: t, family: f, zh: a, en: b, kind: number,"
    ...                              f" value: '{expr}'}}")
    >>> missing_history(rs("sum(order_paid.amount)"), rs("sum(order_paid.amount) + peak(x.y)"))
    ['peak x.y']
    """
    a, b = old.requirements, new.requirements
    out = []
    for name, attr in (("sum", "sums"), ("peak", "peaks"), ("first", "firsts"),
                       ("last", "lasts"), ("distinct", "distincts")):
        have = {s.key for s in getattr(a, attr)}
        out += [f"{name} {s.key}" for s in getattr(b, attr) if s.key not in have]
    out += [f"profile {p}" for p in b.profile - a.profile]
    for name, attr in (("streak", "streaks"), ("seq", "seqs")):
        have = {s.key for s in getattr(a, attr)}
        out += [f"{name} {s.key}" for s in getattr(b, attr) if s.key not in have]
    have = {s.key for s in a.recent}
    out += [f"recent {s.key}" for s in b.recent if s.key not in have]
    for stream in b.stream_windows:
        if stream not in a.stream_windows:
            out.append(f"daily stream:{stream}")
    return sorted(out)


def diff_rulesets(old: RuleSet, new: RuleSet, states: Iterable[dict[str, Any]], now_ms: int,
                  *, day_offset_ms: int = 8 * 3600_000, max_samples: int = 5) -> RulesetDiff:
    """Compare the tags ``old`` and ``new`` give every state at ``now_ms`` (never mutates)."""
    old_ids = {t.id for t in old.tags}
    new_ids = {t.id for t in new.tags}
    out = RulesetDiff(old.version, new.version, added_tags=sorted(new_ids - old_ids),
                      removed_tags=sorted(old_ids - new_ids),
                      missing_history=missing_history(old, new))
    for state in states:
        if state is None:
            continue
        out.users += 1
        a, _ = old.evaluate_raw(state, now_ms, day_offset_ms=day_offset_ms)
        b, _ = new.evaluate_raw(state, now_ms, day_offset_ms=day_offset_ms)
        changed = False
        for tid in sorted(old_ids | new_ids):
            va, vb = a.get(tid), b.get(tid)
            if va == vb and type(va) is type(vb):
                continue
            changed = True
            key = (_token(va), _token(vb))
            d = out.tags.setdefault(tid, TagDiff(tid))
            d.transitions[key] = d.transitions.get(key, 0) + 1
            s = d.samples.setdefault(key, [])
            if len(s) < max_samples:
                s.append(state.get("uid", "?"))
        out.changed_users += changed
    return out
