"""``StateUpdater.apply`` against a reference copy of the code it replaced (session 10: the
type's retention read from the cached plan, dedup and newest-bucket additions inline, the
prop aggregates' latest / first records first; ``prune`` reads the cached retentions and
skips lists with nothing to drop): random
event sequences (hypothesis; late events, untracked types past a small type cap, props of
every aggregate kind, clock moves) go through both, and the states' orjson bytes (key order
included) and the moved prop aggregates must be equal after every event."""

from __future__ import annotations

from bisect import insort
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES
from stream_app.rules.loader import load_ruleset, ruleset_from_text
from stream_app.state import buckets, record
from stream_app.state.record import DAY_MS, RECENT_CAP, StateUpdater, new_state

DAY = 86_400_000
T0 = 1_714_528_800_000
EXTRA = """
version: "x.1"
tags:
  - {id: x_recent, family: x, zh: 近, en: Recent, kind: number,
     value: "count(page_view|course_view, 6h) + count(stream:click, 90m)"}
  - {id: x_sum, family: x, zh: 和, en: Sum, kind: number,
     value: "sum(order_paid.amount, 30d) + peak(order_paid.amount)"}
  - {id: x_vals, family: x, zh: 值, en: Values, kind: set, value: "distinct(study.percent)"}
  - {id: x_streak, family: x, zh: 连, en: Streak, kind: number,
     value: "streak(lesson_missed, reset: lesson_attended)"}
  - {id: x_seq, family: x, zh: 序, en: Seq, kind: bool,
     value: "seq(course_view, order_paid, within: 2d)"}
  - {id: x_days, family: x, zh: 天, en: Days, kind: number,
     value: "active_days(stream:study, 200d)"}
"""
STREAMS = {"page_view": "click", "course_view": "click", "ad_landing": "click",
           "lesson_attended": "study", "lesson_missed": "study", "order_paid": "order",
           "refund": "order", "registered": "profile", "profile_updated": "profile",
           "checkpoint": "label", "odd_a": "click", "odd_b": "study"}
PROPS = st.dictionaries(
    st.sampled_from(["channel", "campaign", "amount", "percent", "region", "goal", "page",
                     "utm_source", "referrer"]),
    st.one_of(st.sampled_from(["a", "b", "douyin", "bj", "12.5", "n/a"]), st.integers(-3, 50),
              st.floats(-1, 100, allow_nan=False), st.booleans(), st.none()),
    max_size=4)
RULESETS = [load_ruleset(DEFAULT_RULES), ruleset_from_text(EXTRA)]


def _ref_apply(up: StateUpdater, state: dict[str, Any], ev: Event,
               moved: set[str] | None = None) -> None:
    """``StateUpdater.apply`` as of 42c7498 (plan without the type's retention)."""
    ts, et = ev.ts, ev.type
    up.remember(state, ev.event_id)
    ft, lt = state["ft"], state["lt"]
    newest = lt is None or ts > lt
    state["ft"] = ts if ft is None or ts < ft else ft
    state["lt"] = lt = ts if newest else lt
    off = up.day_offset_ms
    day = (ts + off) // DAY_MS
    base_day = (max(lt, state["now"]) + off) // DAY_MS
    types = state["st"]
    stream = types.get(et)
    if stream is None and len(types) < record.MAX_TYPES:
        types[et] = stream = ev.stream
    if stream is not None:
        n, f, la = state["n"], state["f"], state["l"]
        n[et] = n.get(et, 0) + 1
        if newest:
            if et not in f:
                f[et] = ts
            la[et] = ts
        else:
            cur = f.get(et)
            if cur is None or ts < cur:
                f[et] = ts
            cur = la.get(et)
            if cur is None or ts > cur:
                la[et] = ts
        if day > base_day - up.type_retention(et, stream):
            buckets.add(state["d"].setdefault(et, []), day, 1)
    else:
        stream = ev.stream
    _, sret, pidx, streaks, seqs, recent = up._plan(et, stream)
    if sret is not None and day > base_day - sret:
        buckets.add(state.setdefault("ds", {}).setdefault(stream, []), day, 1)
    props = ev.props
    if props and pidx:
        for name, value in props.items():
            specs = pidx.get(name)
            if specs and value is not None:
                _ref_apply_props(up, state, ev, day, value, specs, base_day, moved, newest)
    if up._profile and stream == "profile" and props:
        up._apply_profile(state, ev)
    if streaks:
        up._apply_streaks(state, streaks, ts)
    if seqs:
        up._apply_seqs(state, seqs, ts)
    if recent:
        rt = state.setdefault("rt", {}).setdefault(et, [])
        insort(rt, ts)
        if len(rt) > RECENT_CAP:
            del rt[0]


#: how late an event comes: ms before the clock, or relative to the state's first / last
#: event time ("ft-1": just before the first; "lt": at the last); days around the
#: retentions (120 days by default, 365 for orders, 200 for the study stream's window)
LATE = [0, 0, 0, 1, DAY, 40 * DAY, 119 * DAY, 120 * DAY, 121 * DAY, 199 * DAY, 200 * DAY,
        364 * DAY, 365 * DAY, 366 * DAY, "ft-1", "ft", "lt"]


