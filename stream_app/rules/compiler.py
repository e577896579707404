"""Compile parsed rule expressions to Python closures ``fn(ctx) -> value``.

Compilation is done once per rule set. It resolves parameters (``$name``), checks function
names and arguments, and records in a :class:`~stream_app.state.Requirements` what the state
must accumulate. At evaluation, every function call's value is memoised per evaluation and
traced (``ctx.trace``: call text -> value) so the engine can explain why a tag has its value.

``prev()`` is the value the tag being evaluated held before this evaluation (null for a user
who never held it): compiled only with the ``tag_id`` of the rule (:func:`compile_expr`), read
from ``ctx.prev``, which the evaluation fills before it runs the rule (``ctx.tags`` is written
as tags are evaluated, so it is not the place to read it from). It lets a rule keep a value
(hysteresis): ``tag(lead_points) >= 15 or (prev() == 'high' and tag(lead_points) >= 12)``.

Null semantics: arithmetic with ``null`` gives ``null`` (so do ``min``/``max`` with a
``null`` argument); ``x / 0`` is ``null``; ordering
comparisons with ``null`` or across types are false; ``==``/``!=`` compare values
(``x == null`` is true when ``x`` is missing).

Example:
    >>> from stream_app.state import Requirements, new_state
    >>> req = Requirements()
    >>> c = compile_expr("count(course_view, 30d) + 1 >= 2", req, params={})
    >>> st = new_state("u1"); st["st"]["course_view"] = "click"
    >>> st["d"]["course_view"] = [[19844, 1]]
    >>> ctx = EvalContext(st, now_ms=1714528800000, day_offset_ms=8 * 3600_000)
    >>> c.fn(ctx), ctx.trace
    (True, {'count(course_view, 30d)': 1})
    >>> compile_expr("cuont(x)", req, params={})
    Traceback (most recent call last):
    ...
    stream_app.rules.compiler.CompileError: unknown function 'cuont' (column 1)
    >>> c = compile_expr("prev() == 'high' or count(course_view) > 0", req, {}, tag_id="t")
    >>> ctx = EvalContext(st, 0, 0); ctx.prev = {"t": "high"}
    >>> c.fn(ctx), c.prev, ctx.trace
    (True, True, {'prev()': 'high'})
"""

from __future__ import annotations

import operator
import re
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from stream_app.rules.grammar import parse
from stream_app.rules.typecheck import infer_type
from stream_app.state import query
from stream_app.state.requirements import STREAMS, PairSpec, PropSpec, Requirements, Selector

