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

from dataclasses import dataclass, field
from typing import Any

from stream_app.rules.compiler import Compiled, EvalContext
from stream_app.state.requirements import Requirements, Selector

KINDS = ("enum", "bool", "number", "text", "set")


@dataclass(frozen=True)
class ValueDef:
    """One value of an enumerated tag, with its labels."""

    value: Any
    zh: str = ""
    en: str = ""


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
    timed: bool = False           # its rule reads the clock to the millisecond

    def finish(self) -> None:
        """Collect deps/reads/timed from the compiled expressions (called by the loader)."""
        exprs = [self.expr] if self.expr is not None else [c.when for c in self.cases if c.when]
        self.deps = tuple(sorted(set().union(*(e.deps for e in exprs))))
        self.reads = tuple(sorted(set().union(*(e.reads for e in exprs)), key=lambda s: s.key))
        self.timed = any(e.timed for e in exprs)

    def label(self, value: Any, lang: str = "en") -> str:
        """Label of ``value`` (enum labels; other kinds: the value as text)."""
        for v in self.values:
            if v.value == value:
                return getattr(v, lang) or str(value)
        return "" if value is None else str(value)

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
            if isinstance(v, float) and v != v or v in (float("inf"), float("-inf")):
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
        self.by_id: dict[str, TagDef] = {t.id: t for t in self.order}
        self._affected: dict[tuple[str, str, bool], frozenset[str]] = {}

    def affected(self, etype: str, stream: str, clock_moved: bool = True) -> frozenset[str]:
        """Tags whose rule reads events of (``etype``, ``stream``), or the exact clock when
        ``clock_moved``."""
        key = (etype, stream, clock_moved)
        out = self._affected.get(key)
        if out is None:
            out = frozenset(t.id for t in self.order
                            if (clock_moved and t.timed)
                            or any(s.matches(etype, stream) for s in t.reads))
            self._affected[key] = out
        return out

    def evaluate(self, state: dict[str, Any], now_ms: int, *,
                 day_offset_ms: int = 8 * 3600_000) -> dict[str, TagValue]:
        """Every visible tag's value (None = the user does not hold the tag). Pure."""
        values, ctx = self.evaluate_raw(state, now_ms, day_offset_ms=day_offset_ms)
        return {tid: TagValue(v, self.why(ctx, tid)) for tid, v in values.items()}

    def evaluate_raw(self, state: dict[str, Any], now_ms: int, *,
                     day_offset_ms: int = 8 * 3600_000,
                     previous: dict[str, Any] | None = None,
                     touched: tuple[str, str] | list[tuple[str, str]] | None = None,
                     clock_moved: bool = True) -> tuple[dict[str, Any], EvalContext]:
        """Visible tag values, and the evaluation context to explain them with :meth:`why`.

        The fast form used by the engine: nothing is traced, "why" records are built only
        for the tags that changed. With ``previous`` (every tag's value at an evaluation in
        the same clock period, hidden ones included) and ``touched`` (the (type, stream) of
        the event(s) applied since), tags that read neither that event nor the exact
        clock nor a changed tag keep their previous value without being evaluated.
        """
        ctx = EvalContext(state, now_ms, day_offset_ms, trace=False)
        values: dict[str, Any] = {}
        ctx_tags = ctx.tags
        affected: frozenset[str] | None = None
        if previous is not None and touched:
            if isinstance(touched, tuple):
                affected = self.affected(*touched, clock_moved)
            else:
                affected = frozenset().union(*(self.affected(*t, clock_moved)
                                               for t in touched))
        changed: set[str] = set()
        for tag in self.order:
            tid = tag.id
            if (affected is not None and tid not in affected
                    and not (tag.deps and changed.intersection(tag.deps))):
                value = previous.get(tid)  # type: ignore[union-attr]
            else:
                raw, _ = self._run(tag, ctx)
                value = tag.normalise(raw) if raw is not None else None
                if affected is not None:
                    old = previous.get(tid)  # type: ignore[union-attr]
                    if old != value or type(old) is not type(value):
                        changed.add(tid)
            ctx_tags[tid] = value
            if not tag.hidden:
                values[tid] = value
        return values, ctx

    @staticmethod
    def _run(tag: TagDef, ctx: EvalContext) -> tuple[Any, int | None]:
        if tag.expr is not None:
            return tag.expr.fn(ctx), None
        for i, case in enumerate(tag.cases):
            if case.when is None or case.when.fn(ctx):
                return case.value, i
        return None, None

    def why(self, ctx: EvalContext, tag_id: str) -> dict[str, Any]:
        """The "why" record of a tag's value in an evaluation: rule id and version, the values
        that decided it (the function calls of its rule) and, for case rules, the case that
        matched. Re-runs the rule with tracing on (function values come from the memo)."""
        tag = self.by_id[tag_id]
        ctx.trace = {}
        try:
            _, matched = self._run(tag, ctx)
            why: dict[str, Any] = {"rule": tag.id, "rule_version": tag.version,
                                   "values": ctx.trace}
        finally:
            ctx.trace = None
        if matched is not None:
            case = tag.cases[matched]
            why["case"] = case.when.text if case.when is not None else "default"
        why["value"] = ctx.tags.get(tag_id)
        return why
