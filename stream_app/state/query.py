"""Read-only queries over a state record (the functions rule expressions call).

``today`` is the business-day index of the evaluation time; daily windows of ``n`` days
cover days ``today - n + 1 .. today``. All functions return ``None`` when there is nothing
to measure (e.g. ``since`` of an event type never seen).

Example:
    >>> from stream_app.state.requirements import Selector
    >>> st = {"st": {"course_view": "click"}, "d": {"course_view": [[100, 2], [105, 1]]},
    ...       "ds": {"click": [[100, 2], [105, 1]]},
    ...       "n": {"course_view": 3}, "l": {"course_view": 9_000}, "f": {}}
    >>> sel = Selector.parse("stream:click")
    >>> count_days(st, sel, today=105, days=3), count_days(st, sel, today=105, days=30)
    (1, 3)
    >>> active_days(st, sel, today=105, days=30), count_all(st, sel), since(st, sel, 10_000)
    (2, 3, 1000)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stream_app.state import buckets
from stream_app.state.requirements import PairSpec, PropSpec, Selector


def count_all(state: dict[str, Any], sel: Selector) -> int:
    """Lifetime count of the events of ``sel``."""
    return sel.total(state["n"], state["st"])


def _day_lists(state: dict[str, Any], sel: Selector) -> list[list]:
    """Daily bucket lists covering ``sel`` without double counting: the per-stream lists of
    its streams (kept for streams a rule reads over a window) plus the per-type lists of its
    types outside those streams."""
    d = state["d"]
    if sel.any:
        return [d[t] for t in sel.resolve(state["st"]) if t in d]
    if not sel.streams:   # d holds tracked types only (those of state["st"])
        return [d[t] for t in sel.types if t in d]
    ds = state.get("ds", {})
    out = [ds[s] for s in sel.streams if s in ds]
    if sel.types:
        st, streams = state["st"], sel.streams
        out += [d[t] for t in sel.types if t in d and st.get(t) not in streams]
    return out


def count_days(state: dict[str, Any], sel: Selector, today: int, days: int,
               half_life_days: float | None = None) -> float:
    """Events of ``sel`` in the last ``days`` business days (optionally decayed)."""
    first = today - days + 1
    total = 0
    for b in _day_lists(state, sel):
        if half_life_days:
            total += buckets.decayed_total(b, first, today, half_life_days)
        else:
            total += buckets.window_total(b, first, today)
    return total


def count_recent(state: dict[str, Any], sel: Selector, now_ms: int, window_ms: int) -> int:
    """Events of ``sel`` with ``now - window < ts <= now`` (sub-day windows)."""
    rt = state.get("rt", {})
    cut = now_ms - window_ms
    return sum(1 for t in sel.resolve(state["st"]) for ts in rt.get(t, ()) if cut < ts <= now_ms)


def active_days(state: dict[str, Any], sel: Selector, today: int, days: int) -> int:
    """Distinct business days with at least one event of ``sel`` in the window."""
    lists = _day_lists(state, sel)
    first = today - days + 1
    if len(lists) == 1:
        return buckets.window_days(lists[0], first, today)
    seen: set[int] = set()
    for b in lists:
        seen |= buckets.window_indexes(b, first, today)
    return len(seen)


def since(state: dict[str, Any], sel: Selector, now_ms: int) -> int | None:
    """Milliseconds since the latest event of ``sel`` (None if never)."""
    t = sel.extreme(state["l"], state["st"], True)
    return None if t is None else now_ms - t


def since_first(state: dict[str, Any], sel: Selector, now_ms: int) -> int | None:
    """Milliseconds since the earliest event of ``sel`` (None if never)."""
    t = sel.extreme(state["f"], state["st"], False)
    return None if t is None else now_ms - t


def prop_sum(state: dict[str, Any], spec: PropSpec, today: int, days: int | None) -> float:
    """Sum of a numeric prop over a daily window (``days=None``: lifetime)."""
    if days is None:
        return state.get("S", {}).get(spec.key, 0)
    b = state.get("s", {}).get(spec.key)
    return buckets.window_total(b, today - days + 1, today) if b else 0


def prop_peak(state: dict[str, Any], spec: PropSpec) -> float | None:
    return state.get("mx", {}).get(spec.key)


def prop_first(state: dict[str, Any], spec: PropSpec) -> Any:
    rec = state.get("fp", {}).get(spec.key)
    return rec[2] if rec else None


def prop_last(state: dict[str, Any], spec: PropSpec) -> Any:
    rec = state.get("lp", {}).get(spec.key)
    return rec[2] if rec else None


def prop_first_of(state: dict[str, Any], specs: Sequence[PropSpec]) -> Any:
    """The value of the earliest event (by event time, then event id) carrying any of the
    props of ``specs`` (a non-null value); of several props on that one event, the first
    listed. Reads the per-prop records :func:`prop_first` reads, so it is order-independent
    as they are (a late event placed by its time). None if no event carried any.

    >>> from stream_app.state.requirements import Selector
    >>> ch, utm = (PropSpec(Selector.parse("click"), p) for p in ("channel", "utm_source"))
    >>> st = {"fp": {ch.key: [200, "e2", "bilibili"], utm.key: [100, "e1", "douyin"]}}
    >>> prop_first_of(st, (ch, utm)), prop_first_of(st, (ch,)), prop_first_of({}, (ch, utm))
    ('douyin', 'bilibili', None)
    >>> st["fp"][ch.key] = [100, "e1", "wechat"]     # one event carried both: listed first wins
    >>> prop_first_of(st, (ch, utm)), prop_first_of(st, (utm, ch))
    ('wechat', 'douyin')
    """
    return _extreme_of(state.get("fp"), specs, False)


def prop_last_of(state: dict[str, Any], specs: Sequence[PropSpec]) -> Any:
    """The value of the latest event (by event time, then event id) carrying any of the props
    of ``specs``; of several props on that one event, the first listed (see
    :func:`prop_first_of`).

    >>> from stream_app.state.requirements import Selector
    >>> ch, utm = (PropSpec(Selector.parse("click"), p) for p in ("channel", "utm_source"))
    >>> st = {"lp": {ch.key: [100, "e1", "douyin"], utm.key: [200, "e2", "moments"]}}
    >>> prop_last_of(st, (ch, utm))
    'moments'
    >>> st["lp"][ch.key] = [200, "e3", "baidu"]      # same millisecond: the larger event id
    >>> prop_last_of(st, (ch, utm))
    'baidu'
    """
    return _extreme_of(state.get("lp"), specs, True)


def _extreme_of(recs: dict[str, list] | None, specs: Sequence[PropSpec], latest: bool) -> Any:
    """The value of the latest (``latest``) or earliest ``[ts, event_id, value]`` record of
    ``recs`` among ``specs``' keys; a tie keeps the record found first."""
    if not recs:
        return None
    best = None
    for spec in specs:
        rec = recs.get(spec.key)
        if rec is None:
            continue
        if best is None:
            best = rec
        elif latest:
            if rec[0] > best[0] or (rec[0] == best[0] and rec[1] > best[1]):
                best = rec
        elif rec[0] < best[0] or (rec[0] == best[0] and rec[1] < best[1]):
            best = rec
    return None if best is None else best[2]