def _passed(groups, recs, key, cur, new, value, latest) -> bool:
    """Props read among alternatives (``fpa`` / ``lpa``, added after 42c7498): a record
    replaced by an equal value moved when, in a group of ``key``, another prop's record of
    another value lies between the old record and the event (both included)."""
    old = (cur[0], cur[1])
    lo, hi = (old, new) if latest else (new, old)
    for group in groups:
        if key not in {s.key for s in group}:
            continue
        for spec in group:
            r = recs.get(spec.key)
            if spec.key != key and r is not None and record._differs(r, value) and (
                    lo <= (r[0], r[1]) <= hi):
                return True
    return False


def _ref_apply_props(up, state, ev, day, value, specs, base_day, moved, newest) -> None:
    """``StateUpdater._apply_props`` as of 42c7498 (specs as (kind, key))."""
    ts, eid = ev.ts, ev.event_id
    for kind, key in specs:
        if kind == "s":
            value = record._number(value)
            if value is None:
                continue
            state.setdefault("S", {})[key] = state.get("S", {}).get(key, 0) + value
            ret = up._sum_ret.get(key, up.retention_days)
            if day > base_day - ret:
                buckets.add(state.setdefault("s", {}).setdefault(key, []), day, value)
        elif kind == "mx":
            value = record._number(value)
            if value is None:
                continue
            mx = state.setdefault("mx", {})
            if key not in mx or value > mx[key]:
                mx[key] = value
                if moved is not None:
                    moved.add("mx:" + key)
        elif kind in ("fp", "fpa"):
            fp = state.setdefault("fp", {})
            if newest and key in fp:
                continue
            cur = fp.get(key)
            if cur is None or (ts, eid) < (cur[0], cur[1]):
                fp[key] = [ts, eid, value]
                if moved is not None and (record._differs(cur, value) or kind == "fpa" and _passed(
                        up.req.first_alts, fp, key, cur, (ts, eid), value, False)):
                    moved.add("fp:" + key)
        elif kind in ("lp", "lpa"):
            lp = state.setdefault("lp", {})
            cur = lp.get(key)
            if newest or cur is None or (ts, eid) > (cur[0], cur[1]):
                lp[key] = [ts, eid, value]
                if moved is not None and (record._differs(cur, value) or kind == "lpa" and _passed(
                        up.req.last_alts, lp, key, cur, (ts, eid), value, True)):
                    moved.add("lp:" + key)
        elif kind == "dv":
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                continue
            vals = state.setdefault("dv", {}).setdefault(key, [])
            v = str(value)
            if v not in vals and len(vals) < record.DISTINCT_CAP:
                insort(vals, v)
                if moved is not None:
                    moved.add("dv:" + key)


def _ref_prune(up: StateUpdater, state: dict[str, Any], now_ms: int) -> None:
    """``StateUpdater.prune`` as of 42c7498."""
    today = record.day_of(now_ms, up.day_offset_ms)
    st_, d = state["st"], state["d"]
    for et in list(d):
        b = d[et]
        buckets.prune(b, today - up.type_retention(et, st_.get(et, "")) + 1)
        if not b:
            del d[et]
    ds = state.get("ds", {})
    for stream in list(ds):
        buckets.prune(ds[stream], today - up._stream_ret.get(stream, up.retention_days) + 1)
        if not ds[stream]:
            del ds[stream]
    s = state.get("s", {})
    for key in list(s):
        buckets.prune(s[key], today - up._sum_ret.get(key, up.retention_days) + 1)
        if not s[key]:
            del s[key]
    if "rt" in state:
        up.prune_recent(state, now_ms)


@st.composite
def steps(draw: Any) -> list[tuple[str, str, int, Any, dict[str, Any], int]]:
    """Events (id, type, clock, how late, props) with the clock each is evaluated at."""
    out, t = [], T0
    for i in range(draw(st.integers(1, 30))):
        t += draw(st.sampled_from([0, 1, 60_000, DAY // 3, DAY, 5 * DAY, 90 * DAY]))
        out.append((f"e{i % 9}", draw(st.sampled_from(sorted(STREAMS))), t,
                    draw(st.sampled_from(LATE)), draw(PROPS),
                    t + draw(st.sampled_from([0, 0, 1, DAY]))))
    return out


def _time(state: dict[str, Any], t: int, late: Any) -> int:
    if late == "ft-1":
        return t if state["ft"] is None else state["ft"] - 1
    if late in ("ft", "lt"):
        return t if state[late] is None else state[late]
    return t - late


@pytest.fixture(autouse=True)
def _small_type_cap(monkeypatch):
    monkeypatch.setattr(record, "MAX_TYPES", 5)   # untracked types show up


@settings(max_examples=500, deadline=None)
@given(seq=steps(), which=st.sampled_from([0, 1]), dedup=st.sampled_from([0, 4, 64]))
def test_apply_equals_reference(seq, which, dedup):
    rs = RULESETS[which]
    new_up = StateUpdater(rs.requirements, dedup_window=dedup)
    ref_up = StateUpdater(rs.requirements, dedup_window=dedup)
    a, b = new_state("u1"), new_state("u1")
    for eid, et, t, late, props, now in seq:
        ev = Event(eid, "u1", _time(a, t, late), et, STREAMS[et], props=props)
        ma: set[str] = set()
        mb: set[str] = set()
        new_up.apply(a, ev, ma)
        _ref_apply(ref_up, b, ev, mb)
        assert orjson.dumps(a) == orjson.dumps(b)
        assert ma == mb
        new_up.prune(a, now)
        _ref_prune(ref_up, b, now)
        assert orjson.dumps(a) == orjson.dumps(b)
        a["now"] = b["now"] = max(now, a["now"])