DAY_MS = 86_400_000
_UNITS = {"w": 7 * DAY_MS, "d": DAY_MS, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(w|d|h|m|s|ms)$")
_MISSING = object()
#: pseudo event type read by rules that use model scores (``score.X``)
SCORES_TYPE = "__scores__"
SCORES = Selector(types=frozenset({SCORES_TYPE}))

Fn = Callable[["EvalContext"], Any]


class CompileError(Exception):
    """An expression is invalid; ``column`` is 1-based inside the expression text."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.message = message
        self.column = column
        super().__init__(f"{message} (column {column})" if column else message)


class EvalContext:
    """Inputs of one evaluation: the state, the clock, tags evaluated so far, the values
    before it (``prev``), memo and trace."""

    __slots__ = ("state", "now", "today", "tags", "prev", "cache", "trace", "traces")

    def __init__(self, state: dict[str, Any], now_ms: int, day_offset_ms: int,
                 trace: bool = True) -> None:
        self.state = state
        self.now = now_ms
        self.today = (now_ms + day_offset_ms) // DAY_MS
        self.tags: dict[str, Any] = {}
        #: what ``prev()`` reads: tag id -> its value before this evaluation (absent: null),
        #: for the tags whose rule reads prev(); never written while the rules run (but
        #: for a rule's own entry while its value settles, see RuleSet._run)
        self.prev: dict[str, Any] = {}
        self.cache: dict[str, Any] = {}
        self.trace: dict[str, Any] | None = {} if trace else None
        #: tag id -> (trace, matched case) of its run, kept by a selective evaluation
        self.traces: dict[str, tuple[dict[str, Any], int | None]] | None = None


@dataclass
class Compiled:
    """A compiled expression."""

    fn: Fn
    text: str
    deps: set[str] = field(default_factory=set)   # tag ids referenced with tag(...)
    granularity_ms: int = DAY_MS                  # finest duration it compares against
    reads: set[Selector] = field(default_factory=set)   # events whose aggregates it reads
    timed: bool = False        # reads the clock to the millisecond with no known horizon
    daily: bool = False        # reads the business day (daily windows)
    clocks: set[ClockAtom] = field(default_factory=set)  # clock reads with a known horizon
    guards: set[Guard] = field(default_factory=set)   # reads re-run only when their value moves
    windows: set[DailyWindow] = field(default_factory=set)   # the daily windows it reads
    #: model scores it reads (``score.X``) -> each comparison of the score with a constant,
    #: as a function of the score's value, when the expression reads it only so (its value
    #: then depends on the score only through their results), else None
    scores: dict[str, tuple[Callable[[Any], Any], ...] | None] = field(default_factory=dict)
    prev: bool = False         # reads prev(): the tag's own value before the evaluation
    #: the value's coarse type (``number``, ``text``, ``bool``, ``list``, ``null`` or
    #: ``unknown``), see :mod:`stream_app.rules.typecheck`
    vtype: str = "unknown"


def parse_duration(text: Any) -> int | None:
    """``'30d'`` -> ms; None if ``text`` is not a duration.

    >>> parse_duration("12h"), parse_duration("2w") // DAY_MS, parse_duration("x")
    (43200000, 14, None)
    """
    if not isinstance(text, str):
        return None
    m = _DURATION_RE.match(text.strip())
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def compile_expr(text: str, req: Requirements, params: dict[str, Any],
                 tag_id: str | None = None,
                 tag_kinds: Mapping[str, str] | None = None) -> Compiled:
    """Parse and compile ``text``; raise :class:`CompileError` with the column on error.

    ``tag_id``: the tag whose rule ``text`` is (a case's ``when`` or a ``value``); only then
    may it read ``prev()``, the tag's own value before the evaluation.

    The compiled expression is then type-checked (:func:`~stream_app.rules.typecheck.
    infer_type`: a text operand of arithmetic, an ordering of a number with text, a helper
    given the wrong type are refused); ``tag_kinds`` (tag id -> kind, of the rule set) types
    ``tag(id)`` and ``prev()``. Its type is :attr:`Compiled.vtype`.

    >>> compile_expr("count(x) > 'three'", Requirements(), {})
    Traceback (most recent call last):
    ...
    stream_app.rules.compiler.CompileError: count(x) > 'three' orders a number with text: ...
    >>> kinds = {"points": "number"}
    >>> compile_expr("tag(points) + 1", Requirements(), {}, tag_kinds=kinds).vtype
    'number'

    >>> compile_expr("count(x) > 0 and prev() != true", Requirements(), {})
    Traceback (most recent call last):
    ...
    stream_app.rules.compiler.CompileError: prev() is only valid in a tag's rule ... (column 18)
    """
    try:
        tree = parse(str(text))
    except UnexpectedCharacters as exc:
        raise CompileError(f"unexpected character {text[exc.pos_in_stream]!r}",
                           exc.column) from None
    except UnexpectedToken as exc:
        tok = exc.token
        what = "end of expression" if tok.type == "$END" else repr(str(tok))
        if str(tok) == "." and tok.type != "$END":   # e.g. click|order.channel
            what += (" (a prop is read from one event type or stream name: click.channel; "
                     "alternatives of its props: click.channel|utm_source)")
        raise CompileError(f"unexpected {what}", getattr(tok, "column", None)) from None
    except UnexpectedEOF:
        raise CompileError("unexpected end of expression", len(text)) from None
    except UnexpectedInput as exc:  # pragma: no cover - other lark errors
        raise CompileError(str(exc).splitlines()[0], getattr(exc, "column", None)) from None
    c = _Compiler(str(text), req, params, tag_id)
    fn = c.expr(tree)
    vtype = infer_type(tree, str(text), params, tag_kinds, tag_id)
    scores = {t: tuple(c.score_tests.get(t, ())) if len(c.score_tests.get(t, ())) == n else None
              for t, n in c.score_reads.items()}
    return Compiled(fn, str(text), c.deps, c.granularity, c.reads, c.timed, c.daily, c.clocks,
                    c.guards, c.windows, scores, c.prev, vtype)


class Probe:
    """What a :class:`Guard` looks at after one event was applied: the state, the event's
    type and time, its business day and the evaluation's (``day``, ``today``), the clock
    (``now``), the type's latest / earliest time before the event (``old_l`` / ``old_f``),
    the prop aggregates whose value the event moved (``props``: ``"fp:<spec key>"`` etc., see
    :meth:`~stream_app.state.record.StateUpdater.apply`), a memo shared by the guards of
    one event (guards of one selector read the same quantity) and ``old_day``, the business
    day of ``old_l`` (None: not known)."""

    __slots__ = ("state", "etype", "ts", "day", "today", "now", "old_l", "old_f", "props",
                 "memo", "old_day")

    def __init__(self, state: dict[str, Any], etype: str, ts: int, day: int, today: int,
                 now: int, old_l: int | None, old_f: int | None,
                 props: set[str] | None = None, old_day: int | None = None) -> None:
        self.state, self.etype, self.ts, self.day, self.today = state, etype, ts, day, today
        self.now, self.old_l, self.old_f = now, old_l, old_f
        self.props = props
        self.memo: dict[Any, Any] = {}
        self.old_day = old_day


@dataclass(frozen=True)
class Guard:
    """A part of a rule that alone reads the events of ``sels``: a count (lifetime or over a
    daily window) or since() compared with a constant, an active_days() window, or a
    one-value prop aggregate (``first``, ``last``, ``peak``, ``distinct``). An event of
    ``sels`` can change the rule's value only if it changes the guard's value;
    ``moved(probe)`` tells that from the state after the event (see :class:`Probe`). Equal
    by text.

    Guards of one ``group`` read one quantity (e.g. the active days of one selector over
    several windows); their common ``pre(probe)`` is false when none of them can have moved,
    so an event looks at a few groups, not at every guard, and ``after(probe)`` tells, once
    ``pre(probe)`` held, whether the guard moved (``moved`` without the precheck again).

    >>> req = Requirements()
    >>> c = compile_expr("count(stream:click) == 0 or count(course_view, 7d) > 2", req, {})
    >>> sorted(g.text for g in c.guards), c.reads
    (['count(course_view, 7d) > 2', 'count(stream:click) == 0'], set())
    >>> c = compile_expr("count(course_view, 30d) >= 5 and count(order_paid, 12h) > 1", req, {})
    >>> sorted(g.text for g in c.guards), sorted(s.key for s in c.reads)
    (['count(course_view, 30d) >= 5'], ['order_paid'])
    >>> c = compile_expr("coalesce(last(click.channel), last(click.utm_source))", req, {})
    >>> sorted(g.text for g in c.guards), c.reads, len({g.group for g in c.guards})
    (['last(click.channel)', 'last(click.utm_source)'], set(), 1)
    """

    text: str
    sels: frozenset[Selector] = field(compare=False)
    moved: Callable[[Probe], bool] = field(compare=False, repr=False)
    group: Any = field(compare=False, repr=False, default=None)
    pre: Callable[[Probe], bool] | None = field(compare=False, repr=False, default=None)
    #: ``moved`` when ``pre`` is known to hold (skips the group's precheck); default ``moved``
    after: Callable[[Probe], bool] | None = field(compare=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if self.after is None:
            object.__setattr__(self, "after", self.moved)

    def __hash__(self) -> int:   # the text's (cached) hash: guards are hashed on every event
        return hash(self.text)


#: (group key, group precheck, moved, moved-after-the-precheck) of a guard, see :class:`Guard`
GuardSpec = tuple[Any, Callable[[Probe], bool], Callable[[Probe], bool], Callable[[Probe], bool]]


#: counts whose flip (:func:`_flip`) one count guard keeps
FLIP_MEMO = 1024


def _flip(flips: dict[Any, bool], res: Callable[[Any], bool], n: Any) -> bool:
    """Whether the comparison ``res`` of a count gives another result at ``n`` than at
    ``n - 1`` (one event more), kept in ``flips`` by ``n`` when an int (``res`` is pure);
    the count guards read ``flips`` first. A float count found under an equal int gets the
    int's result, as a comparison with numbers gives (1.0 compares as 1 does).

    >>> flips = {}
    >>> [_flip(flips, lambda v: v > 2, n) for n in (2, 3, 4.0, 3)], flips
    ([False, True, False, True], {2: False, 3: True})
    """
    f = res(n) != res(n - 1)
    if type(n) is int and len(flips) < FLIP_MEMO:
        flips[n] = f
    return f


def _count_moved(sel: Selector, res: Callable[[Any], bool], c: Any) -> GuardSpec:
    # a count compared with c flips only at counts <= c + 1: beyond, no event moves it
    top = c + 1 if _num(c) else None
    key = "n:" + sel.key
    flips: dict[Any, bool] = {}

    def pre(p: Probe) -> bool:    # count(sel) >= the type's count (sel matches the type)
        n = p.state["n"].get(p.etype)
        return n is not None and (top is None or n <= top)   # None: untracked type

    def after(p: Probe) -> bool:
        memo = p.memo
        n = memo.get(key)
        if n is None:
            n = memo[key] = query.count_all(p.state, sel)
        f = flips.get(n)      # the event added exactly one
        return _flip(flips, res, n) if f is None else f

    def moved(p: Probe) -> bool:
        return pre(p) and after(p)
    return ("n", top), pre, moved, after   # pre reads the event type's count only


def _window_count_moved(sel: Selector, days: int, res: Callable[[Any], bool]) -> GuardSpec:
    # an event of sel inside the window adds exactly one to count(sel, <days>d) (its daily
    # bucket is kept: the window is within the retention); outside it adds nothing
    key = f"w{days}:{sel.key}"
    flips: dict[Any, bool] = {}

    def pre(p: Probe) -> bool:
        return p.today - days < p.day <= p.today

    def after(p: Probe) -> bool:
        n = p.memo.get(key)
        if n is None:
            n = p.memo[key] = query.count_days(p.state, sel, p.today, days)
        f = flips.get(n)
        return _flip(flips, res, n) if f is None else f

    def moved(p: Probe) -> bool:
        return pre(p) and after(p)
    return ("w", days), pre, moved, after


def _since_moved(fld: str, sel: Selector, res: Callable[[Any], bool],
                 points: tuple[int, ...]) -> GuardSpec:
    latest = fld == "l"
    key = fld + ":" + sel.key

    def pre(p: Probe) -> bool:    # the type's latest / earliest time moved
        if p.etype not in p.state["st"]:
            return False
        old = p.old_l if latest else p.old_f
        return old is None or (p.ts > old if latest else p.ts < old)

    def after(p: Probe) -> bool:
        state, etype, now = p.state, p.etype, p.now
        old = p.old_l if latest else p.old_f
        if old is not None:
            # both values of since() lie between now - old and now - (the user's newest
            # event) (since_first: between now - (the oldest event) and now - old): no flip
            # point between them, no change
            lo, hi = (now - state["lt"], now - old) if latest else (now - old, now - state["ft"])
            for q in points:
                if lo < q <= hi:
                    break
            else:
                return False
        ab = p.memo.get(key)
        if ab is None:
            # the selector's time before the event (its other types' and the type's old
            # one) and after it (the other types' and the type's new one): one pass
            times = state[fld]
            others = sel.extreme(times, state["st"], latest, etype)
            a = _pick(others, old, latest)
            ab = p.memo[key] = a, _pick(others, times[etype], latest)
        a, b = ab
        if a == b:
            return False
        return res(None if a is None else now - a) != res(now - b)

    def moved(p: Probe) -> bool:
        return pre(p) and after(p)
    return key, pre, moved, after


def _pick(a: int | None, b: int | None, latest: bool) -> int | None:
    """The later (``latest``) or earlier of two times, None standing for no time.

    >>> _pick(None, 3, True), _pick(5, 3, True), _pick(5, 3, False), _pick(None, None, False)
    (3, 5, 3, None)
    """
    if a is None:
        return b
    if b is None:
        return a
    return (a if a > b else b) if latest else (a if a < b else b)


def _active_days_moved(sel: Selector, days: int) -> GuardSpec:
    key = "ad:" + sel.key

    def pre(p: Probe) -> bool:    # the event's day was not active before (for sel)
        total = p.memo.get(key)
        if total is None and p.old_day == p.day:
            # the event's type (one of sel's) had an event on that day already: the day's
            # bucket holds both (kept for both or for neither: the next evaluation's day
            # only moves forward), so the sum below would be 0 or at least 2
            return False
        if total is None:   # the events of sel on the event's day
            total, day = 0, p.day
            for b in query._day_lists(p.state, sel):
                if not b:
                    continue
                idx, val = b[-1]
                if idx > day:   # a later day: walk back (the newest one is the usual case)
                    idx, val = next(((i, v) for i, v in reversed(b) if i <= day), (None, 0))
                if idx == day:
                    total += val
                    if total > 1:   # not the event's own alone, whatever the others hold
                        break
            p.memo[key] = total
        return total == 1      # the event's own

    def after(p: Probe) -> bool:
        return p.today - days < p.day <= p.today

    def moved(p: Probe) -> bool:
        return after(p) and pre(p)
    return key, pre, moved, after


def _props_moved(p: Probe) -> bool:
    return p.props is None or bool(p.props)


def _prop_moved(key: str, *more: str) -> GuardSpec:
    """The prop aggregate ``key`` (``"lp:click.channel"``) moved, or one of ``more`` (prop
    alternatives read together: ``last(click.channel|utm_source)``): the updater says so."""
    if more:
        keys = (key, *more)
        if len(keys) == 2:
            k2 = more[0]

            def moved(p: Probe) -> bool:
                props = p.props
                return props is None or key in props or k2 in props
        else:
            def moved(p: Probe) -> bool:
                props = p.props
                return props is None or any(k in props for k in keys)
        return "props", _props_moved, moved, moved

    def moved(p: Probe) -> bool:
        return p.props is None or key in p.props
    return "props", _props_moved, moved, moved


# -- clock atoms: where a rule reads the clock, and when that read can next change ---------
@dataclass(frozen=True)
class SinceThreshold:
    """``since(sel) OP const`` (``field="l"``) or ``since_first(sel) OP const`` (``"f"``),
    either side. Its truth changes only when the clock crosses one point, which
    :meth:`next_change` finds from the state alone (no evaluation needed).

    >>> from stream_app.state import new_state
    >>> a = SinceThreshold("l", Selector.parse("x"), ">", 10, True)
    >>> st = new_state("u"); st["st"]["x"] = "click"; st["l"]["x"] = 100
    >>> a.points, a.next_change(st, 105), a.next_change(st, 111), a.next_change(new_state("u"), 0)
    ((11,), 111, None, None)
    >>> SinceThreshold("f", Selector.parse("x"), "==", 10, False).points
    (10, 11)
    """

    field: str          # "l": since the latest event, "f": since the earliest
    sel: Selector
    op: str
    const: Any
    left: bool          # since(...) is the left operand
    #: the values of since() at which the comparison's truth flips, ascending
    points: tuple[int, ...] = field(init=False, compare=False, repr=False, default=())

    def __post_init__(self) -> None:
        c = self.const
        if not _num(c) or c != c or c in (float("inf"), float("-inf")):
            return      # never true or never changes with the clock
        op = _compare(self.op)

        def res(x: int) -> bool:
            return op(x, c) if self.left else op(c, x)
        f = int(c // 1)
        cands = sorted({f, f + 1, -int(-c // 1)})
        object.__setattr__(self, "points", tuple(p for p in cands if res(p) != res(p - 1)))

    def next_change(self, state: dict[str, Any], now: int) -> int | None:
        """First time after ``now`` at which the comparison's truth differs (None: never,
        until an event of ``sel`` arrives)."""
        return since_next_change(state, now, self.field, self.sel, self.points)


def since_next_change(state: dict[str, Any], now: int, fld: str, sel: Selector,
                      points: tuple[int, ...]) -> int | None:
    """``t0 + p`` for the first ``p`` of ``points`` above ``now - t0``, where ``t0`` is the
    latest (``fld="l"``) or earliest (``"f"``) time of an event of ``sel``."""
    if not points:
        return None
    return first_point_after(sel.extreme(state[fld], state["st"], fld == "l"), now, points)


def first_point_after(t0: int | None, now: int, points: tuple[int, ...]) -> int | None:
    """``t0 + p`` for the first of the sorted ``points`` with ``t0 + p > now`` (None: none,
    or no start time).

    >>> first_point_after(100, 150, (30, 60, 90)), first_point_after(None, 0, (1,))
    (160, None)
    """
    if t0 is None:
        return None
    v = now - t0
    for p in points:
        if p > v:
            return t0 + p
    return None


@dataclass(frozen=True)
class RecentWindow:
    """``count(sel, W)`` over a sub-day window: it drops when its oldest event leaves.

    >>> from stream_app.state import new_state
    >>> st = new_state("u"); st["st"]["x"] = "click"; st["rt"] = {"x": [100, 150]}
    >>> a = RecentWindow(Selector.parse("x"), 60)
    >>> a.next_change(st, 150), a.next_change(st, 170), a.next_change(st, 300)
    (160, 210, None)
    """

    sel: Selector
    window_ms: int

    def next_change(self, state: dict[str, Any], now: int) -> int | None:
        rt = state.get("rt")
        if not rt:
            return None
        cut = now - self.window_ms
        first = [t for et in self.sel.resolve(state["st"]) for t in rt.get(et, ()) if t > cut]
        return min(first) + self.window_ms if first else None


ClockAtom = SinceThreshold | RecentWindow


@dataclass(frozen=True)
class DailyWindow:
    """A daily window a rule reads: the events of ``sel`` (count, active_days, rate) or the
    sum of ``spec`` over the last ``days`` business days, weighted by age when ``decayed``.

    On a new business day with no event since the last evaluation (a clock tick), its value
    can move only if a daily bucket leaves it; a decayed window's moves if it holds any
    bucket (every weight changes). No bucket is later than the last evaluation's day.

    >>> from stream_app.state import new_state
    >>> st = new_state("u"); st["st"]["x"] = "click"; st["d"]["x"] = [[10, 1], [14, 2]]
    >>> w = DailyWindow(Selector.parse("x"), None, 3)
    >>> w.moved(st, 14, 15), w.moved(st, 14, 16), w.moved(st, 12, 16)
    (False, False, True)
    >>> DailyWindow(Selector.parse("x"), None, 3, decayed=True).moved(st, 14, 15)
    True
    """

    sel: Selector | None
    spec: PropSpec | None
    days: int
    decayed: bool = False

    def moved(self, state: dict[str, Any], old_today: int, today: int) -> bool:
        """Whether the window's value at business day ``today`` can differ from its value at
        ``old_today`` (earlier), with no event applied in between."""
        lo, hi = self.span(self.days, self.decayed, old_today, today)
        if hi < lo:
            return False
        if self.spec is not None:
            b = state.get("s", {}).get(self.spec.key)
            lists = [b] if b else []
        else:
            lists = query._day_lists(state, self.sel)
        return self.holds(lists, lo, hi)

    @staticmethod
    def span(days: int, decayed: bool, old_today: int, today: int) -> tuple[int, int]:
        """The days ``lo..hi`` (none if ``hi < lo``) whose buckets move a window of
        ``days`` from ``old_today`` to ``today``: those leaving it, or every one it holds
        when ``decayed``.

        >>> DailyWindow.span(3, False, 14, 16), DailyWindow.span(3, True, 14, 16)
        ((12, 13), (12, 14))
        """
        lo = old_today - days + 1
        hi = old_today if decayed or old_today < today - days else today - days
        return lo, hi

    @staticmethod
    def holds(lists: list[list], lo: int, hi: int) -> bool:
        """Whether a bucket of ``lists`` (each sorted by day) lies in days ``lo..hi``.

        >>> DailyWindow.holds([[], [[3, 1], [9, 2]]], 4, 8), DailyWindow.holds([[[5, 1]]], 4, 8)
        (False, True)
        """
        for b in lists:
            if not b or b[-1][0] < lo:    # empty, or every bucket before the range
                continue
            first = b[0][0]
            if first >= lo:     # the oldest bucket is the first one from lo on
                if first <= hi:
                    return True
                continue
            i = bisect_left(b, lo, key=_bucket_day)
            if b[i][0] <= hi:   # i < len(b): the newest bucket is from lo on
                return True
        return False


def _bucket_day(bucket: list) -> int:
    return bucket[0]


# -- helpers used by the compiled closures ------------------------------------------------
_NUMBER_TYPES = (int, float)


def _num(v: Any) -> bool:
    return type(v) in _NUMBER_TYPES or (isinstance(v, int | float) and not isinstance(v, bool))


def _arith(op: str) -> Callable[[Any, Any], Any]:
    base = {"+": operator.add, "-": operator.sub, "*": operator.mul,
            "/": operator.truediv, "%": operator.mod}[op]

    def f(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        try:
            return base(a, b)
        except (ZeroDivisionError, TypeError):
            return None
    return f


def _compare(op: str) -> Callable[[Any, Any], bool]:
    if op == "==":
        return lambda a, b: a == b
    if op == "!=":
        return lambda a, b: a != b
    base = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]

    def f(a: Any, b: Any) -> bool:
        if type(a) in _NUMBER_TYPES and type(b) in _NUMBER_TYPES:
            return base(a, b)   # the usual case: two plain numbers (a bool already)
        if a is None or b is None:
            return False
        if _num(a) != _num(b):
            return False
        try:
            return bool(base(a, b))
        except TypeError:
            return False
    return f


def _contains(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    try:
        return a in b
    except TypeError:
        return False


def _literal(node: Tree | Token) -> Any:
    """``_MISSING`` unless ``node`` compiles to a closure that ignores the context (a number,
    duration, string, parameter, true / false / null); then anything else."""
    if isinstance(node, Tree) and node.data in ("number", "duration", "string", "param", "true",
                                                "false", "null"):
        return node.data
    return _MISSING


class _Compiler:
    def __init__(self, text: str, req: Requirements, params: dict[str, Any],
                 tag_id: str | None = None) -> None:
        self.text = text
        self.req = req
        self.params = params
        self.tag_id = tag_id        # the tag whose rule this is (None: prev() is refused)
        self.prev = False           # the expression reads prev()
        self.deps: set[str] = set()
        self.reads: set[Selector] = set()
        self.timed = False
        self.daily = False
        self.clocks: set[ClockAtom] = set()
        self.guards: set[Guard] = set()
        self.windows: set[DailyWindow] = set()
        self.granularity = DAY_MS
        self.score_reads: dict[str, int] = {}   # score target -> reads of it
        self.score_tests: dict[str, list[Callable[[Any], Any]]] = {}   # see Compiled.scores

    # -- utilities
    def since_threshold(self, left: Tree | Token, op: str, right: Tree | Token
                        ) -> SinceThreshold | None:
        """The clock atom of ``since(sel) OP const`` (either side), else None."""
        for node, other, is_left in ((left, right, True), (right, left, False)):
            if (isinstance(node, Tree) and node.data == "call"
                    and str(node.children[0]) in ("since", "since_first")
                    and len(node.children) == 2 and isinstance(node.children[1], Tree)
                    and node.children[1].data in ("dotted", "selector")):
                if isinstance(node.children[1], Tree) and node.children[1].data == "dotted" \
                        and len(node.children[1].children) != 1:
                    return None
                try:
                    const = self.const(other)
                except CompileError:
                    return None
                sel_node = node.children[1]
                sel = Selector.parse("|".join(str(t) for t in sel_node.children))
                fld = "l" if str(node.children[0]) == "since" else "f"
                return SinceThreshold(fld, sel, op, const, is_left)
        return None

    def err(self, node: Tree | Token, message: str) -> CompileError:
        col = getattr(node, "column", None)
        if col is None and isinstance(node, Tree) and not node.meta.empty:
            col = node.meta.column
        return CompileError(message, col)

    def src(self, node: Tree) -> str:
        if node.meta.empty:
            return "?"
        return " ".join(self.text[node.meta.start_pos:node.meta.end_pos].split())

    def note_duration(self, ms: int) -> None:
        for g in (DAY_MS, 3_600_000, 60_000, 1000, 1):
            if ms % g == 0:
                self.granularity = min(self.granularity, g)
                return

    def const(self, node: Tree | Token) -> Any:
        """Compile-time value of a literal or parameter (error otherwise)."""
        if isinstance(node, Tree):
            if node.data == "duration":
                return self.duration_ms(node.children[0])
            if node.data == "number":
                return _number(node.children[0])
            if node.data == "param":
                return self.param(node.children[0])
            if node.data == "string":
                return str(node.children[0])[1:-1]
            if node.data == "arith":
                a, b = self.const(node.children[0]), self.const(node.children[2])
                v = _arith(str(node.children[1]))(a, b)
                if v is None:
                    raise self.err(node, "invalid constant arithmetic")
                return v
        raise self.err(node, "expected a literal value, a $parameter or arithmetic of them")

    def duration_ms(self, token: Token) -> int:
        ms = parse_duration(str(token))
        if ms is None:  # pragma: no cover - grammar guarantees the form
            raise self.err(token, f"bad duration {str(token)!r}")
        self.note_duration(ms)
        return ms

    def param(self, token: Token) -> Any:
        name = str(token)
        if name not in self.params:
            raise self.err(token, f"unknown parameter ${name}")
        value = self.params[name]
        ms = parse_duration(value)
        if ms is not None:
            self.note_duration(ms)
            return ms
        return value

    def window(self, node: Tree | Token) -> int:
        ms = self.const(node)
        if not _num(ms) or ms <= 0:
            raise self.err(node, "a window must be a positive duration such as 30d or 12h")
        return int(ms)

    def parse_selector(self, node: Tree | Token, text: str) -> Selector:
        """:meth:`Selector.parse`, refusing a stream the contract does not have (a typo such
        as ``stream:clik`` would read nothing, silently; unknown event *types* are allowed:
        the contract's type lists are not closed)."""
        sel = Selector.parse(text)
        unknown = sorted(sel.streams - STREAMS)
        if unknown:
            raise self.err(node, f"unknown stream {unknown[0]!r} (streams: "
                                 f"{', '.join(sorted(STREAMS))})")
        return sel

    def selector(self, node: Tree | Token) -> Selector:
        if isinstance(node, Tree) and node.data == "dotted" and len(node.children) == 1:
            sel = self.parse_selector(node, str(node.children[0]))
            self.reads.add(sel)
            return sel
        if isinstance(node, Tree) and node.data == "selector":
            sel = self.parse_selector(node, "|".join(str(t) for t in node.children))
            self.reads.add(sel)
            return sel
        raise self.err(node, "expected an event selector (a type, stream:NAME, any, a|b)")

    def propspec(self, node: Tree | Token) -> PropSpec:
        if isinstance(node, Tree) and node.data == "dotted" and len(node.children) == 2:
            sel, prop = (str(t) for t in node.children)
            spec = PropSpec(self.parse_selector(node, sel), prop)
            self.reads.add(spec.sel)
            return spec
        if isinstance(node, Tree) and node.data == "prop_alts":
            raise self.err(node, f"prop alternatives such as {self.src(node)} are only valid "
                                 "in first() and last()")
        raise self.err(node, "expected selector.prop such as order_paid.amount")

    def prop_alts(self, node: Tree) -> tuple[PropSpec, ...]:
        """The props of ``sel.a|b|..`` (a ``prop_alts`` node), in the order listed; a prop
        listed twice is refused.

        >>> c = _Compiler("", Requirements(), {})
        >>> [s.key for s in c.prop_alts(parse("click.channel|utm_source"))]
        ['stream:click.channel', 'stream:click.utm_source']
        >>> compile_expr("last(click.channel|channel)", Requirements(), {})
        Traceback (most recent call last):
        ...
        stream_app.rules.compiler.CompileError: prop 'channel' is listed twice in ... (column 6)
        """
        sel_name, *props = (str(t) for t in node.children)
        seen: set[str] = set()
        for prop in props:
            if prop in seen:
                raise self.err(node, f"prop {prop!r} is listed twice in {self.src(node)}")
            seen.add(prop)
        sel = self.parse_selector(node, sel_name)
        self.reads.add(sel)
        return tuple(PropSpec(sel, prop) for prop in props)

    # -- expressions
    def expr(self, node: Tree | Token) -> Fn:
        if isinstance(node, Token):  # pragma: no cover - all tokens sit in trees
            raise self.err(node, f"unexpected {node!s}")
        kind = node.data
        ch = node.children
        if kind in ("number", "duration", "string", "param"):
            v = self.const(node)
            return lambda ctx: v
        if kind == "true":
            return lambda ctx: True
        if kind == "false":
            return lambda ctx: False
        if kind == "null":
            return lambda ctx: None
        if kind == "list":
            items = [self.expr(c) for c in ch]
            return lambda ctx: [f(ctx) for f in items]
        if kind == "or_":
            a, b = self.expr(ch[0]), self.expr(ch[1])
            return lambda ctx: bool(a(ctx)) or bool(b(ctx))
        if kind == "and_":
            a, b = self.expr(ch[0]), self.expr(ch[1])
            return lambda ctx: bool(a(ctx)) and bool(b(ctx))
        if kind == "not_":
            a = self.expr(ch[0])
            return lambda ctx: not a(ctx)
        if kind == "neg":
            a = self.expr(ch[0])
            return lambda ctx: (lambda v: -v if _num(v) else None)(a(ctx))
        if kind == "compare":
            self.numbers_ordered(str(ch[1]), ch[0], ch[2])
            atom = self.since_threshold(ch[0], str(ch[1]), ch[2])
            counted = atom is None and self.count_threshold(ch[0], ch[2])
            timed, reads = self.timed, set(self.reads)
            a, op, b = self.expr(ch[0]), _compare(str(ch[1])), self.expr(ch[2])
            fn = self.binary(op, a, b, ch[0], ch[2])
            self.score_test(op, a, b, ch[0], ch[2])
            if atom is not None:   # the clock read has a horizon: not "timed"
                self.timed = timed
                self.clocks.add(atom)
            if atom is not None or counted:   # its selector is read only through the guard
                side, days = counted or (None, None)
                cmp_, left = _compare(str(ch[1])), atom.left if atom else side == "left"
                c_ = self.const(ch[2] if left else ch[0])

                def res(v: Any, cmp_=cmp_, c_=c_, left=left) -> bool:
                    return cmp_(v, c_) if left else cmp_(c_, v)
                call = ch[0] if left else ch[2]
                sel = Selector.parse("|".join(str(t) for t in call.children[1].children))
                self.guard(node, _since_moved(atom.field, sel, res, atom.points)
                           if atom is not None else _count_moved(sel, res, c_)
                           if days is None else _window_count_moved(sel, days, res), reads)
            return fn
        if kind == "arith":
            a, op, b = self.expr(ch[0]), _arith(str(ch[1])), self.expr(ch[2])
            return self.binary(op, a, b, ch[0], ch[2])
        if kind == "in_":
            a, b = self.expr(ch[0]), self.members(ch[1])
            return lambda ctx: _contains(a(ctx), b(ctx))
        if kind == "not_in":
            a, b = self.expr(ch[0]), self.members(ch[1])
            return lambda ctx: not _contains(a(ctx), b(ctx))
        if kind == "dotted":
            return self.name(node)
        if kind == "selector":
            raise self.err(node, "an event selector is only valid as a function argument")
        if kind == "prop_alts":
            raise self.err(node, f"prop alternatives such as {self.src(node)} are only valid "
                                 "as the argument of first() or last()")
        if kind == "call":
            return self.call(node)
        if kind == "kwarg":
            raise self.err(node, "keyword argument outside a call")
        raise self.err(node, f"unsupported expression {kind}")  # pragma: no cover

    def numbers_ordered(self, op: str, *sides: Tree | Token) -> None:
        """Refuse a ``$parameter`` whose value is text on either side of ``<``, ``<=``,
        ``>``, ``>=``: a threshold is business configuration, and against a number the
        comparison is always false (``active_days(...) >= $days`` with ``days: "three"``
        would hold for nobody, silently). A text literal keeps the language's rule
        (ordering across types is false)."""
        if op not in ("<", "<=", ">", ">="):
            return
        for side in sides:
            if isinstance(side, Tree) and side.data == "param":
                value = self.const(side)
                if isinstance(value, str):
                    raise self.err(side, f"${side.children[0]} is {value!r}, not a number: "
                                         f"{op} compares numbers (a duration such as 30d is "
                                         "one)")

    def members(self, node: Tree | Token) -> Fn:
        """The right side of ``in`` / ``not in``: a list of literals is built once, as a
        tuple (``in`` compares its items as it compares a list's, in the same order), instead
        of a new list per evaluation; any other expression as :meth:`expr` compiles it.

        >>> c = _Compiler("", Requirements(), {"k": "b"})
        >>> c.members(parse("['a', $k, 1, null]"))(None), c.members(parse("[profile.x]"))
        (('a', 'b', 1, None), <function ...>)
        """
        if isinstance(node, Tree) and node.data == "list" and all(
                _literal(c) is not _MISSING for c in node.children):
            items = tuple(self.expr(c)(None) for c in node.children)
            return lambda ctx: items
        return self.expr(node)

    def binary(self, op: Callable[[Any, Any], Any], a: Fn, b: Fn, left: Tree | Token,
               right: Tree | Token) -> Fn:
        """``op(a(ctx), b(ctx))``, with a literal operand read once at compile time (the
        same value ``a``/``b`` would give: one call less per evaluation).

        >>> req = Requirements()
        >>> [compile_expr(t, req, {"k": 2}).fn(None) for t in ("$k * 3 > 5", "1 + null")]
        [True, None]
        """
        lc, rc = _literal(left), _literal(right)
        if rc is not _MISSING:
            if lc is not _MISSING:
                return lambda ctx: op(a(ctx), b(ctx))
            c = b(None)
            return lambda ctx: op(a(ctx), c)
        if lc is not _MISSING:
            c = a(None)
            return lambda ctx: op(c, b(ctx))
        return lambda ctx: op(a(ctx), b(ctx))

    def score_test(self, op: Callable[[Any, Any], Any], a: Fn, b: Fn, left: Tree | Token,
                   right: Tree | Token) -> None:
        """Note a comparison of a score with a constant (``score.X OP c``, either side) in
        :attr:`score_tests`: ``op`` applied as :meth:`binary` applies it, the constant read
        once (see :attr:`Compiled.scores`).

        >>> c = compile_expr("score.convert >= $hi or 0.2 < score.convert", Requirements(),
        ...                  {"hi": 0.5})
        >>> [[t(v) for t in c.scores["convert"]] for v in (0.1, 0.3, 0.7, None)]
        [[False, False], [False, True], [True, True], [False, False]]
        >>> compile_expr("score.convert * 2 > 1 and score.at_risk == null", Requirements(),
        ...              {}).scores["convert"] is None
        True
        """
        for node, other, const, is_left in ((left, right, b, True), (right, left, a, False)):
            if (isinstance(node, Tree) and node.data == "dotted" and len(node.children) == 2
                    and str(node.children[0]) in ("score", "scores")
                    and _literal(other) is not _MISSING):
                c = const(None)
                test = ((lambda v, c=c: op(v, c)) if is_left else (lambda v, c=c: op(c, v)))
                self.score_tests.setdefault(str(node.children[1]), []).append(test)
                return

    def name(self, node: Tree) -> Fn:
        parts = [str(t) for t in node.children]
        if len(parts) == 2 and parts[0] == "profile":
            field_name = parts[1]
            self.req.profile.add(field_name)
            self.reads.add(Selector(streams=frozenset({"profile"})))
            return self.traced(self.src(node), lambda ctx: query.profile(ctx.state, field_name))
        if len(parts) == 2 and parts[0] in ("score", "scores"):
            target = parts[1]
            self.reads.add(SCORES)
            self.score_reads[target] = self.score_reads.get(target, 0) + 1
            return self.traced(self.src(node), lambda ctx: query.score(ctx.state, target))
        raise self.err(node, f"unknown name {'.'.join(parts)!r} (use profile.X, score.X, "
                             "$param or a function call)")

    def traced(self, key: str, impl: Fn) -> Fn:
        def run(ctx: EvalContext) -> Any:
            v = ctx.cache.get(key, _MISSING)
            if v is _MISSING:
                v = ctx.cache[key] = impl(ctx)
            if ctx.trace is not None:
                ctx.trace[key] = v
            return v
        return run

    def call(self, node: Tree) -> Fn:
        fname = str(node.children[0])
        args: list[Tree] = []
        kwargs: dict[str, Tree] = {}
        for a in node.children[1:]:
            if isinstance(a, Tree) and a.data == "kwarg":
                kwargs[str(a.children[0])] = a.children[1]
            elif kwargs:
                raise self.err(a, "positional argument after keyword argument")
            else:
                args.append(a)
        impl = _FUNCTIONS.get(fname)
        if impl is None:
            raise self.err(node.children[0], f"unknown function {fname!r}")
        reads = set(self.reads)
        fn = impl(self, node, args, kwargs)
        if fname in _UNTRACED:
            return fn
        fn = self.traced(self.src(node), fn)
        if fname == "active_days":   # a day count: moves only on a new active day
            sel = (Selector.parse("|".join(str(t) for t in args[0].children)) if len(args) == 2
                   else Selector(any=True))
            self.guard(node, _active_days_moved(sel, int(self.const(args[-1])) // DAY_MS),
                       reads)
        return fn

    def guard(self, node: Tree, spec: GuardSpec, reads_before: set[Selector]) -> None:
        """Make the selectors read by ``node`` (since ``reads_before``) a :class:`Guard`: an
        event of them re-runs the rule only if ``moved`` (of ``spec``) says it changed the
        node's value."""
        new = self.reads - reads_before
        if new:
            self.reads = set(reads_before)
            group, pre, moved, after = spec
            self.guards.add(Guard(self.src(node), frozenset(new), moved, group, pre, after))

    def count_threshold(self, left: Tree | Token, right: Tree | Token
                        ) -> tuple[str, int | None] | None:
        """``("left"|"right", None)`` if this is ``count(sel) OP const`` (lifetime count),
        ``(side, days)`` for ``count(sel, <days>d) OP const`` (a daily window, not decayed)."""
        for node, other, side in ((left, right, "left"), (right, left, "right")):
            if (isinstance(node, Tree) and node.data == "call"
                    and str(node.children[0]) == "count" and len(node.children) in (2, 3)
                    and not any(isinstance(a, Tree) and a.data == "kwarg"
                                for a in node.children[1:])):
                try:
                    self.const(other)
                    win = self.const(node.children[2]) if len(node.children) == 3 else None
                except CompileError:
                    return None
                if win is None:
                    return side, None
                if not _num(win) or win <= 0 or win % DAY_MS:
                    return None   # a sub-day window: a clock atom, not a guard
                return side, int(win // DAY_MS)
        return None

    def arity(self, node: Tree, args: list, kwargs: dict, lo: int, hi: int,
              allowed: tuple[str, ...] = ()) -> None:
        fname = str(node.children[0])
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo}..{hi}"
            raise self.err(node, f"{fname}() takes {want} positional arguments, got {len(args)}")
        for k in kwargs:
            if k not in allowed:
                raise self.err(node, f"{fname}() has no argument {k!r}")


def _number(token: Token) -> int | float:
    s = str(token)
    f = float(s)
    return int(f) if f.is_integer() and "." not in s and "e" not in s.lower() else f


# -- functions --------------------------------------------------------------------------
def _f_count(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 1, 2, ("half_life",))
    sel = c.selector(args[0])
    if len(args) == 1:
        if "half_life" in kwargs:
            raise c.err(node, "count(): half_life needs a window")
        return lambda ctx: query.count_all(ctx.state, sel)
    win = c.window(args[1])
    if win % DAY_MS == 0:
        days = win // DAY_MS
        c.req.need_days(sel, days)
        c.daily = True
        hl = None
        if "half_life" in kwargs:
            hl = c.window(kwargs["half_life"]) / DAY_MS
        c.windows.add(DailyWindow(sel, None, days, hl is not None))
        return lambda ctx: query.count_days(ctx.state, sel, ctx.today, days, hl)
    if "half_life" in kwargs:
        raise c.err(node, "count(): half_life needs a window of whole days")
    c.req.recent.add(sel)
    c.clocks.add(RecentWindow(sel, win))
    c.req.recent_ms = max(c.req.recent_ms, win)
    return lambda ctx: query.count_recent(ctx.state, sel, ctx.now, win)


def _daily_window(c: _Compiler, node, arg, sel: Selector | None = None,
                  spec: PropSpec | None = None) -> int:
    win = c.window(arg)
    if win % DAY_MS:
        raise c.err(arg, f"{node.children[0]}(): the window must be whole days (e.g. 30d)")
    days = win // DAY_MS
    c.daily = True
    if sel is not None:
        c.req.need_days(sel, days)
        c.windows.add(DailyWindow(sel, None, days))
    if spec is not None:
        c.req.need_sum_days(spec, days)
        c.windows.add(DailyWindow(None, spec, days))
    return days


def _f_active_days(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 1, 2)
    sel = c.selector(args[0]) if len(args) == 2 else Selector(any=True)
    c.reads.add(sel)
    days = _daily_window(c, node, args[-1], sel=sel)
    return lambda ctx: query.active_days(ctx.state, sel, ctx.today, days)


def _f_sum(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 1, 2)
    spec = c.propspec(args[0])
    c.req.sums.add(spec)
    days = _daily_window(c, node, args[1], spec=spec) if len(args) == 2 else None
    return lambda ctx: query.prop_sum(ctx.state, spec, ctx.today, days)


def _f_avg(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 1, 2)
    spec = c.propspec(args[0])
    c.req.sums.add(spec)
    days = (_daily_window(c, node, args[1], sel=spec.sel, spec=spec) if len(args) == 2
            else None)

    def f(ctx: EvalContext) -> Any:
        n = (query.count_all(ctx.state, spec.sel) if days is None
             else query.count_days(ctx.state, spec.sel, ctx.today, days))
        return query.prop_sum(ctx.state, spec, ctx.today, days) / n if n else None
    return f


def _prop_reader(requirement: str, kind: str, read: Callable[[Any, Any], Any],
                 alts: Callable[[Any, Any], Any] | None = None):  # noqa: ANN202
    """Builder of a one-argument prop function (``peak``, ``first``, ``last``, ``distinct``):
    records what the state must keep (``Requirements.<requirement>``) and reads it. Its value
    moves only when the updater says the aggregate (``kind`` in the state) moved, so the
    selector is read through a :class:`Guard` (e.g. ``last(click.channel)`` re-runs its
    rule only for a click that changes the latest channel).

    ``alts``: the reader of prop alternatives (``first(click.channel|utm_source)``, see
    :func:`_alts_reader`), for ``first`` and ``last``; without it they are refused."""
    fname = {"mx": "peak", "fp": "first", "lp": "last", "dv": "distinct"}[kind]

    def build(c: _Compiler, node, args, kwargs) -> Fn:
        c.arity(node, args, kwargs, 1, 1)
        reads = set(c.reads)
        if isinstance(args[0], Tree) and args[0].data == "prop_alts":
            if alts is None:
                raise c.err(args[0], f"{fname}() reads one prop: alternatives such as "
                                     f"{c.src(args[0])} are only valid in first() and last()")
            specs = c.prop_alts(args[0])
            getattr(c.req, requirement).update(specs)
            (c.req.first_alts if kind == "fp" else c.req.last_alts).add(specs)
            keys = tuple(f"{kind}:{sp.key}" for sp in specs)
            c.guard(node, _prop_moved(*keys), reads)
            return _alts_reader(kind, specs, alts)
        spec = c.propspec(args[0])
        getattr(c.req, requirement).add(spec)
        c.guard(node, _prop_moved(f"{kind}:{spec.key}"), reads)
        return lambda ctx: read(ctx.state, spec)
    return build


def _alts_reader(kind: str, specs: tuple[PropSpec, ...],
                 read: Callable[[Any, Any], Any]) -> Fn:
    """The compiled reader of ``first``/``last`` (``kind`` ``"fp"``/``"lp"``) over prop
    alternatives: the value of the earliest / latest ``[ts, event_id, value]`` record of
    ``specs`` in the state, a tie (one event carrying several of the props) going to the
    prop listed first. Two props (the usual case) are read inline: the state's records
    dict and the two records, a comparison of their times (and ids when equal); more go
    through ``read`` (``query.prop_first_of`` / ``prop_last_of``), which gives the same.

    >>> from stream_app.state.requirements import Selector
    >>> ch, utm = (PropSpec(Selector.parse("click"), p) for p in ("channel", "utm_source"))
    >>> f = _alts_reader("lp", (ch, utm), query.prop_last_of)
    >>> class Ctx: state = {"lp": {ch.key: [5, "e1", "a"], utm.key: [9, "e2", "b"]}}
    >>> f(Ctx), _alts_reader("fp", (ch, utm), query.prop_first_of)(Ctx)
    ('b', None)
    """
    if len(specs) != 2:
        return lambda ctx: read(ctx.state, specs)
    k1, k2 = specs[0].key, specs[1].key
    latest = kind == "lp"

    def pick2(ctx: EvalContext) -> Any:
        recs = ctx.state.get(kind)
        if not recs:
            return None
        a, b = recs.get(k1), recs.get(k2)
        if b is None:
            return None if a is None else a[2]
        if a is None:
            return b[2]
        # b only if strictly later (last) / earlier (first): a tie keeps the first listed
        kb, ka = (b[0], b[1]), (a[0], a[1])
        return b[2] if (kb > ka if latest else kb < ka) else a[2]
    return pick2


_f_peak = _prop_reader("peaks", "mx", query.prop_peak)
_f_first = _prop_reader("firsts", "fp", query.prop_first, query.prop_first_of)
_f_last = _prop_reader("lasts", "lp", query.prop_last, query.prop_last_of)
_f_distinct = _prop_reader("distincts", "dv", query.prop_distinct)


def _f_since(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 1, 1)
    sel = c.selector(args[0])
    c.timed = True
    return lambda ctx: query.since(ctx.state, sel, ctx.now)


def _f_since_first(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 1, 1)
    sel = c.selector(args[0])
    c.timed = True
    return lambda ctx: query.since_first(ctx.state, sel, ctx.now)


def _f_streak(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 1, 1, ("reset",))
    if "reset" not in kwargs:
        raise c.err(node, "streak() needs reset: <selector>")
    spec = PairSpec(c.selector(args[0]), c.selector(kwargs["reset"]))
    c.req.streaks.add(spec)
    return lambda ctx: query.streak(ctx.state, spec)


def _f_seq(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 2, 2, ("within",))
    spec = PairSpec(c.selector(args[0]), c.selector(args[1]))
    within = c.window(kwargs["within"]) if "within" in kwargs else None
    c.req.seqs.add(spec)
    return lambda ctx: query.seq(ctx.state, spec, within)


def _f_rate(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 2, 3)
    a, b = c.selector(args[0]), c.selector(args[1])
    if len(args) == 3:
        days = _daily_window(c, node, args[2], sel=a)
        c.req.need_days(b, days)
        c.windows.add(DailyWindow(b, None, days))

        def f(ctx: EvalContext) -> Any:
            den = query.count_days(ctx.state, b, ctx.today, days)
            return query.count_days(ctx.state, a, ctx.today, days) / den if den else None
        return f

    def g(ctx: EvalContext) -> Any:
        den = query.count_all(ctx.state, b)
        return query.count_all(ctx.state, a) / den if den else None
    return g


def _f_tag(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 1, 1)
    a = args[0]
    if not (isinstance(a, Tree) and a.data == "dotted" and len(a.children) == 1):
        raise c.err(a, "tag() takes a tag id")
    tag_id = str(a.children[0])
    c.deps.add(tag_id)
    return lambda ctx: ctx.tags.get(tag_id)


#: the trace key of prev() (the why record's ``values``): one per rule, so not memoised
#: in ``ctx.cache`` (shared by the rules of an evaluation, by call text)
PREV_KEY = "prev()"


def _f_prev(c: _Compiler, node, args, kwargs) -> Fn:
    """``prev()``: the value the tag being evaluated held before this evaluation (null: the
    user never held it), from ``ctx.prev``. Traced as ``prev()`` when it is read, so a why
    record shows it where it decided; not a dependency (the cycle check leaves it alone).

    >>> compile_expr("prev(intent)", Requirements(), {}, tag_id="intent")
    Traceback (most recent call last):
    ...
    stream_app.rules.compiler.CompileError: prev() takes no arguments: ... (column 1)
    """
    if args or kwargs:
        raise c.err(node, "prev() takes no arguments: it reads the previous value of the "
                          "tag being evaluated (another tag's value in this evaluation: "
                          "tag(id))")
    tag_id = c.tag_id
    if tag_id is None:
        raise c.err(node, "prev() is only valid in a tag's rule (a case's when or a tag's "
                          "value): it reads the value the tag held before this evaluation")
    c.prev = True

    def f(ctx: EvalContext) -> Any:
        v = ctx.prev.get(tag_id)
        if ctx.trace is not None:
            ctx.trace[PREV_KEY] = v
        return v
    return f


def _f_coalesce(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 1, 16)
    fs = [c.expr(a) for a in args]

    def f(ctx: EvalContext) -> Any:
        for g in fs:
            v = g(ctx)
            if v is not None:
                return v
        return None
    return f


def _numeric_reduce(reducer: Callable[..., Any]):
    def build(c: _Compiler, node, args, kwargs) -> Fn:
        c.arity(node, args, kwargs, 1, 16)
        fs = [c.expr(a) for a in args]

        def f(ctx: EvalContext) -> Any:
            vals = [g(ctx) for g in fs]
            for v in vals:
                if type(v) not in _NUMBER_TYPES and not _num(v):
                    return None
            return reducer(vals)
        return f
    return build


def _f_round(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 1, 2)
    a = c.expr(args[0])
    nd = c.const(args[1]) if len(args) == 2 else 0
    if not _num(nd) or nd != int(nd):
        raise c.err(args[1], f"round(): the number of decimals must be a whole number, got "
                             f"{nd!r}")
    nd = int(nd)

    def f(ctx: EvalContext) -> Any:
        v = a(ctx)
        if not _num(v):
            return None
        return round(v, nd) if nd else int(round(v))
    return f


def _f_nullif(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 2, 2)
    a, b = c.expr(args[0]), c.expr(args[1])

    def f(ctx: EvalContext) -> Any:
        v = a(ctx)
        return None if v == b(ctx) else v
    return f


def _f_if(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 3, 3)
    cond, a, b = (c.expr(x) for x in args)
    return lambda ctx: a(ctx) if cond(ctx) else b(ctx)


def _f_days(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 1, 1)
    a = c.expr(args[0])
    return lambda ctx: (lambda v: v / DAY_MS if _num(v) else None)(a(ctx))


def _f_size(c: _Compiler, node, args, kwargs) -> Fn:
    c.arity(node, args, kwargs, 1, 1)
    a = c.expr(args[0])
    return lambda ctx: (lambda v: len(v) if isinstance(v, list | str) else None)(a(ctx))


def lower_value(v: Any) -> Any:
    """The value of ``lower(x)``: a string trimmed and lower-cased, any other value (a number,
    a bool, a list, null) unchanged.

    >>> [lower_value(v) for v in ("  FALSE ", "N", "Yes\t", "否", 0, True, None)]
    ['false', 'n', 'yes', '否', 0, True, None]
    """
    return v.strip().lower() if isinstance(v, str) else v


def _f_lower(c: _Compiler, node, args, kwargs) -> Fn:
    """``lower(x)``: ``x`` trimmed and lower-cased when it is a string (:func:`lower_value`),
    so a rule matches text spellings whatever their case or surrounding blanks; a number or
    a bool passes unchanged (``lower(x) in [true, 1, 'true', 'yes']``) and null stays null.

    >>> f = lambda text: compile_expr(text, Requirements(), {}).fn(None)
    >>> f("lower(' No ') in ['no', 'n']"), f("lower('FALSE')"), f("lower(0)"), f("lower(null)")
    (True, 'false', 0, None)
    """
    c.arity(node, args, kwargs, 1, 1)
    a = c.expr(args[0])
    return lambda ctx: lower_value(a(ctx))


_FUNCTIONS: dict[str, Callable[..., Fn]] = {
    "count": _f_count, "active_days": _f_active_days, "sum": _f_sum, "avg": _f_avg,
    "peak": _f_peak, "first": _f_first, "last": _f_last, "distinct": _f_distinct,
    "since": _f_since, "since_first": _f_since_first, "streak": _f_streak, "seq": _f_seq,
    "rate": _f_rate, "tag": _f_tag, "prev": _f_prev, "coalesce": _f_coalesce,
    "min": _numeric_reduce(min), "max": _numeric_reduce(max), "round": _f_round,
    "days": _f_days, "size": _f_size, "nullif": _f_nullif, "lower": _f_lower,
    "if": _f_if,
}
#: pure helpers not worth memoising or explaining on their own (and prev(), which traces
#: itself: its value is the rule's own, not one call text's for every rule)
_UNTRACED = {"coalesce", "min", "max", "round", "days", "size", "nullif", "lower", "if",
             "prev"}
FUNCTION_NAMES = sorted(_FUNCTIONS)
