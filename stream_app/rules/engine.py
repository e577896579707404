"""The tag engine: apply an event or a clock tick to a user's state and report tag changes.

One state record per user (a plain JSON-able dict, see :mod:`stream_app.state.record`).
``on_event`` de-duplicates by event id, folds the event in, re-evaluates every tag at
``now = max(event time, last evaluation time)`` and returns the changes; ``on_tick``
re-evaluates on the clock (time-based tags such as churn) and expires idle users;
``due`` tells a sweep timer cheaply whether a tick could change anything; ``forget``
removes everything (PIPL deletion).

Example (the acceptance case):
    >>> from stream_app.events import Event
    >>> from stream_app.rules.loader import load_ruleset
    >>> eng = TagEngine(load_ruleset(DEFAULT_RULES))
    >>> ev = Event("e1", "u1", 1714528800000, "course_view", "click")  # 2024-05-01T10:00+08:00
    >>> r = eng.on_event(None, ev)
    >>> [(c["tag_id"], c["old"], c["new"]) for c in r.changes if c["tag_id"] == "activity"]
    [('activity', None, 'low')]
    >>> later = ev.ts + 31 * 86_400_000
    >>> eng.due(r.state, later), eng.due(r.state, ev.ts + 1)
    (True, False)
    >>> r2 = eng.on_tick(r.state, later)
    >>> [(c["old"], c["new"], c["trigger"]) for c in r2.changes if c["tag_id"] == "activity"]
    [('low', 'churned', None)]
    >>> eng.on_event(r2.state, ev).duplicate
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

from stream_app.config import REPO_ROOT
from stream_app.events import Event
from stream_app.rules.compiler import SCORES_TYPE, EvalContext, Probe
from stream_app.rules.derive import referral_events
from stream_app.rules.model import RuleSet, TagDef
from stream_app.state.record import DAY_MS, StateUpdater, new_state

DEFAULT_RULES = REPO_ROOT / "config" / "rules"
RECENT_EVIDENCE = 5
_SCORES_TOUCHED = ((SCORES_TYPE, SCORES_TYPE),)
_NONE_MOVED: frozenset = frozenset()
_ABSENT = object()
_VALUE = object()   # a why record's own "value" (not a key of its "values")
_NOTHING: dict[str, Any] = {}   # what prev() reads in a new user's first evaluation
_HELD_NOTHING: tuple[dict[str, Any], None] = (_NOTHING, None)   # a new user's prior
#: distinct first evaluations kept per engine (new users' first events; cleared when full)
FRESH_MEMO = 4096


def change_reason(old: Any, new: Any) -> str:
    """The reason of a change from ``old`` to ``new`` by its ends: ``added`` (from no value),
    ``removed`` (to none), else ``changed``.

    >>> change_reason(None, "high"), change_reason("high", None), change_reason("low", "high")
    ('added', 'removed', 'changed')
    """
    return "added" if old is None else "removed" if new is None else "changed"


@dataclass
class StepResult:
    """Outcome of one engine step."""

    state: dict[str, Any] | None          # new state; None = delete the user's state
    changes: list[dict[str, Any]]         # tag-change records (tag_change.schema.json)
    duplicate: bool = False               # the event was already applied: nothing changed
    why: dict[str, dict[str, Any]] = field(default_factory=dict)   # tag_id -> why record
    emit: list[dict[str, Any]] = field(default_factory=list)       # derived events for others
    #: the state's tags and hidden values before an event (the dicts themselves: the engine
    #: replaces them, never writes into them; None: the rule set has no prev()):
    #: :meth:`TagEngine.on_scores` after the same event takes it as ``before``, so the
    #: event's two passes decide as one. Only references: the prev() values are read from
    #: them only when the score pass runs
    prior: tuple[dict[str, Any], dict[str, Any] | None] | None = None


@dataclass(frozen=True)
class _FreshTemplate:
    """A new user's first evaluation, without what is per user (ids, times, sequence)."""

    #: (tag, family, new value, why record, its list values: keys of "values" or _VALUE)
    changes: tuple[tuple[str, str, Any, dict[str, Any], tuple[str, ...]], ...]
    tags: dict[str, Any]
    hid: dict[str, Any] | None
    flat: bool = False    # no list or dict among the tags' values: a shallow copy will do
    #: the clock atoms' horizon after the event (``th``) less its time (None: no horizon),
    #: and which since() groups it starts (``tg``: its time, else None); None: no atoms
    horizon: tuple[int | None, tuple[bool, ...]] | None = None

    @classmethod
    def of(cls, result: StepResult) -> _FreshTemplate:
        state = result.state
        horizon = None
        if "th" in state:   # both are relative to the one event's time, like the key
            ts, th = state["ft"], state["th"]
            horizon = (None if th is None else th - ts,
                       tuple(t is not None for t in state.get("tg", ())))
        out = []
        for c in result.changes:
            w = _clone(c["evidence"])
            lists = tuple(k for k, v in w["values"].items() if type(v) is list)
            if type(w.get("value")) is list:
                lists += (_VALUE,)
            out.append((c["tag_id"], c["family"], _clone(c["new"]), w, lists))
        tags = _clone(state["tags"])
        return cls(tuple(out), tags, _clone(state["hid"]) if "hid" in state else None,
                   not any(type(v) in (list, dict) for v in tags.values()), horizon)


