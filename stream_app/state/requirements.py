"""What a compiled rule set needs accumulated in each user's state.

The state always keeps generic per-type daily counts, lifetime counts and first/last times.
Everything else (sums and peaks of props, first/last prop values, distinct values, profile
fields, streaks, ordered pairs, sub-day timestamps) is kept only when a rule asks for it; the
rule compiler fills a :class:`Requirements` and the state updater reads it.

Example:
    >>> sel = Selector.parse("stream:click|order_paid")
    >>> sel.matches("course_view", "click"), sel.matches("order_paid", "order"), sel.key
    (True, True, 'order_paid|stream:click')
    >>> Selector.parse("any").matches("x", "y"), Selector.parse("any").matches("outcome", "label")
    (True, False)
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: stream names; a bare stream name in a selector means the whole stream
STREAMS = frozenset({"click", "study", "order", "profile", "label", "feedback"})
#: streams of system records, not user behaviour: ``any`` leaves them out
#: (``__scores__`` is the pseudo stream of model-score updates, see rules.compiler.SCORES)
NOT_BEHAVIOUR = frozenset({"label", "feedback", "__scores__"})


@dataclass(frozen=True)
class Selector:
    """A set of event types and/or streams (``any`` = every event of user behaviour, i.e.
    not of the ``label`` and ``feedback`` streams)."""

    types: frozenset[str] = frozenset()
    streams: frozenset[str] = frozenset()
    any: bool = False
    key: str = field(init=False, compare=False, repr=False)
    #: the one stream of a selector of one stream and no types (its fast path), else None
    one_stream: str | None = field(init=False, compare=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if self.any:
            key = "any"
        else:
            key = "|".join(sorted(self.types) + [f"stream:{s}" for s in sorted(self.streams)])
        object.__setattr__(self, "key", key)
        if not self.any and not self.types and len(self.streams) == 1:
            object.__setattr__(self, "one_stream", next(iter(self.streams)))

    @classmethod
    def parse(cls, text: str) -> Selector:
        """``any`` | ``stream:NAME`` | a stream name | an event type, joined by ``|``."""
        types: set[str] = set()
        streams: set[str] = set()
        for part in (p.strip() for p in text.split("|")):
            if part == "any":
                return cls(any=True)
            if part.startswith("stream:"):
                streams.add(part[7:])
            elif part in STREAMS:
                streams.add(part)
            else:
                types.add(part)
        return cls(frozenset(types), frozenset(streams))

    def matches(self, etype: str, stream: str) -> bool:
        if self.any:
            return stream not in NOT_BEHAVIOUR
        return etype in self.types or stream in self.streams

    def resolve(self, type_streams: dict[str, str]) -> list[str]:
        """The event types of a state (``type -> stream`` map) this selector covers."""
        if self.any:
            return [t for t, s in type_streams.items() if s not in NOT_BEHAVIOUR]
        if not self.streams:
            return [t for t in self.types if t in type_streams]
        types, streams = self.types, self.streams
        return [t for t, s in type_streams.items() if t in types or s in streams]

    def total(self, counts: dict[str, int], type_streams: dict[str, str]) -> int:
        """Sum of ``counts`` (type -> count) over the types this selector covers (those of
        ``type_streams``): ``sum`` over :meth:`resolve` without building the list.

        >>> st = {"page_view": "click", "order_paid": "order", "outcome": "label"}
        >>> n = {"page_view": 3, "order_paid": 2, "outcome": 1}
        >>> Selector.parse("any").total(n, st), Selector.parse("click|refund").total(n, st)
        (5, 3)
        """
        out = 0
        one = self.one_stream
        if one is not None:   # e.g. stream:click
            for t, s in type_streams.items():
                if s == one:
                    out += counts.get(t, 0)
            return out
        if not self.any and not self.streams:
            for t in self.types:
                if t in type_streams:
                    out += counts.get(t, 0)
            return out
        types, streams, any_ = self.types, self.streams, self.any
        for t, s in type_streams.items():
            if s not in NOT_BEHAVIOUR if any_ else t in types or s in streams:
                out += counts.get(t, 0)
        return out

    def extreme(self, times: dict[str, int], type_streams: dict[str, str],
                latest: bool, skip: str | None = None) -> int | None:
        """The latest (``latest``) or earliest of ``times`` (type -> time, for types of
        ``type_streams``) over the types this selector covers (but ``skip``); None if it
        covers none. The same as ``max``/``min`` over :meth:`resolve`, without building the
        list.

        >>> sel = Selector.parse("stream:click|order_paid")
        >>> st = {"page_view": "click", "order_paid": "order", "registered": "profile"}
        >>> times = {"page_view": 5, "order_paid": 9, "registered": 20}
        >>> sel.extreme(times, st, True), sel.extreme(times, st, False)
        (9, 5)
        >>> Selector.parse("refund").extreme(times, st, True) is None
        True
        >>> sel.extreme(times, st, True, skip="order_paid"), sel.extreme(times, st, False, "x")
        (5, 5)
        """
        best = None
        one = self.one_stream
        if one is not None:   # e.g. stream:click
            for t, v in times.items():
                if type_streams.get(t) == one and t != skip and (
                        best is None or (v > best if latest else v < best)):
                    best = v
            return best
        if not self.any and not self.streams:
            for t in self.types:
                v = times.get(t)
                if v is not None and t in type_streams and t != skip and (
                        best is None or (v > best if latest else v < best)):
                    best = v
            return best
        types, streams, any_ = self.types, self.streams, self.any
        for t, v in times.items():
            s = type_streams.get(t)
            if s is None or t == skip:
                continue
            if (s not in NOT_BEHAVIOUR if any_ else t in types or s in streams) and (
                    best is None or (v > best if latest else v < best)):
                best = v
        return best


@dataclass(frozen=True)
class PropSpec:
    """A property of the events of a selector, e.g. ``order_paid.amount``."""

    sel: Selector
    prop: str
    key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.sel.key}.{self.prop}")


@dataclass(frozen=True)
class PairSpec:
    """Two selectors: streak of ``a`` reset by ``b``, or ``a`` followed by ``b``."""

    a: Selector
    b: Selector
    key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.a.key}>{self.b.key}")


@dataclass
class Requirements:
    """Aggregates a rule set needs beyond the generic per-type counts."""

    sums: set[PropSpec] = field(default_factory=set)        # daily + lifetime sums
    peaks: set[PropSpec] = field(default_factory=set)       # lifetime maximum
    firsts: set[PropSpec] = field(default_factory=set)      # earliest value
    lasts: set[PropSpec] = field(default_factory=set)       # latest value
    #: ``first(sel.a|b)`` / ``last(sel.a|b)``: props of ``firsts`` / ``lasts`` read together
    #: (the record of the earliest / latest of them wins); see :meth:`alt_others`
    first_alts: set[tuple[PropSpec, ...]] = field(default_factory=set)
    last_alts: set[tuple[PropSpec, ...]] = field(default_factory=set)
    distincts: set[PropSpec] = field(default_factory=set)   # set of values
    profile: set[str] = field(default_factory=set)          # latest profile field values
    streaks: set[PairSpec] = field(default_factory=set)
    seqs: set[PairSpec] = field(default_factory=set)
    recent: set[Selector] = field(default_factory=set)      # sub-day windows: raw timestamps
    recent_ms: int = 0                                      # longest sub-day window
    max_window_days: int = 0                                # longest daily window
    windows: dict[Selector, int] = field(default_factory=dict)   # longest count window (days)
    sum_windows: dict[PropSpec, int] = field(default_factory=dict)  # longest sum window (days)
    stream_windows: dict[str, int] = field(default_factory=dict)   # per-stream daily counts

    def need_days(self, sel: Selector, days: int) -> None:
        """Record that a rule counts events of ``sel`` over ``days`` days."""
        self.windows[sel] = max(self.windows.get(sel, 0), days)
        self.max_window_days = max(self.max_window_days, days)
        for stream in sel.streams:
            self.stream_windows[stream] = max(self.stream_windows.get(stream, 0), days)

    def need_sum_days(self, spec: PropSpec, days: int) -> None:
        """Record that a rule sums ``spec`` over ``days`` days."""
        self.sum_windows[spec] = max(self.sum_windows.get(spec, 0), days)
        self.max_window_days = max(self.max_window_days, days)

    def prop_index(self) -> dict[str, list[tuple[str, PropSpec]]]:
        """``prop -> [(aggregate kind, spec)]``, so the updater looks only at present props.
        A first / last record read among alternatives (:attr:`first_alts`) has the kind
        ``fpa`` / ``lpa`` instead of ``fp`` / ``lp``: the updater keeps it the same way and
        also tells when it overtook another prop's record (:meth:`alt_others`).

        >>> ch, utm = (PropSpec(Selector.parse("click"), p) for p in ("channel", "utm_source"))
        >>> req = Requirements(lasts={ch, utm}, firsts={ch}, last_alts={(ch, utm)})
        >>> {p: [(k, s.prop) for k, s in v] for p, v in req.prop_index().items()}
        {'channel': [('fp', 'channel'), ('lpa', 'channel')], 'utm_source': [('lpa', 'utm_source')]}
        """
        out: dict[str, list[tuple[str, PropSpec]]] = {}
        alt = {"fp": {s for g in self.first_alts for s in g},
               "lp": {s for g in self.last_alts for s in g}}
        for kind, specs in (("s", self.sums), ("mx", self.peaks), ("fp", self.firsts),
                            ("lp", self.lasts), ("dv", self.distincts)):
            grouped = alt.get(kind, ())
            for spec in sorted(specs, key=lambda s: s.key):
                out.setdefault(spec.prop, []).append(
                    (kind + "a" if spec in grouped else kind, spec))
        return out

    def alt_others(self, kind: str) -> dict[str, tuple[str, ...]]:
        """``spec key -> the keys of the props read together with it`` in a ``first``
        (``kind="fp"``) or ``last`` (``"lp"``) of alternatives, over every group it is in.

        >>> a, b, c = (PropSpec(Selector.parse("click"), p) for p in "abc")
        >>> others = Requirements(last_alts={(a, b), (c, a)}).alt_others("lp")
        >>> others["stream:click.a"], others["stream:click.c"]
        (('stream:click.b', 'stream:click.c'), ('stream:click.a',))
        """
        groups = self.first_alts if kind == "fp" else self.last_alts
        out: dict[str, set[str]] = {}
        for g in groups:
            for spec in g:
                out.setdefault(spec.key, set()).update(s.key for s in g if s != spec)
        return {k: tuple(sorted(v)) for k, v in sorted(out.items())}
