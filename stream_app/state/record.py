"""One user's state record: a plain JSON-able dict, updated in place by :class:`StateUpdater`.

Layout (short keys: it is written to a changelog on every update)::

    v       layout version               uid, tenant  user id, tenant
    seq     last tag-change sequence     now      clock of the last evaluation (ms)
    nd      next time (ms) a clock tick may change something (see TagEngine.due)
    ft, lt  first / last event time (ms) ids      recent event ids (dedup), oldest first
    st      type -> stream               n        type -> lifetime count
    f, l    type -> first / last time    d        type -> [[day, count], ...]
    s, S    "sel.prop" -> [[day, sum]] / lifetime sum       mx  "sel.prop" -> lifetime max
    fp, lp  "sel.prop" -> [ts, event_id, value] (earliest / latest)
    dv      "sel.prop" -> sorted distinct values             pr  field -> [ts, event_id, value]
    sk      "a>b" -> {"b": last reset ts, "a": [ts of a after it]}  (streaks)
    sq      "a>b" -> {"a": [ts], "b": [ts]}                          (ordered pairs)
    rt      type -> [ts, ...] of the last hours (sub-day windows)
    tags    tag id -> current value   scores  model scores (written by the scoring part)
    rv, hid rule-set version of the last evaluation, hidden tags' values
    th      next time a clock read with a known horizon can change (None: not before an event)
    tg      start times of the rule set's since() thresholds (``RuleSet.clock_starts``), kept
            so ``th`` needs no scan of the types; states written before it get it on the
            next evaluation that needs ``th``
    ref     referral: {"by": inviter, "at": [ts, event_id], "sent": [derived types]}

Every aggregate is order-independent: applying the same events in any order gives the
same evaluation (ties between equal times are broken by event id).

Example:
    >>> from stream_app.events import Event
    >>> up = StateUpdater(Requirements())
    >>> st = new_state("u1")
    >>> up.apply(st, Event("e1", "u1", 1714528800000, "course_view", "click"))
    >>> st["d"], st["n"], st["ids"]
    ({'course_view': [[19844, 1]]}, {'course_view': 1}, ['e1'])
"""

from __future__ import annotations

from bisect import insort
from typing import Any

from stream_app.events import Event
from stream_app.state import buckets
from stream_app.state.requirements import PairSpec, Requirements

DAY_MS = 86_400_000
LAYOUT_VERSION = 1
MAX_TYPES = 128        # distinct event types tracked per user (unknown types beyond are ignored)
PAIR_CAP = 32          # timestamps kept per streak / pair side
RECENT_CAP = 256       # timestamps kept per type for sub-day windows
DISTINCT_CAP = 32      # distinct values kept per property