def prop_distinct(state: dict[str, Any], spec: PropSpec) -> list[str]:
    return list(state.get("dv", {}).get(spec.key, ()))


def profile(state: dict[str, Any], name: str) -> Any:
    rec = state.get("pr", {}).get(name)
    return rec[2] if rec else None


def streak(state: dict[str, Any], spec: PairSpec) -> int:
    """Events of ``a`` after the latest ``b`` (e.g. lessons missed in a row)."""
    rec = state.get("sk", {}).get(spec.key)
    return len(rec["a"]) if rec else 0


def seq(state: dict[str, Any], spec: PairSpec, within_ms: int | None) -> bool:
    """Whether some ``a`` was followed by some ``b`` within ``within_ms`` (None: any time).

    >>> from stream_app.state.requirements import PairSpec, Selector
    >>> sp = PairSpec(Selector.parse("x"), Selector.parse("y"))
    >>> st = {"sq": {sp.key: {"a": [10, 50], "b": [40]}}}
    >>> seq(st, sp, 35), seq(st, sp, 20)
    (True, False)
    """
    rec = state.get("sq", {}).get(spec.key)
    if not rec or not rec["a"] or not rec["b"]:
        return False
    for ta in rec["a"]:
        for tb in rec["b"]:
            if tb >= ta and (within_ms is None or tb - ta <= within_ms):
                return True
    return False


def score(state: dict[str, Any], name: str) -> float | None:
    """A model score written by the scoring part under ``state["scores"]`` (None if absent)."""
    return (state.get("scores") or {}).get(name)