def _finite(scores: dict[str, Any]) -> dict[str, Any]:
    """``scores`` with NaN and infinite floats as None (what a state's bytes keep of them).

    >>> _finite({"a": float("nan"), "b": 0.5, "c": float("-inf")})
    {'a': None, 'b': 0.5, 'c': None}
    """
    return {t: None if v.__class__ is float and not isfinite(v) else v
            for t, v in scores.items()}


def _score_sig(memo: dict[Any, tuple], tests: tuple[Callable[[Any], Any], ...],
               value: Any) -> tuple:
    """The results (with their types) of a score's comparisons ``tests`` for ``value``,
    memoised in ``memo`` by the value (a float: scores rounded to 0.01 take few values, and
    the comparisons give ``-0.0`` what they give ``0.0``), else by its type and value.

    >>> memo, tests = {}, (lambda v: v == 1, lambda v: v is True)
    >>> _score_sig(memo, tests, 1.0) == _score_sig(memo, tests, True), len(memo)
    (False, 2)
    """
    key = value if type(value) is float else (type(value), value)
    try:
        sig = memo.get(key)
    except TypeError:    # an unhashable value (not one the scorer writes)
        return tuple((type(r), r) for r in [test(value) for test in tests])
    if sig is None:
        if len(memo) >= FRESH_MEMO:
            memo.clear()
        sig = memo[key] = tuple((type(r), r) for r in [test(value) for test in tests])
    return sig


def _clone(v: Any) -> Any:
    """A copy of a JSON-like value (dicts and lists copied, scalars shared).

    >>> a = {"x": [1, {"y": 2}]}; b = _clone(a); b["x"][1]["y"] = 3; a
    {'x': [1, {'y': 2}]}
    """
    if type(v) is dict:
        return {k: _clone(x) for k, x in v.items()}
    if type(v) is list:
        return [_clone(x) for x in v]
    return v


