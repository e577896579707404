"""Rule-set model: tag definitions, compiled rules, and pure evaluation of a state.

A :class:`RuleSet` is built by :mod:`stream_app.rules.loader`. ``RuleSet.evaluate`` reads a
state record at a clock time and returns every visible tag's value with its "why" record;
it never mutates the state.

Example:
    >>> from stream_app.rules.loader import ruleset_from_text
    >>> rs = ruleset_from_text('''
    ... version: "t.1"
    ... tags:
    ...   - id: viewer
    ...     family: activity
    ...     zh: 看课
    ...     en: Viewer
    ...     kind: bool
    ...     value: "count(course_view) > 0"
    ... ''')
    >>> from stream_app.state import new_state
    >>> rs.evaluate(new_state("u1"), 0)["viewer"].value
    False
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_app.rules.compiler import (
    PREV_KEY,
    ClockAtom,
    Compiled,
    DailyWindow,
    EvalContext,
    Guard,
    Probe,
    SinceThreshold,
    first_point_after,
)
from stream_app.state import query
from stream_app.state.requirements import Requirements, Selector

KINDS = ("enum", "bool", "number", "text", "set")
_INFINITIES = (float("inf"), float("-inf"))
#: runs of a rule reading prev() until its value settles (see :meth:`RuleSet._run`)
SETTLE_RUNS = 4

_UNSET = object()
_UNSETTLED: set[tuple[str, str]] = set()   # rules found not to settle: logged once

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValueDef:
    """One value of an enumerated tag, with its labels."""

    value: Any
    zh: str = ""
    en: str = ""


#: how a set tag's element labels are joined, per language
_JOINER = {"zh": "、", "en": ", "}
_YES_NO = {("zh", True): "是", ("zh", False): "否", ("en", True): "yes", ("en", False): "no"}


@dataclass
class CaseDef:
    """``value`` applies when ``when`` is true (``when=None``: the default)."""

    value: Any
    when: Compiled | None = None


@dataclass
class TagDef:
    """A tag: identity, labels, kind, and its compiled rule (cases or a value expression)."""

    id: str
    family: str
    zh: str
    en: str
    version: int | str = 1
    kind: str = "enum"
    values: list[ValueDef] = field(default_factory=list)
    cases: list[CaseDef] = field(default_factory=list)
    expr: Compiled | None = None
    hidden: bool = False          # evaluated (usable through tag()) but never published
    round: int | None = None      # number tags: decimals kept
    description: str = ""
    source: str = ""              # "file:line" of the definition
    deps: tuple[str, ...] = ()    # tags its rule reads with tag(...)
    reads: tuple[Selector, ...] = ()   # events whose aggregates its rule reads
    timed: bool = False           # its rule reads the exact clock with no known horizon
    daily: bool = False           # its rule reads the business day (daily windows)
    clocks: tuple[ClockAtom, ...] = ()   # clock reads whose next change the state tells
    guards: tuple[Guard, ...] = ()       # reads that matter only when their value moves
    windows: tuple[DailyWindow, ...] = ()   # the daily windows it reads (``daily``)
    #: model scores it reads -> their comparisons with constants (None: read otherwise too;
    #: see :attr:`~stream_app.rules.compiler.Compiled.scores`)
    scores: dict[str, tuple[Callable[[Any], Any], ...] | None] = field(default_factory=dict)
    #: its rule reads prev(), its own value before the evaluation (see :meth:`RuleSet._run`)
    prev: bool = False
    #: every value its rule gives is already normal (:meth:`normalise` returns it as it is):
    #: set by :class:`RuleSet` (:meth:`is_plain`), so evaluations skip the call
    plain: bool = field(default=False, init=False, repr=False, compare=False)

    def finish(self) -> None:
        """Collect deps/reads/timed/daily/clocks from the compiled expressions (called by the
        loader): what the tag's value can depend on, so the engine re-evaluates it only when
        one of those moved."""
        exprs = [self.expr] if self.expr is not None else [c.when for c in self.cases if c.when]
        self.deps = tuple(sorted(set().union(*(e.deps for e in exprs))))
        self.reads = tuple(sorted(set().union(*(e.reads for e in exprs)), key=lambda s: s.key))
        self.timed = any(e.timed for e in exprs)
        self.daily = any(e.daily for e in exprs)
        self.clocks = tuple(sorted(set().union(*(e.clocks for e in exprs)), key=repr))
        self.guards = tuple(sorted(set().union(*(e.guards for e in exprs)), key=lambda g: g.text))
        self.windows = tuple(sorted(set().union(*(e.windows for e in exprs)), key=repr))
        self.scores = _merge_scores(e.scores for e in exprs)
        self.prev = any(e.prev for e in exprs)

    def label(self, value: Any, lang: str = "en") -> str:
        """Label of ``value`` for people (the API's ``labels``), never a Python repr: the
        rule's label of the value (enum, bool and set-element cases); a set's elements'
        labels joined with ``、`` (zh) or ``, `` (en); 是/否 (zh) or yes/no (en) for a bool the
        rule gives no label (as ``why`` and the tag-change descriptions word it); other values
        as text.

        >>> t = TagDef("c", "f", "", "", kind="set", values=[ValueDef("java", "Java 开发", "Java")])
        >>> t.label(["java", "pmp"], "zh"), t.label(["java", "pmp"], "en")
        ('Java 开发、pmp', 'Java, pmp')
        >>> b = TagDef("r", "f", "", "", kind="bool", values=[ValueDef(True, "有退费", "Refunded")])
        >>> b.label(True, "zh"), b.label(False, "zh"), b.label(False, "en"), b.label(None)
        ('有退费', '否', 'no', '')
        """
        if value is None:
            return ""
        if isinstance(value, list | tuple | set | frozenset):
            items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
            return _JOINER.get(lang, ", ").join(self.label(x, lang) for x in items)
        for v in self.values:
            # 1 == True in Python: a bool only matches a bool
            if v.value == value and isinstance(v.value, bool) == isinstance(value, bool):
                text = getattr(v, lang, "")
                if text:
                    return str(text)
                break
        if isinstance(value, bool):
            return _YES_NO.get((lang, value)) or ("yes" if value else "no")
        return str(value)

    def is_plain(self) -> bool:
        """Whether :meth:`normalise` gives back every value the rule can give, the same
        object: an enum tag (any value), or a case rule whose values all come back as they
        are (e.g. a bool tag with True / False cases; not a set tag: a new list each time).

        >>> TagDef("a", "f", "", "", kind="bool", cases=[CaseDef(True), CaseDef(False)]
        ...        ).is_plain()
        True
        >>> TagDef("a", "f", "", "", kind="set", cases=[CaseDef(["x"])]).is_plain()
        False
        >>> TagDef("a", "f", "", "", kind="text", expr=Compiled(str, "x")).is_plain()
        False
        """
        if self.kind == "enum":
            return True
        if self.expr is not None:
            return False
        return all(c.value is None or self.normalise(c.value) is c.value for c in self.cases)

    def normalise(self, v: Any) -> Any:
        """Coerce a raw rule result to this tag's kind (None stays None = no tag)."""
        if v is None:
            return None
        k = self.kind
        if k == "bool":
            return bool(v)
        if k == "number":
            if isinstance(v, bool) or not isinstance(v, int | float):
                return None
            if self.round is not None:
                v = round(v, self.round)
            if isinstance(v, float) and v != v or v in _INFINITIES:
                return None   # NaN / infinity: no value (JSON has none)
            # whole numbers as int, unless outside what JSON consumers hold exactly (2**53)
            return int(v) if float(v).is_integer() and abs(v) < 2**53 else float(v)
        if k == "set":
            if not isinstance(v, list | tuple | set):
                v = [v]
            return sorted({str(x) for x in v}) or None
        if k == "text":
            return str(v)
        return v


@dataclass
class TagValue:
    """A tag's value at an evaluation and why it has it."""

    value: Any
    why: dict[str, Any]


@dataclass
class Referral:
    """Derived events for the inviter: ``stages`` maps the invitee's event type to the type
    emitted to the inviter; the inviter id is read from the first of ``props`` present."""

    props: tuple[str, ...] = ("referrer", "inviter_id")
    stages: dict[str, str] = field(default_factory=dict)


@dataclass
class RuleSet:
    """A compiled, validated rule set."""

    version: str
    order: list[TagDef]                       # every tag, dependencies first
    params: dict[str, Any] = field(default_factory=dict)
    requirements: Requirements = field(default_factory=Requirements)
    granularity_ms: int = 86_400_000          # finest duration the rules compare against
    referral: Referral = field(default_factory=Referral)
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tags: list[TagDef] = [t for t in self.order if not t.hidden]
        self.hidden_ids: list[str] = [t.id for t in self.order if t.hidden]
        self.tag_ids: tuple[str, ...] = tuple(t.id for t in self.tags)
        for t in self.order:
            t.plain = t.is_plain()
        self.by_id: dict[str, TagDef] = {t.id: t for t in self.order}
        self._affected: dict[tuple[str, str, bool], frozenset[str]] = {}
        atoms: dict[Any, None] = {}
        for t in self.order:
            atoms.update(dict.fromkeys(t.clocks))
        #: every clock read with a known horizon (see :meth:`horizon`)
        self.clock_atoms: tuple[ClockAtom, ...] = tuple(atoms)
        groups: dict[tuple[str, Any], set[int]] = {}   # since thresholds by (field, selector)
        self._recent_atoms = []
        for a in self.clock_atoms:
            if isinstance(a, SinceThreshold):
                groups.setdefault((a.field, a.sel), set()).update(a.points)
            else:
                self._recent_atoms.append(a)
        #: since() thresholds by (field, selector), in a fixed order (``state["tg"]`` holds
        #: their start times in this order, see :meth:`clock_starts`)
        self._since_groups = sorted(((f, sel, tuple(sorted(p))) for (f, sel), p in groups.items()
                                     if p), key=lambda g: (g[0], g[1].key))
        self._group_hits: dict[tuple[str, str], tuple[bool, tuple]] = {}
        # tag -> the tags that read it through tag(), directly or not
        direct: dict[str, set[str]] = {t.id: set() for t in self.order}
        for t in self.order:
            for d in t.deps:
                direct.setdefault(d, set()).add(t.id)
        self._dependents: dict[str, frozenset[str]] = {}
        for t in reversed(self.order):   # dependents come later in the order
            out = set(direct[t.id])
            for d in direct[t.id]:
                out |= self._dependents.get(d, frozenset())
            self._dependents[t.id] = frozenset(out)
        self._plans: dict[tuple, tuple[frozenset[str], tuple[TagDef, ...], bool]] = {}
        #: daily window -> the tags that read it (see :meth:`daily_moved`)
        self._windows: dict[DailyWindow, set[str]] = {}
        for t in self.order:
            for w in t.windows:
                self._windows.setdefault(w, set()).add(t.id)
        #: (window, its tags, where its buckets are: "s" a prop sum's key, "d" the types of
        #: a types-only selector, None: query._day_lists of the selector key) for
        #: :meth:`daily_moved`
        self._window_reads = tuple(
            (frozenset(tags), w.days, w.decayed, w.sel,
             *(("s", w.spec.key) if w.spec is not None
               else ("d", tuple(sorted(w.sel.types)))
               if not w.sel.any and not w.sel.streams else (None, w.sel.key)))
            for w, tags in self._windows.items())
        #: where :meth:`daily_moved` starts: the windows read through a selector's lists
        #: (always looked at), and those whose bucket lists are a type's / a prop sum's, by
        #: that type / sum key (a window with none of them in a state is passed at no cost)
        self._windows_always = tuple(i for i, r in enumerate(self._window_reads) if r[4] is None)
        self._windows_of: dict[str, list[int]] = {}
        for i, (*_, where, what) in enumerate(self._window_reads):
            for k in (what if where == "d" else ("s:" + what,) if where == "s" else ()):
                self._windows_of.setdefault(k, []).append(i)
        self._empty: dict[str, Any] | None = None
        self._guards: dict[tuple[str, str], tuple] = {}
        #: every model score a rule reads -> its comparisons with constants in the rules
        #: (None: some rule reads it otherwise), see :attr:`TagDef.scores`
        self.score_tests = _merge_scores(t.scores for t in self.order)
        #: the tags whose rule reads prev() (their own value before an evaluation), and
        #: whether each is hidden (its value kept in ``state["hid"]``, not ``state["tags"]``)
        self.prev_ids: tuple[tuple[str, bool], ...] = tuple(
            (t.id, t.hidden) for t in self.order if t.prev)
        #: the tags whose value depends on the values before (prev(), directly or through
        #: tag()): their value is the evaluations' history, not only the events and the clock
        #: (the same events in another order or batching may give another value)
        self.history_ids: frozenset[str] = frozenset().union(
            *({tid} | self._dependents[tid] for tid, _ in self.prev_ids))

    @property
    def empty_values(self) -> dict[str, Any]:
        """Every tag's value (hidden ones included; None left out) on an empty state.

        The same at any clock time: every query of an empty state gives 0 / None / [],
        whatever ``now`` is. A new user's first evaluation starts from these values, so only
        the tags reading its first events are run."""
        if self._empty is None:
            from stream_app.state.record import new_state  # noqa: PLC0415
            _, ctx = self.evaluate_raw(new_state(""), 0)
            self._empty = {t: v for t, v in ctx.tags.items() if v is not None}
        return self._empty

    def affected(self, etype: str, stream: str, clock_moved: bool = True) -> frozenset[str]:
        """Tags whose rule reads events of (``etype``, ``stream``), or the exact clock when
        ``clock_moved`` (since() or sub-day windows, with or without a known horizon)."""
        key = (etype, stream, clock_moved)
        out = self._affected.get(key)
        if out is None:
            out = frozenset(t.id for t in self.order
                            if (clock_moved and (t.timed or t.clocks))
                            or any(s.matches(etype, stream) for s in t.reads)
                            or any(s.matches(etype, stream) for g in t.guards for s in g.sels))
            self._affected[key] = out
        return out

    def guards_for(self, etype: str, stream: str) -> tuple[Guard, ...]:
        """The distinct guards (see :class:`~stream_app.rules.compiler.Guard`) an event of
        (``etype``, ``stream``) can move."""
        return tuple(g for _, members in self.guard_groups(etype, stream) for g in members)

    def guard_groups(self, etype: str, stream: str
                     ) -> tuple[tuple[Callable[[Probe], bool], tuple[Guard, ...]], ...]:
        """:meth:`guards_for` by group: ``(pre, guards)`` pairs, where ``pre(probe)`` false
        means no guard of the group moved (cached per type).

        >>> from stream_app.rules.loader import load_ruleset
        >>> from stream_app.rules.engine import DEFAULT_RULES
        >>> rs = load_ruleset(DEFAULT_RULES)
        >>> groups = rs.guard_groups("page_view", "click")
        >>> len(rs.guards_for("page_view", "click")), len(groups)   # channel.yaml: 4 of the props
        (17, 5)
        """
        key = (etype, stream)
        out = self._guards.get(key)
        if out is None:
            seen: dict[Guard, None] = {}
            for t in self.order:
                if any(s.matches(etype, stream) for s in t.reads):
                    continue     # the tag runs anyway: its guards need no check
                for g in t.guards:
                    if any(s.matches(etype, stream) for s in g.sels):
                        seen[g] = None
            groups: dict[Any, tuple[Any, list[Guard]]] = {}
            for i, g in enumerate(seen):
                gk = g.group if g.group is not None else ("guard", i)
                groups.setdefault(gk, (g.pre or _always, []))[1].append(g)
            out = self._guards[key] = tuple((pre, tuple(gs)) for pre, gs in groups.values())
        return out

    def plan(self, touched: tuple[tuple[str, str], ...], day_changed: bool,
             clock_passed: bool, clock_moved: bool, fresh: bool = False,
             moved: frozenset[Guard] | None = None, daily: frozenset[str] | None = None
             ) -> tuple[frozenset[str], tuple[TagDef, ...], bool]:
        """What a selective evaluation must look at (cached per key).

        Returns ``(must, candidates, atoms_touched)``: the tags to re-evaluate because they
        read a touched (type, stream), the business day (``day_changed``), a clock atom whose
        horizon passed (``clock_passed``) or the exact clock (``clock_moved``); those plus
        every tag that depends on one of them through tag(), in dependency order; and whether
        a touched event moves an input of a clock atom (so the horizon must be recomputed).
        ``fresh``: the first evaluation of a new state (previous values: :attr:`empty_values`),
        which also runs every tag whose empty value is not None. ``moved``: the guards whose
        value the touched events changed (None: unknown, every guard of a touched selector
        counts as moved). ``daily``: the daily tags a day change can move (None: every one;
        see :meth:`daily_moved`).

        >>> from stream_app.rules.loader import load_ruleset
        >>> from stream_app.rules.engine import DEFAULT_RULES
        >>> rs = load_ruleset(DEFAULT_RULES)
        >>> must, cands, moved = rs.plan((("profile_updated", "profile"),), False, False, False)
        >>> moved, sorted(must)      # profile fields, and count(any) / since_first(any)
        (True, ['age_band', 'demand_stage', 'education', 'goal', 'lifecycle',
                'marketing_consent', 'occupation', 'profiling_consent', 'region'])
        >>> must, cands, moved = rs.plan((), False, True, True)
        >>> sorted(must)
        ['at_risk', 'customer_status', 'demand_stage', 'lead_points', 'lifecycle', 'rfm_r']
        >>> [t.id for t in cands if t.id not in must], moved
        (['intent', 'rfm_segment'], False)
        """
        key = (touched, day_changed, clock_passed, clock_moved, fresh, moved, daily)
        out = self._plans.get(key)
        if out is not None:
            return out
        empty = self.empty_values if fresh else {}
        must = frozenset(
            t.id for t in self.order
            if (day_changed and t.daily and (daily is None or t.id in daily))
            or (clock_passed and t.clocks)
            or (clock_moved and t.timed) or t.id in empty
            or any(s.matches(et, sm) for s in t.reads for et, sm in touched)
            or (any(g in moved for g in t.guards) if moved is not None else
                any(s.matches(et, sm) for g in t.guards for s in g.sels for et, sm in touched)))
        wide = set(must).union(*(self._dependents[t] for t in must))
        cands = tuple(t for t in self.order if t.id in wide)
        moved = any(_atom_sel(a).matches(et, sm) for a in self.clock_atoms
                    for et, sm in touched)
        out = (must, cands, moved)
        if len(self._plans) > 4096:   # on_events batches: many combinations of types
            self._plans.clear()
        self._plans[key] = out
        return out

    def daily_moved(self, state: dict[str, Any], old_today: int, today: int) -> frozenset[str]:
        """The daily tags whose value a day change from ``old_today`` to ``today`` can move
        when no event came in between (a clock tick): those reading a daily window that a
        bucket leaves, or a decayed one holding a bucket (:meth:`DailyWindow.moved`). Their
        other inputs (the clock, tags they read) are planned apart. Read before the day's
        prune, which may drop the leaving buckets.

        >>> from stream_app.rules.loader import load_ruleset
        >>> from stream_app.rules.engine import DEFAULT_RULES
        >>> from stream_app.state.record import new_state
        >>> rs = load_ruleset(DEFAULT_RULES)
        >>> st = new_state("u"); st["st"]["page_view"] = "click"
        >>> st["d"]["page_view"] = st.setdefault("ds", {})["click"] = [[100, 1]]
        >>> sorted(rs.daily_moved(st, 100, 101)), "activity" in rs.daily_moved(st, 100, 200)
        ([], True)
        """
        out: set[str] = set()
        d, sums = state["d"], state.get("s") or {}
        look = set(self._windows_always)
        of = self._windows_of
        for t in d:
            if t in of:
                look.update(of[t])
        for k in sums:
            if "s:" + k in of:
                look.update(of["s:" + k])
        reads = self._window_reads
        shared = None
        for i in look:   # any order: the result is the union of the moved windows' tags
            tags, days, decayed, sel, where, what = reads[i]
            if tags <= out:
                continue
            # DailyWindow.moved, its lists read in place
            if where == "d":   # one of its types at least is in the state
                lists = [d[t] for t in what if t in d]
            elif where == "s":
                b = sums.get(what)
                if not b:
                    continue
                lists = [b]
            else:   # windows of one selector share its lists
                if shared is None:
                    shared = {}
                lists = shared.get(what)
                if lists is None:
                    lists = shared[what] = query._day_lists(state, sel)
            lo, hi = DailyWindow.span(days, decayed, old_today, today)
            if hi >= lo and DailyWindow.holds(lists, lo, hi):
                out |= tags
        return frozenset(out)

    def clock_starts(self, state: dict[str, Any]) -> list[int | None]:
        """The start time of every since() threshold group (the latest / earliest time of
        an event of its selector; None: no such event), in :attr:`_since_groups` order: what
        ``state["tg"]`` keeps so that :meth:`horizon` needs no scan of the state's types.

        >>> from stream_app.rules.loader import load_ruleset
        >>> from stream_app.rules.engine import DEFAULT_RULES
        >>> from stream_app.state.record import new_state
        >>> rs = load_ruleset(DEFAULT_RULES)
        >>> [f"{f}:{sel.key}" for f, sel, _ in rs._since_groups]
        ['f:any', 'l:order_paid|renewal', 'l:stream:click', 'l:stream:study']
        >>> st = new_state("u"); st["st"] = {"page_view": "click"}
        >>> st["l"] = {"page_view": 50}; st["f"] = {"page_view": 20}
        >>> rs.clock_starts(st)
        [20, None, 50, None]
        """
        return [sel.extreme(state[fld], state["st"], fld == "l")
                for fld, sel, _ in self._since_groups]

    def advance_starts(self, starts: list[int | None], etype: str, stream: str,
                       ts: int) -> None:
        """Update :meth:`clock_starts` (in place) for one applied event of (``etype``,
        ``stream``) at ``ts`` whose type the state tracks: a latest time only grows, an
        earliest only shrinks, so each group's start is one comparison.

        >>> from stream_app.rules.loader import load_ruleset
        >>> from stream_app.rules.engine import DEFAULT_RULES
        >>> rs = load_ruleset(DEFAULT_RULES)
        >>> starts = [20, None, 50, None]
        >>> rs.advance_starts(starts, "course_view", "click", 40); starts
        [20, None, 50, None]
        >>> rs.advance_starts(starts, "order_paid", "order", 10); starts
        [10, 10, 50, None]
        """
        for i, latest, _ in self._hits(etype, stream)[1]:
            t0 = starts[i]
            if t0 is None or (ts > t0 if latest else ts < t0):
                starts[i] = ts

    def _hits(self, etype: str, stream: str
              ) -> tuple[bool, tuple[tuple[int, bool, tuple[int, ...]], ...]]:
        """What an event of (``etype``, ``stream``) moves, cached: whether it feeds a sub-day
        window (its timestamps move a :class:`~stream_app.rules.compiler.RecentWindow`
        horizon), and the since() groups whose selector matches it, as (index, latest,
        points)."""
        key = (etype, stream)
        hits = self._group_hits.get(key)
        if hits is None:
            hits = self._group_hits[key] = (
                any(a.sel.matches(etype, stream) for a in self._recent_atoms),
                tuple((i, fld == "l", points)
                      for i, (fld, sel, points) in enumerate(self._since_groups)
                      if sel.matches(etype, stream)))
        return hits

    def advance_horizon(self, starts: list[int | None], etype: str, stream: str, ts: int,
                        th: int | None, last: int, now: int) -> tuple[bool, int | None]:
        """:meth:`advance_starts` for one event, and the new :meth:`horizon` at ``now`` from
        the one kept (``th``, the horizon at the last evaluation, ``last``, not passed:
        ``now < th``) when that needs no look at the groups the event left alone.

        Before ``th`` every group's next point stands (each is at or after ``th``), so the
        new horizon is the earlier of ``th`` and the moved groups' new points, unless a
        moved group's old point was ``th`` itself (the next one is not known) or the event
        feeds a sub-day window: then ``(False, None)`` and :meth:`horizon` decides, else
        ``(True, horizon)``.

        >>> from stream_app.rules.loader import load_ruleset
        >>> from stream_app.rules.engine import DEFAULT_RULES
        >>> rs = load_ruleset(DEFAULT_RULES)
        >>> day = 86_400_000
        >>> starts = [0, None, 0, None]      # first event and latest click at 0
        >>> th = rs.horizon({}, 0, starts); th == 7 * day + 1   # since_first(any) > 7d
        True
        >>> rs.advance_horizon(starts, "page_view", "click", day, th, 0, day), starts
        ((True, 604800001), [0, None, 86400000, None])
        >>> starts = [0, None, 0, None]      # at 8 days: since_first's next point is 37d
        >>> rs.advance_horizon(starts, "page_view", "click", 9 * day, 30 * day + 1, 8 * day,
        ...                    9 * day)   # the latest click's point (30d) was the horizon
        (False, None)
        >>> starts == [0, None, 9 * day, None]
        True
        """
        feeds_recent, hits = self._hits(etype, stream)
        if th is not None and now >= th or feeds_recent:
            self.advance_starts(starts, etype, stream, ts)
            return False, None
        known, best = True, th
        for i, latest, points in hits:
            t0 = starts[i]
            if t0 is None or (ts > t0 if latest else ts < t0):
                old = first_point_after(t0, last, points)
                if old is not None and (th is None or old <= th):
                    known = False      # this group's point was the horizon
                starts[i] = ts
                new = first_point_after(ts, now, points)
                if new is not None and (best is None or new < best):
                    best = new
        return (True, best) if known else (False, None)

    def horizon(self, state: dict[str, Any], now_ms: int,
                starts: list[int | None]) -> int | None:
        """Earliest time after ``now_ms`` at which a clock read with a known horizon (a
        since() threshold, a sub-day window) can change, given the state and the since()
        groups' start times (:meth:`clock_starts`; None: never before another event)."""
        best = None
        for (_, _, points), t0 in zip(self._since_groups, starts, strict=True):
            t = first_point_after(t0, now_ms, points)
            if t is not None and (best is None or t < best):
                best = t
        for a in self._recent_atoms:
            t = a.next_change(state, now_ms)
            if t is not None and (best is None or t < best):
                best = t
        return best

    def evaluate(self, state: dict[str, Any], now_ms: int, *,
                 day_offset_ms: int = 8 * 3600_000) -> dict[str, TagValue]:
        """Every visible tag's value (None = the user does not hold the tag). Pure."""
        values, ctx = self.evaluate_raw(state, now_ms, day_offset_ms=day_offset_ms)
        return {tid: TagValue(v, self.why(ctx, tid)) for tid, v in values.items()}

    def evaluate_raw(self, state: dict[str, Any], now_ms: int, *,
                     day_offset_ms: int = 8 * 3600_000,
                     before: Mapping[str, Any] | None = None
                     ) -> tuple[dict[str, Any], EvalContext]:
        """Every visible tag's value (full evaluation of every rule), and the evaluation
        context to explain them with :meth:`why`. Nothing is traced; "why" records are built
        only on demand. ``prev()`` reads the values the state holds (``tags``, ``hid``): those
        of its last evaluation; or ``before`` (tag id -> value) when given."""
        ctx = EvalContext(state, now_ms, day_offset_ms, trace=False)
        if self.prev_ids:
            ctx.prev = (self.prev_values(state.get("tags") or {}, state.get("hid") or {})
                        if before is None else {tid: before.get(tid) for tid, _ in self.prev_ids})
        values: dict[str, Any] = {}
        ctx_tags = ctx.tags
        for tag in self.order:
            raw, _ = self._run(tag, ctx)
            value = raw if raw is None or tag.plain else tag.normalise(raw)
            ctx_tags[tag.id] = value
            if not tag.hidden:
                values[tag.id] = value
        return values, ctx

    def evaluate_some(self, state: dict[str, Any], now_ms: int, previous: dict[str, Any],
                      plan: tuple[frozenset[str], tuple[TagDef, ...], bool], *,
                      day_offset_ms: int = 8 * 3600_000, keep_traces: bool = True,
                      owned: bool = False, before: Mapping[str, Any] | None = None
                      ) -> tuple[list[tuple[TagDef, Any]], EvalContext]:
        """Selective evaluation: ``previous`` holds every tag's value at the last evaluation
        (hidden ones included; absent = None) and ``plan`` comes from :meth:`plan`. Only the
        tags of the plan are run (a dependent only when a tag it reads changed); the others
        keep their previous value. Returns the tags run, in dependency order, with their new
        values, and the context (``ctx.tags`` = every tag's value, for :meth:`why`).
        ``keep_traces``: trace every rule as it runs, so :meth:`why` needs no second run (pays
        when many of the rules run change, as on events; a clock tick runs many daily rules
        that rarely change). ``owned``: ``previous`` is the caller's own copy, which the
        evaluation may update in place (no second copy). ``before``: what ``prev()`` reads,
        the values the user held (default ``previous``; a new user's first evaluation starts
        from :attr:`empty_values` but held nothing: ``{}``), read before any rule runs."""
        ctx = EvalContext(state, now_ms, day_offset_ms, trace=False)
        if self.prev_ids:
            b = previous if before is None else before
            ctx.prev = {tid: b.get(tid) for tid, _ in self.prev_ids}
        ctx.tags = tags = previous if owned else dict(previous)
        ctx.traces = traces = {} if keep_traces else None
        must, cands, _ = plan
        out: list[tuple[TagDef, Any]] = []
        changed: set[str] = set()
        for tag in cands:
            tid = tag.id
            if tid not in must and changed.isdisjoint(tag.deps):
                continue
            if traces is not None:   # a tag that changes needs no second run for its why
                ctx.trace = trace = {}
            raw, matched = self._run(tag, ctx)
            value = raw if raw is None or tag.plain else tag.normalise(raw)
            old = tags.get(tid)
            if old != value or type(old) is not type(value):
                changed.add(tid)
                tags[tid] = value
            if traces is not None:
                traces[tid] = (trace, matched)
            out.append((tag, value))
        ctx.trace = None
        return out, ctx

    def prev_values(self, tags: Mapping[str, Any], hid: Mapping[str, Any]) -> dict[str, Any]:
        """What ``prev()`` reads (``EvalContext.prev``) from a state's visible ``tags`` and
        hidden ``hid`` values: each tag reading prev() -> its value (None: not held).

        >>> from stream_app.rules.loader import ruleset_from_text
        >>> rs = ruleset_from_text('''
        ... tags:
        ...   - {id: seen, family: f, zh: 见, en: Seen, kind: bool,
        ...      value: "prev() == true or count(course_view) > 0"}
        ... ''')
        >>> rs.prev_ids, rs.prev_values({"seen": True}, {}), rs.prev_values({}, {})
        ((('seen', False),), {'seen': True}, {'seen': None})
        """
        return {tid: (hid if hidden else tags).get(tid) for tid, hidden in self.prev_ids}

    @staticmethod
    def _run(tag: TagDef, ctx: EvalContext) -> tuple[Any, int | None]:
        """Run ``tag``'s rule: its raw value and the index of the case that matched (None:
        a value rule, or no case matched).

        A rule reading ``prev()`` gives a value that depends on the one before. A selective
        evaluation runs it only when another of its inputs moved, so its value must *settle*:
        run again with ``prev()`` = that value and nothing else changed, it must give it
        again (hysteresis such as ``enter or (prev() == 'high' and keep)``, with ``enter``
        implying ``keep``, does). So when the value changes, the rule runs again with
        ``prev()`` = the new value until a run gives the value it was given, at most
        :data:`SETTLE_RUNS` runs (a settling rule: one more run, only when its value
        changes). The why record keeps the first run's values, with the real previous value
        (and, when a later run decided, that run's values too). A rule that does not settle
        (it oscillates, e.g. ``prev() != true``) keeps its last run's value and is logged
        once: a full and a selective evaluation may differ for it. ``ctx.prev`` is as it
        was on return.

        >>> from stream_app.rules.loader import ruleset_from_text
        >>> from stream_app.state import new_state
        >>> rs = ruleset_from_text('''
        ... tags:
        ...   - id: step
        ...     family: f
        ...     zh: 阶
        ...     en: Step
        ...     kind: enum
        ...     cases:
        ...       - {value: two, zh: 二, en: Two, when: "count(course_view) > 1"}
        ...       - {value: one, zh: 一, en: One, when: "prev() == 'two'"}
        ...     default: {value: zero, zh: 零, en: Zero}
        ... ''')
        >>> ctx = EvalContext(new_state("u"), 0, 0); ctx.prev = {"step": "two"}
        >>> rs._run(rs.by_id["step"], ctx), ctx.prev, ctx.trace    # two -> one -> zero
        (('zero', 2), {'step': 'two'}, {'count(course_view)': 0, 'prev()': 'two'})
        """
        if tag.prev:
            return RuleSet._run_settled(tag, ctx)
        if tag.expr is not None:     # (_run_once, inline: every rule of every evaluation)
            return tag.expr.fn(ctx), None
        for i, case in enumerate(tag.cases):
            if case.when is None or case.when.fn(ctx):
                return case.value, i
        return None, None

    @staticmethod
    def _run_settled(tag: TagDef, ctx: EvalContext) -> tuple[Any, int | None]:
        """:meth:`_run` of a rule reading prev(): run until its value settles."""
        raw, matched = RuleSet._run_once(tag, ctx)
        prev, tid = ctx.prev, tag.id
        before = prev.get(tid)
        value = raw if raw is None or tag.plain else tag.normalise(raw)
        if value == before and type(value) is type(before):
            return raw, matched
        trace, ctx.trace = ctx.trace, None
        deciding = _UNSET      # prev() of the run that gave the value, when not the first
        try:
            for _ in range(SETTLE_RUNS - 1):
                prev[tid] = value
                raw2, matched2 = RuleSet._run_once(tag, ctx)
                value2 = raw2 if raw2 is None or tag.plain else tag.normalise(raw2)
                if value2 == value and type(value2) is type(value):
                    break       # settled
                deciding, raw, matched, value = value, raw2, matched2, value2
            else:
                if (tag.source, tid) not in _UNSETTLED:
                    _UNSETTLED.add((tag.source, tid))
                    log.warning("rule %r (%s) reads prev() and does not settle in %d runs: "
                                "its value is the last run's", tid, tag.source, SETTLE_RUNS)
            if deciding is not _UNSET and trace is not None:   # that run's values too
                prev[tid] = deciding
                ctx.trace = trace
                RuleSet._run_once(tag, ctx)
                trace[PREV_KEY] = before
            return raw, matched
        finally:
            prev[tid] = before
            ctx.trace = trace

    @staticmethod
    def _run_once(tag: TagDef, ctx: EvalContext) -> tuple[Any, int | None]:
        if tag.expr is not None:
            return tag.expr.fn(ctx), None
        for i, case in enumerate(tag.cases):
            if case.when is None or case.when.fn(ctx):
                return case.value, i
        return None, None

    def why(self, ctx: EvalContext, tag_id: str) -> dict[str, Any]:
        """The "why" record of a tag's value in an evaluation: rule id and version, the values
        that decided it (the function calls of its rule) and, for case rules, the case that
        matched. Uses the trace a selective evaluation kept when the rule ran (once: a
        second call re-runs), else re-runs the rule with tracing on (function values come
        from the memo)."""
        tag = self.by_id[tag_id]
        kept = ctx.traces.pop(tag_id, None) if ctx.traces else None
        if kept is not None:   # traced when it ran (the same calls, the same memo values)
            trace, matched = kept
        else:
            ctx.trace = {}
            try:
                _, matched = self._run(tag, ctx)
                trace = ctx.trace
            finally:
                ctx.trace = None
        why: dict[str, Any] = {"rule": tag.id, "rule_version": tag.version, "values": trace}
        if matched is not None:
            case = tag.cases[matched]
            why["case"] = case.when.text if case.when is not None else "default"
        why["value"] = ctx.tags.get(tag_id)
        return why


def _merge_scores(parts: Iterable[dict[str, tuple[Any, ...] | None]]
                  ) -> dict[str, tuple[Any, ...] | None]:
    """The score comparisons of several expressions together (None wins: read otherwise).

    >>> _merge_scores([{"a": (1,), "b": None}, {"a": (2,), "b": (3,)}, {"c": ()}])
    {'a': (1, 2), 'b': None, 'c': ()}
    """
    out: dict[str, tuple[Any, ...] | None] = {}
    for part in parts:
        for target, tests in part.items():
            if target in out and out[target] is None:
                continue
            out[target] = None if tests is None else out.get(target, ()) + tests
    return out


def _always(probe: Probe) -> bool:
    return True


def _atom_sel(atom: ClockAtom) -> Any:
    return atom.sel