def _number(value: Any) -> int | float | None:
    """A numeric prop value (numeric strings accepted; bools and others are not numbers).

    >>> _number(3), _number("4980.5"), _number(True), _number("n/a")
    (3, 4980.5, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return None
        return f if f == f and f not in (float("inf"), float("-inf")) else None
    return None


#: tag-change numbers of a state start at (creation time in ms) x SEQ_BASE, so a user whose
#: state was deleted (PIPL) or expired and created again never reuses a change id
SEQ_BASE = 1000


def new_state(user_id: str, tenant: str = "default", created_ms: int = 0) -> dict[str, Any]:
    """An empty state record (``created_ms``: time of its first event, numbers its changes)."""
    return {"v": LAYOUT_VERSION, "uid": user_id, "tenant": tenant,
            "seq": max(created_ms, 0) * SEQ_BASE, "now": 0, "nd": 0,
            "ft": None, "lt": None, "ids": [], "st": {}, "n": {}, "f": {}, "l": {}, "d": {},
            "tags": {}, "scores": {}}


def day_of(ts_ms: int, day_offset_ms: int) -> int:
    """Business-day index of ``ts_ms``.

    >>> day_of(1714528800000, 8 * 3600_000)
    19844
    """
    return (ts_ms + day_offset_ms) // DAY_MS


def _differs(record: list | None, value: Any) -> bool:
    """Whether ``value`` differs from the value of a ``[ts, event_id, value]`` record (None:
    no record), as a rule reading it would see (``1`` and ``1.0`` differ).

    >>> _differs(None, "a"), _differs([1, "e", "a"], "a"), _differs([1, "e", 1], 1.0)
    (True, False, True)
    """
    if record is None:
        return True
    old = record[2]
    return old != value or type(old) is not type(value)


def _overtook(recs: dict[str, list], others: tuple[str, ...], cur: list, ts: int, eid: str,
              value: Any, latest: bool) -> bool:
    """Whether a prop's record ``cur`` (``[ts, event_id, value]``), replaced by the event
    (``ts``, ``eid``) with an equal ``value``, may have overtaken the record of another prop
    read with it (``others``: keys in ``recs``) that holds another value: a ``last``
    (``latest``) or ``first`` of alternatives can then change although no record's value
    did. True when such a record lies, by (time, event id), between ``cur`` and the event
    (bounds included: equal ones are decided by the order the props are listed).

    >>> recs = {"a": [5, "e5", "x"], "b": [3, "e3", "y"]}
    >>> _overtook(recs, ("b",), [1, "e1", "x"], 5, "e5", "x", True)    # b's 3 passed: y -> x
    True
    >>> _overtook(recs, ("b",), [4, "e4", "x"], 5, "e5", "x", True)    # a was the latest: x
    False
    >>> _overtook({"b": [3, "e3", "x"]}, ("b",), [1, "e1", "x"], 5, "e5", "x", True)
    False
    """
    new = (ts, eid)
    old = (cur[0], cur[1])
    for other in others:
        r = recs.get(other)
        if r is None or not _differs(r, value):
            continue
        at = (r[0], r[1])
        if (old <= at <= new) if latest else (new <= at <= old):
            return True
    return False


def _count_day(lists: dict[str, Any], key: str, day: int) -> None:
    """One more event on ``day`` in the daily buckets ``lists[key]`` (created if missing).

    >>> lists = {}
    >>> _count_day(lists, "click", 3); _count_day(lists, "click", 3); _count_day(lists, "click", 1)
    >>> lists
    {'click': [[1, 1], [3, 2]]}
    """
    b = lists.get(key)
    if b is None:
        lists[key] = [[day, 1]]
    elif b and b[-1][0] == day:   # buckets.add's common case (the newest day), one call less
        b[-1][1] += 1
    else:
        buckets.add(b, day, 1)


class StateUpdater:
    """Applies events to state records, keeping what ``req`` asks for."""

    def __init__(self, req: Requirements, *, day_offset_ms: int = 8 * 3600_000,
                 retention_days: int = 120, dedup_window: int = 64) -> None:
        self.req = req
        self.day_offset_ms = day_offset_ms
        self.retention_days = retention_days
        self.max_retention_days = max(retention_days, req.max_window_days)
        self._type_ret: dict[tuple[str, str], int] = {}
        self._sum_ret = {spec.key: max(retention_days, days)
                         for spec, days in req.sum_windows.items()}
        self._stream_ret = {s: max(retention_days, days)
                            for s, days in req.stream_windows.items()}
        self.dedup_window = dedup_window
        self._props = req.prop_index()
        #: first / last records read among alternatives: key -> the other props' keys
        self._fp_others = req.alt_others("fp")
        self._lp_others = req.alt_others("lp")
        self._profile = sorted(req.profile)
        self._streaks: list[PairSpec] = sorted(req.streaks, key=lambda p: p.key)
        self._seqs: list[PairSpec] = sorted(req.seqs, key=lambda p: p.key)
        self._recent = list(req.recent)
        self._plans: dict[tuple[str, str], tuple] = {}

    # -- dedup -------------------------------------------------------------------------
    def seen(self, state: dict[str, Any], event_id: str) -> bool:
        return event_id in state["ids"]

    def remember(self, state: dict[str, Any], event_id: str) -> None:
        if self.dedup_window <= 0:
            return
        ids = state["ids"]
        ids.append(event_id)
        if len(ids) > self.dedup_window:
            del ids[: len(ids) - self.dedup_window]

    def type_retention(self, etype: str, stream: str) -> int:
        """Days of daily counts kept for ``etype``: the retention, or longer if a rule needs."""
        ret = self._type_ret.get((etype, stream))
        if ret is None:
            ret = max([self.retention_days] + [d for sel, d in self.req.windows.items()
                                               if sel.matches(etype, stream)])
            self._type_ret[(etype, stream)] = ret
        return ret

    # -- accumulate --------------------------------------------------------------------
    def apply(self, state: dict[str, Any], ev: Event, moved: set[str] | None = None) -> None:
        """Fold one event into ``state`` (no dedup check: see :meth:`seen`).

        Daily buckets are added only for days a :meth:`prune` at the next evaluation
        (``max(event time, state["now"])``) keeps, so an evaluation on the same business
        day as the previous one needs no prune. ``moved``: a set to which the one-value prop
        aggregates whose value the event changed are added, as ``"<kind>:<spec key>"`` with
        kind ``fp`` (first), ``lp`` (last), ``mx`` (peak) or ``dv`` (distinct values); a
        latest value replaced by an equal one has not moved, unless the prop is read among
        alternatives (``last(click.channel|utm_source)``) and its record passed another's
        that holds another value (see :func:`_overtook`).

        >>> from stream_app.state.requirements import PropSpec, Selector
        >>> req = Requirements(lasts={PropSpec(Selector.parse("click"), "channel")})
        >>> up, st, m1, m2 = StateUpdater(req), new_state("u1"), set(), set()
        >>> ch = {"channel": "a"}
        >>> up.apply(st, Event("e1", "u1", 1000, "page_view", "click", props=ch), m1)
        >>> up.apply(st, Event("e2", "u1", 2000, "page_view", "click", props=ch), m2)
        >>> m1, m2, st["lp"]
        ({'lp:stream:click.channel'}, set(), {'stream:click.channel': [2000, 'e2', 'a']})
        """
        ts, et = ev.ts, ev.type
        self.remember(state, ev.event_id)
        ft, lt, now = state["ft"], state["lt"], state["now"]
        # later than every event applied before (the usual, in-order case): no time or
        # record in the state is later, so latest ones are replaced and earliest ones kept
        # without reading them
        newest = lt is None or ts > lt
        if ft is None or ts < ft:
            state["ft"] = ts
        if newest:
            state["lt"] = lt = ts
        off = self.day_offset_ms
        day = (ts + off) // DAY_MS
        base_day = ((lt if lt > now else now) + off) // DAY_MS   # the next evaluation's day
        types = state["st"]
        stream = types.get(et)
        if stream is None and len(types) < MAX_TYPES:
            types[et] = stream = ev.stream
        tracked = stream is not None
        if not tracked:
            stream = ev.stream
        plan = self._plans.get((et, stream))
        if plan is None:
            plan = self._plan(et, stream)
        tret, sret, pidx, streaks, seqs, recent = plan
        if tracked:
            n, la = state["n"], state["l"]
            n[et] = n.get(et, 0) + 1
            if newest:
                f = state["f"]
                if et not in f:
                    f[et] = ts
                la[et] = ts
            else:
                f = state["f"]
                cur = f.get(et)
                if cur is None or ts < cur:
                    f[et] = ts
                cur = la.get(et)
                if cur is None or ts > cur:
                    la[et] = ts
            if day > base_day - tret:
                _count_day(state["d"], et, day)
        if sret is not None and day > base_day - sret:
            ds = state.get("ds")
            if ds is None:
                ds = state["ds"] = {}
            _count_day(ds, stream, day)
        props = ev.props
        if props and pidx:
            for name, value in props.items():
                specs = pidx.get(name)
                if specs and value is not None:
                    self._apply_props(state, ev, day, value, specs, base_day, moved, newest)
        if self._profile and stream == "profile" and props:
            self._apply_profile(state, ev)
        if streaks:
            self._apply_streaks(state, streaks, ts)
        if seqs:
            self._apply_seqs(state, seqs, ts)
        if recent:
            rt = state.setdefault("rt", {}).setdefault(et, [])
            insort(rt, ts)
            if len(rt) > RECENT_CAP:
                del rt[0]

    def read_props(self, etype: str, stream: str) -> tuple[str, ...]:
        """The props of an event of (``etype``, ``stream``) that :meth:`apply` reads into a
        state (prop aggregates the rules use, profile fields), in a fixed order.

        >>> from stream_app.state.requirements import PropSpec, Selector
        >>> req = Requirements(lasts={PropSpec(Selector.parse("click"), "channel")},
        ...                    profile={"region"})
        >>> up = StateUpdater(req)
        >>> up.read_props("page_view", "click"), up.read_props("registered", "profile")
        (('channel',), ('region',))
        """
        pidx = self._plan(etype, stream)[2]
        names = sorted(pidx)
        if self._profile and stream == "profile":
            names += [n for n in self._profile if n not in pidx]
        return tuple(names)

    def _plan(self, etype: str, stream: str) -> tuple:
        """What an event of (``etype``, ``stream``) updates, cached: the type's daily-count
        retention (:meth:`type_retention`), the stream's (None: not kept), prop name ->
        [(kind, spec key)] of the specs it matches, the streaks [(spec, is_a, is_b)] and pair
        sides [(spec, side)] it feeds, and whether its timestamps are kept for sub-day
        windows."""
        key = (etype, stream)
        out = self._plans.get(key)
        if out is None:
            pidx = {}
            for name, specs in self._props.items():
                mine = [(kind, spec.key) for kind, spec in specs
                        if spec.sel.matches(etype, stream)]
                if mine:
                    pidx[name] = mine
            streaks = [(sp, sp.a.matches(etype, stream), sp.b.matches(etype, stream))
                       for sp in self._streaks]
            out = (self.type_retention(etype, stream), self._stream_ret.get(stream), pidx,
                   [x for x in streaks if x[1] or x[2]],
                   [(sp, side) for sp in self._seqs
                    for side, sel in (("a", sp.a), ("b", sp.b)) if sel.matches(etype, stream)],
                   any(sel.matches(etype, stream) for sel in self._recent))
            self._plans[key] = out
        return out

    def _apply_props(self, state, ev, day, value, specs, base_day, moved,
                     newest=False) -> None:
        ts, eid = ev.ts, ev.event_id
        for kind, key in specs:
            if kind == "lp":
                lp = state.get("lp")
                if lp is None:
                    lp = state["lp"] = {}
                cur = lp.get(key)
                if newest or cur is None or (ts, eid) > (cur[0], cur[1]):
                    lp[key] = [ts, eid, value]
                    if moved is not None and (cur is None or (old := cur[2]) != value
                                              or type(old) is not type(value)):   # _differs
                        moved.add("lp:" + key)
            elif kind == "fp":
                fp = state.get("fp")
                if fp is None:
                    fp = state["fp"] = {}
                elif newest and key in fp:
                    continue      # an earlier record stands
                cur = fp.get(key)
                if cur is None or (ts, eid) < (cur[0], cur[1]):
                    fp[key] = [ts, eid, value]
                    if moved is not None and _differs(cur, value):
                        moved.add("fp:" + key)
            elif kind == "s":
                value = _number(value)
                if value is None:
                    continue
                sums = state.setdefault("S", {})
                sums[key] = buckets.total(sums.get(key, 0), value)
                ret = self._sum_ret.get(key, self.retention_days)
                if day > base_day - ret:
                    buckets.add(state.setdefault("s", {}).setdefault(key, []), day, value)
            elif kind == "mx":
                value = _number(value)
                if value is None:
                    continue
                mx = state.setdefault("mx", {})
                if key not in mx or value > mx[key]:
                    mx[key] = value
                    if moved is not None:
                        moved.add("mx:" + key)
            elif kind == "dv":
                if not isinstance(value, str | int | float) or isinstance(value, bool):
                    continue
                vals = state.setdefault("dv", {}).setdefault(key, [])
                v = str(value)
                if v not in vals and len(vals) < DISTINCT_CAP:
                    insort(vals, v)
                    if moved is not None:
                        moved.add("dv:" + key)
            elif kind == "lpa":     # "lp", read among alternatives: last(sel.a|b)
                lp = state.get("lp")
                if lp is None:
                    lp = state["lp"] = {}
                cur = lp.get(key)
                if newest or cur is None or (ts, eid) > (cur[0], cur[1]):
                    lp[key] = [ts, eid, value]
                    if moved is None:
                        continue
                    if cur is None or (old := cur[2]) != value or type(old) is not type(value):
                        moved.add("lp:" + key)
                        continue
                    t0 = cur[0]
                    for other in self._lp_others[key]:
                        r = lp.get(other)    # usually older than cur: one comparison
                        if r is not None and r[0] >= t0 and _overtook(
                                lp, (other,), cur, ts, eid, value, True):
                            moved.add("lp:" + key)
                            break
            elif kind == "fpa":     # "fp", read among alternatives: first(sel.a|b)
                fp = state.get("fp")
                if fp is None:
                    fp = state["fp"] = {}
                elif newest and key in fp:
                    continue
                cur = fp.get(key)
                if cur is None or (ts, eid) < (cur[0], cur[1]):
                    fp[key] = [ts, eid, value]
                    if moved is None:
                        continue
                    if _differs(cur, value):
                        moved.add("fp:" + key)
                        continue
                    t0 = cur[0]
                    for other in self._fp_others[key]:
                        r = fp.get(other)
                        if r is not None and r[0] <= t0 and _overtook(
                                fp, (other,), cur, ts, eid, value, False):
                            moved.add("fp:" + key)
                            break

    def _apply_profile(self, state, ev) -> None:
        pr = state.setdefault("pr", {})
        for name in self._profile:
            if name in ev.props:
                cur = pr.get(name)
                if cur is None or (ev.ts, ev.event_id) > (cur[0], cur[1]):
                    pr[name] = [ev.ts, ev.event_id, ev.props[name]]

    def _apply_streaks(self, state, streaks, ts) -> None:
        for spec, is_a, is_b in streaks:
            rec = state.setdefault("sk", {}).setdefault(spec.key, {"b": None, "a": []})
            if is_b and (rec["b"] is None or ts > rec["b"]):
                rec["b"] = ts
                rec["a"] = [t for t in rec["a"] if t > ts]
            if is_a and (rec["b"] is None or ts > rec["b"]):
                insort(rec["a"], ts)
                if len(rec["a"]) > PAIR_CAP:
                    del rec["a"][0]

    def _apply_seqs(self, state, seqs, ts) -> None:
        for spec, side in seqs:
            rec = state.setdefault("sq", {}).setdefault(spec.key, {"a": [], "b": []})
            insort(rec[side], ts)
            if len(rec[side]) > PAIR_CAP:
                del rec[side][0]

    # -- prune -------------------------------------------------------------------------
    def prune(self, state: dict[str, Any], now_ms: int) -> None:
        """Drop daily buckets older than the retention and sub-day timestamps out of use."""
        today = day_of(now_ms, self.day_offset_ms)
        # every retention is at least ``retention_days``: a list whose oldest bucket is after
        # ``floor`` keeps all its buckets (the usual case), whatever its own retention
        floor = today - self.retention_days
        st = state["st"]
        d = state["d"]
        rets = self._type_ret
        for et in list(d):
            b = d[et]
            if b and b[0][0] > floor:
                continue
            key = (et, st.get(et, ""))
            ret = rets.get(key)
            if ret is None:
                ret = self.type_retention(*key)
            if not b:
                del d[et]
            elif b[0][0] <= today - ret:   # an old bucket (buckets.prune's check, inline)
                buckets.prune(b, today - ret + 1)
                if not b:
                    del d[et]
        for name, rets in (("ds", self._stream_ret), ("s", self._sum_ret)):
            lists = state.get(name)
            if not lists:
                continue
            for key in list(lists):
                b = lists[key]
                if b and b[0][0] > floor:
                    continue
                keep = today - rets.get(key, self.retention_days) + 1
                if b and b[0][0] < keep:
                    buckets.prune(b, keep)
                if not b:
                    del lists[key]
        if "rt" in state:
            self.prune_recent(state, now_ms)

    def prune_recent(self, state: dict[str, Any], now_ms: int) -> None:
        """Drop sub-day timestamps older than the longest sub-day window."""
        cut = now_ms - self.req.recent_ms
        rt = state["rt"]
        for et, tss in rt.items():
            if tss and tss[0] <= cut:
                rt[et] = [t for t in tss if t > cut]