class TagEngine:
    """Evaluates a :class:`RuleSet` over per-user state records (pure; no I/O)."""

    def __init__(self, ruleset: RuleSet, *, day_offset_ms: int = 8 * 3600_000,
                 retention_days: int = 120, dedup_window: int = 64,
                 state_ttl_days: int = 400, full: bool = False) -> None:
        self.day_offset_ms = day_offset_ms
        #: evaluate every rule on every step (the reference the selective path must equal)
        self.full = full
        self.retention_days = retention_days
        self.dedup_window = dedup_window
        self.state_ttl_ms = state_ttl_days * DAY_MS
        self.ruleset = ruleset

    # -- rule set (hot-swappable) ------------------------------------------------------
    @property
    def ruleset(self) -> RuleSet:
        return self._ruleset

    @ruleset.setter
    def ruleset(self, ruleset: RuleSet) -> None:
        before: RuleSet | None = getattr(self, "_ruleset", None)
        #: tag id -> family of the tags of every rule set this engine ran: a tag that left
        #: the rule set keeps its family on its ``rule_removed`` change (:meth:`family_of`)
        self._families: dict[str, str] = {
            **getattr(self, "_families", {}),
            **({t.id: t.family for t in before.tags} if before is not None else {}),
            **{t.id: t.family for t in ruleset.tags}}
        self._updater = StateUpdater(ruleset.requirements, day_offset_ms=self.day_offset_ms,
                                     retention_days=self.retention_days,
                                     dedup_window=self.dedup_window)
        self._ruleset = ruleset
        #: a new user's first evaluation by what decides it (see :meth:`_fresh_key`)
        self._fresh: dict[tuple, _FreshTemplate] = {}
        self._fresh_props: dict[tuple[str, str], tuple[str, ...]] = {}
        #: tag key sets -> whether in rule order (:meth:`_in_rule_order`)
        self._ordered: dict[tuple[str, ...], bool] = {}
        #: :meth:`_score_tags` (``_ABSENT``: not looked at yet)
        self._scores_plan: Any = _ABSENT
        #: score -> its values' comparison results (:func:`_score_sig`)
        self._score_sigs: dict[str, dict[Any, tuple]] = {}

    def remember_families(self, families: dict[str, str]) -> None:
        """Know ``families`` (tag id -> family) too: those of a rule set that was read but
        never run (several published at once: only the newest is applied), so the
        ``rule_removed`` changes of a tag only it defined keep their family. Later calls and
        the current rule set win.

        >>> from stream_app.rules.loader import ruleset_from_text
        >>> doc = ("tags:\\n  - {id: %s, family: activity, zh: a, en: b, kind: bool, "
        ...        "value: 'true'}\\n")
        >>> e = TagEngine(ruleset_from_text(doc % "v1"))
        >>> e.remember_families({"v2": "channel", "v1": "other"})
        >>> e.family_of("v2"), e.family_of("v1")
        ('channel', 'activity')
        """
        self._families.update({t: f for t, f in families.items() if f})

    def family_of(self, tag_id: str) -> str:
        """The family of ``tag_id`` in the current rule set, else in the last rule set this
        engine ran that defined it (a tag removed by a hot reload), else ``""``.

        >>> from stream_app.rules.loader import ruleset_from_text
        >>> doc = ("tags:\\n  - {id: %s, family: activity, zh: a, en: b, kind: bool, "
        ...        "value: 'true'}\\n")
        >>> e = TagEngine(ruleset_from_text(doc % "old"))
        >>> e.ruleset = ruleset_from_text(doc % "new")
        >>> e.family_of("old"), e.family_of("new"), e.family_of("never")
        ('activity', 'activity', '')
        """
        tag = self._ruleset.by_id.get(tag_id)
        return tag.family if tag is not None else self._families.get(tag_id, "")

    @property
    def tick_granularity_ms(self) -> int:
        """Clock resolution of the time-based rules: a tick is due at most once per period."""
        return self._ruleset.granularity_ms

    @property
    def required_windows(self) -> dict[str, int]:
        """Daily windows the rules read: selector -> longest window in days."""
        return {sel.key: days for sel, days in self._ruleset.requirements.windows.items()}

    @property
    def retention_days_effective(self) -> int:
        """Longest time daily buckets are kept (at least the longest window the rules use)."""
        return self._updater.max_retention_days

    # -- steps -------------------------------------------------------------------------
    def on_event(self, state: dict[str, Any] | None, event: Event) -> StepResult:
        """Apply ``event`` to ``state`` (None: a new user) and re-evaluate the tags."""
        fresh = state is None
        key = None
        if fresh:
            state = new_state(event.user_id, event.tenant, event.ts)
        elif self._updater.seen(state, event.event_id):
            return StepResult(state, [], duplicate=True)
        now = state["now"]
        if event.ts >= now:
            now = event.ts
        if event.type == "deletion_requested":
            return self.forget(state, now, trigger=event.event_id)
        rs = self._ruleset
        prior = None if not rs.prev_ids else _HELD_NOTHING if fresh else (
            state["tags"], state.get("hid"))
        if fresh and not self.full:
            key = self._fresh_key(event, now)
            tpl = self._fresh.get(key) if key is not None else None
            if tpl is not None:   # the same first evaluation as an earlier new user's
                self._updater.apply(state, event)
                emit = referral_events(state, event, rs.referral)
                result = self._evaluate_fresh(state, now, event.event_id, tpl, event.ts)
                result.emit = emit
                result.prior = prior
                return result
        touch = (event.type, state["st"].get(event.type, event.stream))
        guards = () if self.full else rs.guard_groups(*touch)
        check = bool(guards) and (fresh or state.get("rv") == rs.version)
        if check:   # the event type's latest / earliest time before the event
            et = event.type
            old_l, old_f = state["l"].get(et), state["f"].get(et)
            props: set[str] = set()
            self._updater.apply(state, event, props)
        else:
            self._updater.apply(state, event)
        emit = referral_events(state, event, rs.referral)
        moved = None
        if check:
            off = self.day_offset_ms
            probe = Probe(state, et, event.ts, (event.ts + off) // DAY_MS, (now + off) // DAY_MS,
                          now, old_l, old_f, props,
                          None if old_l is None else (old_l + off) // DAY_MS)
            hit = [g for pre, members in guards if pre(probe)
                   for g in members if g.after(probe)]
            moved = frozenset(hit) if hit else _NONE_MOVED
        result = self._evaluate(state, now, trigger=event.event_id, touched=(touch,),
                                fresh=fresh, moved=moved, step=event.ts)
        result.emit = emit
        result.prior = prior
        if key is not None:
            if len(self._fresh) >= FRESH_MEMO:
                self._fresh.clear()
            self._fresh[key] = _FreshTemplate.of(result)
        return result

    def on_events(self, state: dict[str, Any] | None, events: list[Event]) -> StepResult:
        """Apply several events of one user, then evaluate once (one state update).

        Changes are the net change over the batch (a tag that went a -> b -> a in the batch
        does not change); their trigger is the last new event. ``duplicate`` is true when
        every event was already applied. A ``deletion_requested`` in the batch forgets the
        user (events after it start a new state).
        """
        if not events:
            return StepResult(state, [], duplicate=True)
        emit: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        why: dict[str, dict[str, Any]] = {}
        touched: list[tuple[str, str]] = []
        last: Event | None = None
        fresh = False
        for ev in events:
            if state is None:
                state = new_state(ev.user_id, ev.tenant, ev.ts)
                fresh = True
            elif self._updater.seen(state, ev.event_id):
                continue
            if ev.type == "deletion_requested":
                if touched:
                    r = self._evaluate(state, max(last.ts, state["now"]), trigger=last.event_id,
                                       touched=tuple(sorted(set(touched))), prune=True,
                                       fresh=fresh)
                    changes += r.changes
                    why.update(r.why)
                r = self.forget(state, ev.ts, trigger=ev.event_id)
                changes += r.changes
                state, touched, last = None, [], None
                continue
            self._updater.apply(state, ev)
            emit += referral_events(state, ev, self._ruleset.referral)
            touched.append((ev.type, state["st"].get(ev.type, ev.stream)))
            last = ev if last is None or ev.ts >= last.ts else last
        if state is None or last is None:
            return StepResult(state, changes, duplicate=not changes, why=why, emit=emit)
        r = self._evaluate(state, max(last.ts, state["now"]), trigger=last.event_id,
                           touched=tuple(sorted(set(touched))), prune=True, fresh=fresh)
        why.update(r.why)
        return StepResult(r.state, changes + r.changes, why=why, emit=emit)

    def on_tick(self, state: dict[str, Any], now_ms: int) -> StepResult:
        """Re-evaluate on the clock; expire (state=None, all tags removed) when idle > TTL."""
        now = max(now_ms, state["now"])
        if self.expired(state, now):
            return self._drop(state, now, "expired", None)
        return self._evaluate(state, now, trigger=None, touched=())

    def on_scores(self, state: dict[str, Any], scores: dict[str, float | None],
                  now_ms: int, before: tuple[dict[str, Any], dict[str, Any] | None] | None = None
                  ) -> StepResult:
        """Store model scores (``state["scores"]``) and re-evaluate the tags that use them.
        ``before``: :attr:`StepResult.prior` of the event just applied (the tags and hidden
        values before it), from which ``prev()`` reads, so that hysteresis sees the event's
        scores and its other inputs as one step; None: ``prev()`` reads the state's values.

        The worker calls it right after :meth:`on_event`, at the clock of that evaluation:
        then only the tags reading scores can move (:meth:`_steady_plan`), and the step is
        the selective evaluation's without its bookkeeping. When the rules compare the
        updated scores with constants only and no comparison changes its result
        (:meth:`_scores_moved`), no tag can move: no rule runs; when one does, the plan runs
        (:meth:`_run_plan`); otherwise (a score read another way, a null kept score) the
        tags reading scores are first run read-only (:meth:`_scores_kept`) and the plan runs
        only if one of them moved. ``nd`` is recomputed. When the clock moved (or the state
        is not one such a step can take), the selective evaluation runs (:meth:`_evaluate`).

        >>> from stream_app.rules.loader import load_ruleset
        >>> eng = TagEngine(load_ruleset(DEFAULT_RULES))
        >>> st = eng.on_event(None, Event("e1", "u1", 1714528800000, "course_view",
        ...                               "click")).state
        >>> st["tags"]["intent"], eng.on_scores(st, {"convert": 0.1}, st["now"]).changes
        ('low', [])
        >>> [(c["tag_id"], c["old"], c["new"]) for c in eng.on_scores(
        ...     st, {"convert": 0.7}, st["now"]).changes]   # and its dependent
        [('intent', 'low', 'high'), ('demand_stage', 'new_lead', 'converting')]
        """
        for v in scores.values():
            if v.__class__ is float and not isfinite(v):
                scores = _finite(scores)    # kept as the state's bytes keep it: null
                break
        prev = (None if before is None
                else self._ruleset.prev_values(before[0], before[1] or _NOTHING))
        kept = state.setdefault("scores", {})
        now = state["now"]
        plan = self._steady_plan(state, now) if now_ms <= now else None
        if plan is None:
            kept.update(scores)
            return self._evaluate(state, now if now_ms <= now else now_ms, trigger=None,
                                  reason="score", touched=_SCORES_TOUCHED, before=prev)
        moved = self._scores_moved(kept, scores)
        kept.update(scores)
        changes: list[dict[str, Any]] = []
        why: dict[str, dict[str, Any]] = {}
        if moved == 2 or moved and not self._scores_kept(state, now, plan[0], plan[1],
                                                         prev):
            # what _evaluate does at its last clock when nothing but the scores moved
            changes, why = self._run_plan(state, now, plan[2], None, "score",
                                          _SCORES_TOUCHED, False, prev)
        state["nd"] = self._next_due(state, now)
        return StepResult(state, changes, why=why)

    def due(self, state: dict[str, Any], now_ms: int) -> bool:
        """Could ``on_tick(state, now_ms)`` change anything? (one comparison)"""
        return now_ms >= state["nd"]

    def forget(self, state: dict[str, Any], now_ms: int, *,
               trigger: str | None = None) -> StepResult:
        """PIPL deletion: remove every tag (reason ``deleted``); the state must be deleted."""
        return self._drop(state, max(now_ms, state["now"]), "deleted", trigger)

    def expired(self, state: dict[str, Any], now_ms: int) -> bool:
        lt = state["lt"] if state["lt"] is not None else state["now"]
        return now_ms - lt > self.state_ttl_ms

    # -- internals ---------------------------------------------------------------------
    def _fresh_key(self, event: Event, now: int) -> tuple | None:
        """What decides a new user's first evaluation after ``event`` (None: not memoised).

        A state holding one event is read only relative to the clock (counts, windows,
        since() of ``now - ts``, first / last / distinct values of the props the rules
        keep, profile fields), so the evaluation is a function of the event's type and
        stream, ``now - ts``, the business days between them and the values (with their
        types: ``1`` and ``1.0`` differ; floats by ``repr``: ``-0.0`` is not ``0.0``) of the
        props the state keeps for it. Event id,
        user, tenant and the absolute time only reach the change records, which are built
        per user (:meth:`_evaluate_fresh`).
        """
        et, stream = event.type, event.stream
        names = self._fresh_props.get((et, stream))
        if names is None:
            names = self._fresh_props[(et, stream)] = self._updater.read_props(et, stream)
        props = event.props
        off = self.day_offset_ms
        key = (et, stream, now - event.ts, (now + off) // DAY_MS - (event.ts + off) // DAY_MS,
               tuple((n, type(v), repr(v) if type(v) is float else v) for n in names
                     if (v := props.get(n, _ABSENT)) is not _ABSENT) if props and names else ())
        try:
            hash(key)
        except TypeError:   # a list or object prop value: not memoised
            return None
        return key

    def _score_tags(self) -> tuple[tuple[TagDef, ...], bool, tuple] | None:
        """What a score update makes the selective evaluation run first when the clock
        stands (the ``must`` tags of :meth:`RuleSet.plan` for the scores, in rule order),
        whether one of them reads a hidden tag, and that plan; None when such a step can do
        more than run the plan (a hidden tag among them rewrites ``hid``; a clock atom
        reading scores moves the horizon). Cached per rule set.

        >>> from stream_app.rules.loader import load_ruleset
        >>> tags, hid, plan = TagEngine(load_ruleset(DEFAULT_RULES))._score_tags()
        >>> [t.id for t in tags], hid, [t.id for t in plan[1]]
        (['intent', 'at_risk'], False, ['intent', 'demand_stage', 'at_risk'])
        """
        if self._scores_plan is _ABSENT:
            rs = self._ruleset
            must, cands, atoms = rs.plan(_SCORES_TOUCHED, False, False, False)
            tags = tuple(t for t in cands if t.id in must)
            hidden = set(rs.hidden_ids)
            self._scores_plan = None if atoms or any(t.hidden for t in tags) else (
                tags, any(d in hidden for t in tags for d in t.deps), (must, cands, atoms))
        return self._scores_plan

    def _steady_plan(self, state: dict[str, Any], now: int) -> tuple | None:
        """:meth:`_score_tags`, when a selective evaluation of ``state`` at ``now``, its
        last evaluation's clock, runs only what the touched inputs move: it is selective,
        no clock atom's horizon passed, no sub-day timestamps to prune; else None."""
        plan = self._scores_plan
        if plan is _ABSENT:
            plan = self._score_tags()
        if plan is None or "rt" in state or not self._selective(state):
            return None
        th = state.get("th")
        return plan if th is None or now < th else None

    def _selective(self, state: dict[str, Any]) -> bool:
        """Whether :meth:`_evaluate` may run only what moved on ``state`` (an evaluated
        state): not in full mode, last evaluated under this rule set, and its clock atoms'
        horizons kept (``th``; a state written before them: only without clock atoms)."""
        rs = self._ruleset
        return not self.full and state.get("rv") == rs.version and (
            "th" in state or not rs.clock_atoms)

    def _scores_moved(self, kept: dict[str, Any], scores: dict[str, Any]) -> int:
        """Whether replacing the scores ``kept`` by ``scores`` can move a rule's value: 0 no
        (the rules compare the updated scores with constants only, see
        :attr:`RuleSet.score_tests`, and every comparison keeps its result; a null, or
        absent, score compared as null), 2 yes likely (a comparison gives another result),
        1 maybe: a score some rule reads otherwise is updated. Only 0 is a promise: 1 and 2
        tell whether to look at the tags first (:meth:`_scores_kept`) or run the plan at
        once. ``kept`` holds no NaN or infinite score: :meth:`on_scores` keeps them as null,
        as the state's bytes do (a state written before that kept one as null after its
        tags read it: such a tag is evaluated again at its next event or tick).

        >>> from stream_app.rules.loader import load_ruleset
        >>> eng = TagEngine(load_ruleset(DEFAULT_RULES))   # intent: convert >= 0.6, >= 0.3,
        >>> kept = {"convert": 0.3, "at_risk": 0.1}      # >= 0.5 (keeps high); at_risk: its tag
        >>> [eng._scores_moved(kept, {"convert": v, "x": 0.9})   # x: read by no rule
        ...  for v in (0.4, 0.45, 0.5, None)]
        [0, 0, 2, 2]
        >>> eng._scores_moved(kept, {"x": 0.9}), eng._scores_moved(      # one model live:
        ...     {"convert": None, "at_risk": 0.1}, {"convert": None, "at_risk": 0.2})
        (0, 0)
        >>> eng._scores_moved({"convert": None}, {"convert": 0.6})
        2
        """
        memos = self._score_sigs
        for target, spec in self._ruleset.score_tests.items():
            if target not in scores:
                continue
            old, new = kept.get(target), scores[target]
            if old is new:
                continue
            if spec is None:
                return 1
            memo = memos.get(target)
            if memo is None:
                memo = memos[target] = {}
            if _score_sig(memo, spec, old) != _score_sig(memo, spec, new):
                return 2
        return 0

    def _scores_kept(self, state: dict[str, Any], now: int, tags: tuple[TagDef, ...],
                     reads_hidden: bool, before: dict[str, Any] | None = None) -> bool:
        """Whether the tags reading scores (:meth:`_score_tags`), run on ``state`` at
        ``now`` without writing to it, keep their values (so their dependents do not run
        and the selective evaluation changes nothing)."""
        rs = self._ruleset
        ctx = EvalContext(state, now, self.day_offset_ms, trace=False)
        old = state["tags"]
        if reads_hidden and state.get("hid"):
            ctx.tags = {**old, **state["hid"]}
        else:
            ctx.tags = old     # read only: nothing below writes to it
        if rs.prev_ids:        # (a new dict: a rule's settling writes its own entry)
            ctx.prev = (rs.prev_values(old, state.get("hid") or {}) if before is None
                        else {tid: before.get(tid) for tid, _ in rs.prev_ids})
        run = rs._run  # noqa: SLF001 - the engine's own rule runner
        for tag in tags:
            raw, _ = run(tag, ctx)
            new = raw if raw is None or tag.plain else tag.normalise(raw)
            was = old.get(tag.id)
            if was != new or type(was) is not type(new):
                return False
        return True

    def _evaluate_fresh(self, state: dict[str, Any], now: int, trigger: str,
                        tpl: _FreshTemplate, ts: int) -> StepResult:
        """:meth:`_evaluate` of a new state from a recorded first evaluation (``tpl``);
        ``ts``: the time of its one event."""
        rs = self._ruleset
        # a prune would keep every daily bucket: the one event added its buckets only for
        # days the retention keeps at ``now`` (see StateUpdater.apply); its sub-day time
        # can be out of use (a time before 0 is evaluated at 0)
        if "rt" in state:
            self._updater.prune_recent(state, now)
        changes: list[dict[str, Any]] = []
        why: dict[str, dict[str, Any]] = {}
        recent = state["ids"][-RECENT_EVIDENCE:]
        for tag_id, family, new, base, lists in tpl.changes:
            w = base.copy()        # a copy of every list and dict the record holds
            w["values"] = values = base["values"].copy()
            for k in lists:
                if k is _VALUE:
                    w["value"] = list(w["value"])
                else:
                    values[k] = list(values[k])
            if type(new) is list:
                new = list(new)
            w["trigger"] = trigger
            w["recent_events"] = list(recent)
            why[tag_id] = w
            changes.append(self._change(state, tag_id, family, None, new, "added", now,
                                        trigger, w))
        if changes:
            state["tags"] = tpl.tags.copy() if tpl.flat else _clone(tpl.tags)
        if tpl.hid is not None:
            state["hid"] = _clone(tpl.hid)
        if tpl.horizon is not None:   # the rule set has clock atoms: as _set_horizon finds
            th, starts = tpl.horizon      # them, relative to the event's time
            state["th"] = None if th is None else ts + th
            if starts:
                state["tg"] = [ts if s else None for s in starts]
        state["rv"] = rs.version
        state["now"] = now
        state["nd"] = self._next_due(state, now)
        return StepResult(state, changes, why=why)

    def _set_horizon(self, state: dict[str, Any], now: int,
                     touched: tuple[tuple[str, str], ...] | None = None,
                     step: int | None = None, starts: list | None = None,
                     last: int | None = None) -> None:
        """Set ``state["th"]`` (the clock atoms' next change) and ``state["tg"]`` (the start
        times of the since() thresholds, :meth:`RuleSet.clock_starts`).

        ``touched`` None: read the start times from the state; ``()``: only the clock moved,
        the kept start times stand; the one event (type, stream) applied since the last
        evaluation, with its time ``step``: they move by one comparison each
        (:meth:`RuleSet.advance_starts`). A state without ``tg`` (written before it existed)
        or with another number of groups gets them read. ``starts``: the start times before
        the event, instead of the state's (a new state: all None). ``last``: the clock of
        the state's last evaluation, whose horizon ``state["th"]`` is (with ``step``: only
        the groups the event moved are looked at, see :meth:`RuleSet.advance_horizon`).
        """
        rs = self._ruleset
        n = len(rs._since_groups)
        tg = starts if starts is not None else state.get("tg") if touched is not None else None
        known = False
        if tg is None or len(tg) != n:
            tg = rs.clock_starts(state) if n else []
        elif step is not None and touched:
            et, stream = touched[0]
            if et not in state["st"]:   # a type beyond MAX_TYPES leaves the times alone
                pass
            elif last is None:
                rs.advance_starts(tg, et, stream, step)
            else:   # the kept horizon, moved by the groups the event moved
                known, th = rs.advance_horizon(tg, et, stream, step, state.get("th"), last,
                                               now)
                if known:
                    state["th"] = th
        if not known:
            state["th"] = rs.horizon(state, now, tg)
        if n:
            state["tg"] = tg
        else:
            state.pop("tg", None)

    def _change(self, state: dict[str, Any], tag_id: str, family: str, old: Any, new: Any,
                reason: str, now: int, trigger: str | None,
                evidence: dict[str, Any] | None) -> dict[str, Any]:
        state["seq"] = seq = state["seq"] + 1
        uid = state["uid"]
        rec = {"event_id": f"{uid}:{seq}", "user_id": uid,
               "tenant": state.get("tenant") or state.get("tn", "default"),
               "tag_id": tag_id, "family": family, "old": old,
               "new": new, "reason": reason, "rule_version": self._ruleset.version,
               "ts": now, "seq": seq, "trigger": trigger}
        if evidence is not None:
            rec["evidence"] = evidence
        return rec

    def _period(self, ms: int) -> int:
        return (ms + self.day_offset_ms) // self._ruleset.granularity_ms

    def _evaluate(self, state: dict[str, Any], now: int, trigger: str | None,
                  reason: str | None = None, touched: tuple[tuple[str, str], ...] = (),
                  prune: bool = False, fresh: bool = False,
                  moved: frozenset | None = None, step: int | None = None,
                  before: dict[str, Any] | None = None) -> StepResult:
        """Re-evaluate the tags at ``now``; ``touched``: the (type, stream) of the events
        applied since the last evaluation (``prune``: prune even if the day did not change;
        ``fresh``: a state created for these events, never evaluated; ``before``: what
        ``prev()`` reads, see :meth:`on_scores`).

        Selective unless ``self.full`` or the state was last evaluated under another rule
        set: only the tags whose inputs moved are run (see :meth:`RuleSet.plan`): those that
        read a touched event, the business day when it changed, a since() threshold or
        sub-day window whose next change time (``state["th"]``) has come, the exact clock,
        and the dependents of a tag that changed. The result equals a full evaluation.
        """
        rs = self._ruleset
        last = state["now"]
        off = self.day_offset_ms
        day_changed = (now + off) // DAY_MS != (last + off) // DAY_MS
        fresh = fresh and not self.full
        selective = fresh or self._selective(state)
        daily = None
        if selective and day_changed and not fresh:
            # a new day: of the daily tags, only those whose windows the day moved (read
            # before the prune, which may drop the buckets leaving them); what the events
            # moved is planned apart (their reads and guards)
            daily = rs.daily_moved(state, (last + off) // DAY_MS, (now + off) // DAY_MS)
        if not selective or day_changed or prune:
            self._updater.prune(state, now)
        elif "rt" in state:
            self._updater.prune_recent(state, now)
        if not selective:
            return self._evaluate_all(state, now, trigger, reason, before)
        if fresh:   # every tag starts from its value on an empty state, at any clock time
            clock_passed = False
            plan = rs.plan(touched, False, False, False, fresh=True, moved=moved)
        else:
            th = state.get("th")
            clock_passed = th is not None and now >= th
            plan = rs.plan(touched, day_changed, clock_passed, now != last, False, moved, daily)
        if plan[1] or fresh:
            changes, why = self._run_plan(state, now, plan, trigger, reason, touched, fresh,
                                          before)
        else:   # no rule can have moved: every tag keeps its value
            changes, why = [], {}
        if fresh:
            if rs.clock_atoms:
                self._set_horizon(state, now)
        elif plan[2]:     # an event moved a clock atom's input
            self._set_horizon(state, now, touched if step is not None else None, step,
                              last=last)
        elif clock_passed:   # the clock alone: the start times stand
            self._set_horizon(state, now, ())
        if fresh:
            state["rv"] = rs.version
        state["now"] = now
        state["nd"] = self._next_due(state, now)
        return StepResult(state, changes, False, why)

    def _run_plan(self, state: dict[str, Any], now: int,
                  plan: tuple[frozenset[str], tuple[Any, ...], bool], trigger: str | None,
                  reason: str | None, touched: tuple[tuple[str, str], ...], fresh: bool,
                  before: dict[str, Any] | None = None
                  ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """Run the rules of ``plan`` (:meth:`RuleSet.plan`) and write what changed into
        ``state`` (tags, hidden tags); the change and why records, for :meth:`_evaluate`."""
        rs = self._ruleset
        old_tags: dict[str, Any] = state["tags"]
        hid = None if fresh else state.get("hid")
        if fresh:
            previous = rs.empty_values
        elif hid:   # a new dict: the evaluation may take it as it is
            previous = {**old_tags, **hid}
        else:
            previous = old_tags
        ran, ctx = rs.evaluate_some(state, now, previous, plan, day_offset_ms=self.day_offset_ms,
                                    keep_traces=bool(touched), owned=bool(hid),
                                    before=_NOTHING if fresh else before)
        changes: list[dict[str, Any]] = []
        why: dict[str, dict[str, Any]] = {}
        hidden_ran = False
        for tag, new in ran:
            if tag.hidden:
                hidden_ran = True
                continue
            self._note_change(state, ctx, tag, old_tags.get(tag.id), new, reason, now, trigger,
                              changes, why)
        if changes:   # rebuilt in rule order, as a full evaluation writes it
            upd = dict(old_tags)
            kept = True    # every changed tag held a value and holds one: the keys stand
            for c in changes:
                tid, v = c["tag_id"], c["new"]
                if v is None or tid not in upd:
                    kept = False
                upd[tid] = v
            if not (kept and self._in_rule_order(old_tags) and None not in upd.values()):
                upd = {tid: v for tid in rs.tag_ids if (v := upd.get(tid)) is not None}
            state["tags"] = upd
        if hidden_ran or (fresh and rs.hidden_ids):
            tags = ctx.tags
            state["hid"] = {t: tags[t] for t in rs.hidden_ids if tags.get(t) is not None}
        return changes, why

    def _in_rule_order(self, tags: dict[str, Any]) -> bool:
        """Whether the keys of ``tags`` (no None values) come in rule order, as
        :meth:`_run_plan` writes them (cached by the keys: a few hundred key sets).

        >>> from stream_app.rules.loader import load_ruleset
        >>> eng = TagEngine(load_ruleset(DEFAULT_RULES))
        >>> eng._in_rule_order({"activity": 1, "intent": 2}), eng._in_rule_order({"intent": 2,
        ...                                                                       "activity": 1})
        (True, False)
        """
        keys = tuple(tags)
        ok = self._ordered.get(keys)
        if ok is None:
            ids = self._ruleset.tag_ids
            ok = list(keys) == [t for t in ids if t in tags]
            if len(self._ordered) >= FRESH_MEMO:
                self._ordered.clear()
            self._ordered[keys] = ok
        return ok

    def _note_change(self, state: dict[str, Any], ctx: Any, tag: Any, old: Any, new: Any,
                     reason: str | None, now: int, trigger: str | None,
                     changes: list[dict[str, Any]], why: dict[str, dict[str, Any]]) -> None:
        """Append the change record and why record of ``tag`` if its value moved."""
        if old == new and type(old) is type(new):
            return
        rs = self._ruleset
        w = rs.why(ctx, tag.id)
        w.update(ruleset=rs.version, trigger=trigger,
                 recent_events=state["ids"][-RECENT_EVIDENCE:])
        why[tag.id] = w
        r = reason or change_reason(old, new)
        changes.append(self._change(state, tag.id, tag.family, old, new, r, now, trigger, w))

    def _evaluate_all(self, state: dict[str, Any], now: int, trigger: str | None,
                      reason: str | None, before: dict[str, Any] | None = None) -> StepResult:
        """Full evaluation: every rule (first evaluation, rule-set change, ``full=True``)."""
        rs = self._ruleset
        old_tags: dict[str, Any] = state["tags"]
        values, ctx = rs.evaluate_raw(state, now, day_offset_ms=self.day_offset_ms,
                                      before=before)
        new_tags: dict[str, Any] = {}
        changes: list[dict[str, Any]] = []
        why: dict[str, dict[str, Any]] = {}
        for tag in rs.tags:
            new = values[tag.id]
            if new is not None:
                new_tags[tag.id] = new
            self._note_change(state, ctx, tag, old_tags.get(tag.id), new, reason, now, trigger,
                              changes, why)
        for tag_id, old in old_tags.items():
            if tag_id not in values:  # the tag left the rule set (hot reload)
                changes.append(self._change(state, tag_id, self.family_of(tag_id), old, None,
                                            "rule_removed", now, trigger, None))
        state["tags"] = new_tags
        if rs.hidden_ids:
            state["hid"] = {t: ctx.tags[t] for t in rs.hidden_ids if ctx.tags[t] is not None}
        if rs.clock_atoms:
            self._set_horizon(state, now)
        else:
            state.pop("tg", None)
        state["rv"] = rs.version
        state["now"] = now
        state["nd"] = self._next_due(state, now)
        return StepResult(state, changes, why=why)

    def _next_due(self, state: dict[str, Any], now: int) -> int:
        """When a tick can next change ``state``: the next period start (business day), the
        clock atoms' next change (``th``: a since() threshold such as the at_risk stall
        at the last study event + 14 d, exact to the millisecond) or the state's expiry,
        whichever comes first. (Before QA35 F1 ``th`` was left out: a flip caused by time
        alone waited for the next business-day start, up to a day late.)"""
        g, off = self._ruleset.granularity_ms, self.day_offset_ms
        nd = ((now + off) // g + 1) * g - off
        th = state.get("th")
        if th is not None and now < th < nd:
            nd = th
        lt = state["lt"]
        ttl = (now if lt is None else lt) + self.state_ttl_ms + 1
        return nd if nd <= ttl else ttl

    def _drop(self, state: dict[str, Any], now: int, reason: str,
              trigger: str | None) -> StepResult:
        changes = []
        for tag_id, old in sorted(state["tags"].items()):
            changes.append(self._change(state, tag_id, self.family_of(tag_id), old, None,
                                        reason, now, trigger, None))
        state["tags"] = {}
        return StepResult(None, changes)
