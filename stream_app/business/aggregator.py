"""Windowed (event-time, tumbling) aggregation of business events into series points.

Per tenant and channel (and tenant-wide, channel ``all``) and per configured window
(``1m``, ``1h``): funnel step counts, money series (revenue, refunds) and step rates (ratios of the
events counted in the same window, not cohort conversions). A window closes when the
largest event time seen passes its end plus the window's lateness; closing yields one point
per known series, with zeros for series that had no events, so a channel that goes silent
shows as a drop rather than as a gap. Events for a closed window are counted in ``late``
and dropped. Pure: no Faust, Redis or Prometheus; state round-trips through
:meth:`BusinessAggregator.snapshot` / :meth:`BusinessAggregator.restore`.

Example:
    >>> agg = BusinessAggregator(load_business_spec())
    >>> class E:  # anything with type, ts, tenant, props (an Event)
    ...     def __init__(self, t, ts, ch): self.type, self.ts, self.tenant, self.props = (
    ...         t, ts, "default", {"channel": ch})
    >>> for i in range(10): _ = agg.add(E("registered", 1_000 + i, "douyin"))
    >>> for i in range(4): _ = agg.add(E("trial_booked", 2_000 + i, "douyin"))
    >>> pts = agg.add(E("page_view", 60_000 * 4, "douyin"))   # closes [0, 60s) and [60s, 120s)
    >>> first = {(p.metric, p.channel): p.value for p in pts if p.start_ms == 0}
    >>> first["lead_to_trial", "douyin"], first["leads", "all"]
    (0.4, 10.0)
    >>> [p.value for p in pts if p.start_ms == 60_000 and p.key[:3] == ("leads", "default", "all")]
    [0.0]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Protocol

from stream_app.business.series import ALL, SeriesPoint
from stream_app.business.spec import BusinessSpec, WindowSpec, fold_tenant, load_business_spec

__all__ = ["BusinessAggregator", "load_business_spec"]

OTHER = "other"
UNKNOWN = "unknown"
MAX_PLANS = 4_096   # step sets of a bucket whose series are remembered (_plan)


class EventLike(Protocol):
    type: str
    ts: int
    tenant: str
    props: dict[str, Any]


class BusinessAggregator:
    """Tumbling-window business counters for every window of ``spec``.

    Parameters:
        spec: what to count (``config/anomaly.yaml``).
        max_gap_windows: a jump of event time further than this many windows skips ahead
            instead of emitting zero points for every empty window in between.
    """

    def __init__(self, spec: BusinessSpec, max_gap_windows: int = 1440,
                 zeros: bool = True) -> None:
        self.spec = spec
        self.max_gap_windows = max_gap_windows
        #: False: a closed window yields only its non-zero points (the worker's partial
        #: aggregators: the merger fills the zeros), and a run of empty windows closes in one
        #: step, so replaying a backlog that closes a window every few events stays cheap
        self.zeros = zeros
        self.late = 0
        # window -> start_ms -> (tenant, channel) -> step -> count
        self._open: dict[str, dict[int, dict[tuple[str, str], dict[str, float]]]] = {
            w: {} for w in spec.windows}
        self._next_close: dict[str, int | None] = {w: None for w in spec.windows}
        #: the earliest event time at which some window closes (None: nothing open):
        #: :meth:`advance` below it is one comparison
        self._due: int | None = None
        self._watermark: int | None = None
        #: event time from which this aggregator counts (its first event): the windows that
        #: began before it were open in no counter of this one, e.g. a worker restarted after
        #: a crash counts from its last committed offset, and the dead process's open windows
        #: are lost (:class:`~stream_app.business.Merger` marks those windows incomplete)
        self.counted_from: int | None = None
        self._known: set[tuple[str, str]] = set()
        #: the spec's series as tuples, for :meth:`_points`: (count name, step) and
        #: (rate name, numerator step, first denominator step, the other ones)
        self._sizes = tuple((w, ws.size_ms) for w, ws in spec.windows.items())
        self._wins = tuple((w, ws, ws.size_ms, ws.lateness_ms) for w, ws in spec.windows.items())
        #: counted steps of a bucket -> the series it can have points of (:meth:`_plan`)
        self._plans: dict[frozenset[str], tuple[Any, Any, Any]] = {}
        self._count_steps = tuple((name, c.step) for name, c in spec.counts.items())
        #: step -> its money series' bucket key (steps without amount: absent); the series
        #: as (name, bucket key)
        self._money = {step: f"__{name}__" for step, name in spec.amount_series.items()}
        self._money_series = tuple((name, f"__{name}__") for name in spec.amounts)
        self._rate_steps = tuple((name, r.num, r.den[0] if r.den else None, r.den[1:])
                                 for name, r in spec.rates.items())

    @property
    def watermark(self) -> int | None:
        """The largest event time seen (windows up to it, less lateness, are closed)."""
        return self._watermark

    # ---- input ----
    def channel_of(self, props: dict[str, Any]) -> str:
        for name in self.spec.channel_props:
            value = props.get(name)
            if value:
                value = str(value)
                return value if value in self.spec.channels else OTHER
        return UNKNOWN

    def attribute(self, props: dict[str, Any], channel: str | None = None) -> str:
        """The series channel of an event: ``channel`` when given (e.g. the user's first
        touch), else the one its props name; outside the allow-list ``other``.

        >>> from stream_app.business import load_business_spec
        >>> agg = BusinessAggregator(load_business_spec())
        >>> agg.attribute({"channel": "douyin"}), agg.attribute({}, "douyin"), agg.attribute({})
        ('douyin', 'douyin', 'unknown')
        """
        if channel is None:
            return self.channel_of(props)
        return channel if channel in self.spec.channels else (channel and OTHER) or UNKNOWN

    def classify(self, event: EventLike) -> tuple[str, float] | None:
        """``(funnel step, paid amount)`` of ``event``, None if it is no funnel event; the
        amount is 0 for a step no money series (``spec.amounts``) counts.

        >>> class E: type, props = "order_paid", {"amount": 4980}
        >>> agg = BusinessAggregator(load_business_spec())
        >>> agg.classify(E())
        ('order_paid', 4980.0)
        >>> E.type, E.props = "renewal", {"price": "1999.5"}
        >>> agg.classify(E())
        ('renewal', 1999.5)
        """
        step = self.spec.step_of(event.type)
        if step is None:
            return None
        return step, self.amount_of(event.props or {}) if step in self._money else 0.0

    def add(self, event: EventLike, channel: str | None = None) -> list[SeriesPoint]:
        """Count ``event`` (``channel`` overrides the event's own attribution, e.g. the
        user's first-touch channel from state); return points of windows it closed."""
        step = self.spec.steps.get(event.type)
        closed = self.advance(event.ts)
        if step is not None:
            self._count(event, step, self.attribute(event.props or {}, channel))
        return closed

    def add_step(self, event: EventLike, step: str, channel: str,
                 watermark: int | None = None, amount: float | None = None) -> list[SeriesPoint]:
        """:meth:`add` of a funnel event whose ``step`` (``spec.step_of(event.type)``) and
        series channel (:meth:`attribute`) the caller has already worked out; event time
        moves to ``watermark`` when given (the caller's cap on a skewed clock), else to the
        event's time. The event is counted in its own window either way. ``amount``: the
        event's :meth:`amount_of` if the caller has read it (else it is read here when the
        step has a money series).

        >>> agg = BusinessAggregator(load_business_spec())
        >>> class E: type, ts, tenant, props = "registered", 1_000, "default", {}
        >>> agg.add_step(E(), "lead", "douyin"), agg.snapshot()["known"]
        ([], [['default', 'all'], ['default', 'douyin']])
        >>> E.ts = 8 * 3_600_000                    # 8 h ahead, time held at 2 s
        >>> agg.add_step(E(), "lead", "douyin", watermark=2_000), agg.watermark
        ([], 2000)
        >>> E.ts = 1_500; _ = agg.add_step(E(), "lead", "douyin"); agg.late     # still open
        0
        """
        closed = self.advance(event.ts if watermark is None else watermark)
        self._count(event, step, channel, amount)
        return closed

    def _count(self, event: EventLike, step: str, ch: str,
               amount: float | None = None) -> None:
        """Count funnel ``step`` of ``event`` for series channel ``ch`` in every window
        (``amount``: its :meth:`amount_of`, if known)."""
        tenant = event.tenant
        if tenant not in self.spec.tenants:
            tenant = fold_tenant(tenant)   # "other", logged once per tenant
        money = self._money.get(step)
        if money is None:
            amount = 0.0
        elif amount is None:
            amount = self.amount_of(event.props or {})
        ts = event.ts
        keys = ((tenant, ch), (tenant, ALL))
        next_close, open_ = self._next_close, self._open
        for w, size in self._sizes:
            start = ts - ts % size
            nxt = next_close[w]
            if nxt is not None and start < nxt:
                self.late += 1
                continue
            if nxt is None:
                next_close[w] = start
                self._set_due()
            buckets = open_[w]
            bucket = buckets.get(start)
            if bucket is None:
                bucket = buckets[start] = {}
            for key in keys:
                counts = bucket.get(key)
                if counts is None:
                    counts = bucket[key] = defaultdict(float)
                counts[step] += 1
                if amount:
                    counts[money] += amount
        self._known.add(keys[0])
        self._known.add(keys[1])

    def amount_of(self, props: dict[str, Any]) -> float:
        """The paid amount in ``props``: the first of ``spec.amount_props`` that reads as a
        number (numeric strings too), at least 0; 0 without one. The one definition of an
        event's amount: the money series and the Prometheus counters
        (:func:`stream_app.app.business.count_event`) both use it.

        >>> agg = BusinessAggregator(load_business_spec())
        >>> agg.amount_of({"amount": "1999"}), agg.amount_of({"price": 2990}), agg.amount_of({})
        (1999.0, 2990.0, 0.0)
        >>> agg.amount_of({"amount": "x", "price": 5}), agg.amount_of({"amount": -3})
        (5.0, 0.0)
        """
        for name in self.spec.amount_props:
            try:
                return max(0.0, float(props[name]))
            except (KeyError, TypeError, ValueError):
                continue
        return 0.0


    # ---- closing ----
    def advance(self, now_ms: int) -> list[SeriesPoint]:
        """Move event time to ``now_ms`` (never backwards); return points of closed windows.
        Call it from a timer too, so windows close when traffic stops. The first call sets
        :attr:`counted_from`."""
        wm = self._watermark
        if wm is None:   # the first event since this aggregator started
            self.counted_from = now_ms
        elif now_ms <= wm:
            return []
        self._watermark = now_ms
        if self._due is None or now_ms < self._due:
            return []
        out: list[SeriesPoint] = []
        if self.zeros:
            for w, ws in self.spec.windows.items():
                out.extend(self._close(w, ws, now_ms))
        else:
            next_close = self._next_close
            for w, ws, size, lateness in self._wins:
                start = next_close[w]
                if start is not None and start + size + lateness <= now_ms:   # due
                    self._close_sparse(w, ws, now_ms, out)
        self._set_due()
        return out

    def _set_due(self) -> None:
        due = None
        next_close = self._next_close
        for w, _, size, lateness in self._wins:
            nxt = next_close[w]
            if nxt is not None and (due is None or nxt + size + lateness < due):
                due = nxt + size + lateness
        self._due = due

    def _close_sparse(self, w: str, ws: WindowSpec, now_ms: int,
                      out: list[SeriesPoint]) -> None:
        """Without zeros an empty window yields nothing, so a run of them closes at once:
        the windows with counts, oldest first, go to ``out``, then the next close jumps
        past ``now_ms`` (the caller, :meth:`advance`, calls it for a window that is due).
        """
        # first window start s with s + size + lateness > now_ms (starts are size-aligned)
        nxt = now_ms - ws.lateness_ms - (now_ms - ws.lateness_ms) % ws.size_ms
        open_ = self._open[w]
        for s in sorted(s for s in open_ if s < nxt):
            self._sparse_points(w, s, s + ws.size_ms, open_.pop(s), out)
        self._next_close[w] = nxt

    def _close(self, w: str, ws: WindowSpec, now_ms: int) -> Iterable[SeriesPoint]:
        start = self._next_close[w]
        if start is None:
            return
        open_ = self._open[w]
        while start + ws.size_ms + ws.lateness_ms <= now_ms:
            bucket = open_.pop(start, {})
            yield from self._points(w, start, start + ws.size_ms, bucket)
            start += ws.size_ms
            if not open_ and (now_ms - start) // ws.size_ms > self.max_gap_windows:
                # long silence or a jump in time: skip the empty stretch
                start = now_ms - ws.lateness_ms - (now_ms - ws.lateness_ms) % ws.size_ms
                start -= ws.size_ms
        self._next_close[w] = start

    def _points(self, w: str, start: int, end: int,
                bucket: dict[tuple[str, str], dict[str, float]]) -> Iterable[SeriesPoint]:
        """The points of a closed window of a full aggregator (``zeros``): every known
        series, zeros included (a partial aggregator's are :meth:`_sparse_points`)."""
        empty: dict[str, float] = {}
        for tenant, ch in sorted(self._known):
            counts = bucket.get((tenant, ch), empty)
            get = counts.get
            for name, step in self._count_steps:
                n = get(step, 0.0)
                yield SeriesPoint(name, tenant, ch, w, start, end, n, n, "count")
            for money, key in self._money_series:
                rev = get(key, 0.0)
                yield SeriesPoint(money, tenant, ch, w, start, end, rev, rev, "revenue")
            for name, num, den_first, den_rest in self._rate_steps:
                # the sum, added left to right as sum() does (0 without denominator steps)
                den = 0 if den_first is None else get(den_first, 0.0)
                for s in den_rest:
                    den += get(s, 0.0)
                if den > 0:
                    yield SeriesPoint(name, tenant, ch, w, start, end, get(num, 0.0), den,
                                      "rate")

    def _sparse_points(self, w: str, start: int, end: int,
                       bucket: dict[tuple[str, str], dict[str, float]],
                       out: list[SeriesPoint]) -> None:
        """:meth:`_points` of a partial aggregator (no zeros), appended to ``out``: only the
        series whose steps the bucket counted are looked at (:meth:`_plan`)."""
        plans = self._plans
        for key in sorted(bucket):
            tenant, ch = key
            counts = bucket[key]
            get = counts.get
            steps = frozenset(counts)
            plan = plans.get(steps) or self._plan(steps)
            for name, step in plan[0]:
                n = get(step, 0.0)
                if n:
                    out.append(SeriesPoint(name, tenant, ch, w, start, end, n, n, "count"))
            for money, key in plan[1]:
                rev = get(key, 0.0)
                if rev:
                    out.append(SeriesPoint(money, tenant, ch, w, start, end, rev, rev,
                                           "revenue"))
            for name, num, den_first, den_rest in plan[2]:
                den = 0 if den_first is None else get(den_first, 0.0)
                for s in den_rest:
                    den += get(s, 0.0)
                # a partial keeps a numerator without denominator: another partition may
                # have the denominator, and the merged rate needs both sums
                if den > 0 or get(num):
                    out.append(SeriesPoint(name, tenant, ch, w, start, end, get(num, 0.0),
                                           den, "rate"))

    def _plan(self, steps: frozenset[str]) -> tuple[Any, Any, Any]:
        """The series a bucket counting ``steps`` (its keys) can have a non-zero point of,
        in :meth:`_points` order: (count series, money series, rate series). A series none
        of whose steps was counted has a zero point, which a partial aggregator leaves out.

        >>> agg = BusinessAggregator(load_business_spec(), zeros=False)
        >>> counts, money, rates = agg._plan(frozenset({"lead"}))
        >>> counts, money, [r[0] for r in rates]
        ((('leads', 'lead'),), (), ['lead_to_trial'])
        >>> agg._plan(frozenset({"refund", "__refunds__"}))[1]
        (('refunds', '__refunds__'),)
        """
        plan = (tuple(c for c in self._count_steps if c[1] in steps),
                tuple(m for m in self._money_series if m[1] in steps),
                tuple(r for r in self._rate_steps
                      if r[1] in steps or r[2] in steps or any(d in steps for d in r[3])))
        if len(self._plans) < MAX_PLANS:
            self._plans[steps] = plan
        return plan

    # ---- state ----
    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state (for a Faust table or a file)."""
        return {
            "late": self.late,
            "watermark": self._watermark,
            "counted_from": self.counted_from,
            "next_close": dict(self._next_close),
            "known": sorted(list(k) for k in self._known),
            "open": {w: [[s, [[t, c, dict(v)] for (t, c), v in b.items()]]
                         for s, b in buckets.items()] for w, buckets in self._open.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.late = int(state.get("late", 0))
        self._watermark = state.get("watermark")
        self.counted_from = state.get("counted_from")
        self._next_close.update({w: v for w, v in state.get("next_close", {}).items()
                                 if w in self._next_close})
        self._set_due()
        self._known = {(t, c) for t, c in state.get("known", [])}
        for w, buckets in state.get("open", {}).items():
            if w not in self._open:
                continue
            self._open[w] = {int(s): {(t, c): defaultdict(float, v) for t, c, v in rows}
                             for s, rows in buckets}
