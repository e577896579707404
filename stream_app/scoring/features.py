"""Features from stream state: a compact, JSON-able per-user state and its feature vector.

The state is a plain dict (stored by the agent under ``state["sc"]``). :func:`update` folds one
event into it; :func:`featurize` turns it into a feature dict *as of* a time ``now_ms`` (never
reading anything later than the events already folded in). Feature definitions are generic:
every event type gets window counts, a total, a rate per day since the user was first seen and
a recency; every numeric prop gets window sums, a total and a mean; every string prop of a
profile event (and every channel prop of any event) becomes a one-hot feature ``prop=value``.
Counts are log-scaled and times are rates or decays, so that a user's early and late
snapshots are comparable.

=================  =============================================================
feature            meaning
=================  =============================================================
``T|7d``           log1p(count of event type T in the last 7 days), also 1d / 30d
``T|n``            log1p(total count of T)
``T|rate``         count of T per day since first seen
``T|rec``          exp(-days since the last T / recency scale)
``#p|7d``          signed log1p(sum of numeric prop p in the last 7 days) ...
``#p|mean``        mean of p over the events that carried it
``M|since``        log1p(days since the first milestone event M), e.g. registered
``funnel|T``       1 when the user ever did funnel step T
``p=v``            1 for categorical prop p with value v (profile props, channel)
``age_days``       log1p(days since first seen); ``active_days``, ``recency``
``active_ratio``   active days per day since first seen
=================  =============================================================

Example:
    >>> from stream_app.events import Event
    >>> from stream_app.scoring.config import load_scoring_config
    >>> fc = load_scoring_config().features
    >>> st = new_state()
    >>> day = 86_400_000
    >>> update(st, Event("e1", "u1", 10 * day, "registered", "profile",
    ...                  props={"region": "Beijing", "age": 30}), fc)
    >>> update(st, Event("e2", "u1", 12 * day, "course_view", "click",
    ...                  props={"channel": "douyin"}), fc)
    >>> x = featurize(st, 12 * day + 3_600_000, fc)
    >>> x["course_view|n"], x["region=Beijing"], x["channel=douyin"]
    (0.693..., 1.0, 1.0)
    >>> round(x["registered|since"], 3)   # log1p(2.04 days)
    1.112
"""

from __future__ import annotations

import math
import zlib
from typing import Any

from stream_app.events import Event
from stream_app.scoring.config import FeatureConfig

DAY_MS = 86_400_000
#: bound of a numeric prop's value before it is summed (|v| above it counts as the bound):
#: far above any real count, minutes, score or amount in cents, and small enough that sums
#: and means of any realistic number of events stay finite (QA33 F1)
NUMERIC_BOUND = 1e9
_INF = math.inf
_log1p = math.log1p
_exp = math.exp

__all__ = ["DAY_MS", "NUMERIC_BOUND", "day_index", "featurize", "fold", "new_state", "update"]


def new_state() -> dict[str, Any]:
    """An empty per-user scoring state (JSON-able)."""
    return {"v": 1, "t0": None, "last": None, "b": [], "tot": {}, "lst": {}, "fs": {},
            "ad": 0, "ld": None, "cat": {}}


def day_index(ts_ms: int, fc: FeatureConfig) -> int:
    """Business day of ``ts_ms`` (days since epoch, shifted by the configured offset)."""
    return int((ts_ms + fc.day_offset_hours * 3_600_000) // DAY_MS)


def _slog(v: float) -> float:
    return _log1p(v) if v >= 0 else -_log1p(-v)


def _cat_value(prop: str, value: Any, fc: FeatureConfig) -> str:
    s = str(value)[: fc.max_value_chars]
    if prop in fc.hashed_props:
        return f"h{zlib.crc32(s.encode()) % fc.hash_buckets}"
    return s


def update(st: dict[str, Any], ev: Event, fc: FeatureConfig) -> None:
    """Fold one (non-label) event into the state ``st`` in place (an excluded type: no
    change)."""
    if ev.type not in fc.exclude_types:
        fold(st, ev, fc)


def fold(st: dict[str, Any], ev: Event, fc: FeatureConfig) -> None:
    """:func:`update` for an event whose type the caller knows is not excluded (the Scorer
    tests it first).

    >>> from stream_app.scoring.config import FeatureConfig
    >>> st = new_state()
    >>> fold(st, Event("e1", "u1", 5, "course_view", "click", props={"minutes": 3}),
    ...      FeatureConfig())
    >>> st["tot"], st["t0"], st["last"]
    ({'course_view': 1, '#minutes': 3, '~minutes': 1}, 5, 5)
    """
    etype = ev.type
    ts = ev.ts
    offset, first_types, excl, cat_streams, channel_props, hashed, max_chars = fc.fold_plan
    day = int((ts + offset) // DAY_MS)    # day_index, inlined
    t0 = st["t0"]
    if t0 is None or ts < t0:
        st["t0"] = ts
    last = st["last"]
    if last is None or ts > last:
        st["last"] = ts
    # daily bucket (buckets are kept sorted by day, the newest last)
    buckets: list = st["b"]
    if buckets and buckets[-1][0] == day:
        bucket = buckets[-1][1]
    else:
        bucket = None
        for b in buckets:
            if b[0] == day:
                bucket = b[1]
                break
        if bucket is None:
            bucket = {}
            buckets.append([day, bucket])
            if len(buckets) > 1 and buckets[-2][0] > day:
                buckets.sort(key=lambda b: b[0])
            horizon = max(day, buckets[-1][0]) - max(fc.windows_days + fc.numeric_windows_days)
            while buckets and buckets[0][0] <= horizon:
                buckets.pop(0)
            if st["ld"] is None or day != st["ld"]:
                st["ad"] += 1
                if st["ld"] is None or day > st["ld"]:
                    st["ld"] = day
    bucket[etype] = bucket.get(etype, 0) + 1
    tot = st["tot"]
    tot[etype] = tot.get(etype, 0) + 1
    lst = st["lst"]
    if ts >= lst.get(etype, 0):
        lst[etype] = ts
    if etype in first_types:     # a milestone or the registration type
        fs = st["fs"]
        if etype not in fs or ts < fs[etype]:
            fs[etype] = ts
    stream = ev.stream
    if stream == "study":
        st["study"] = max(ts, st.get("study") or 0)
    props = ev.props
    if not props:
        return
    is_cat_stream = stream in cat_streams
    cat = st["cat"]
    for k, v in props.items():
        kind = v.__class__
        # exact JSON types first (what parsed events carry), one class test each; any other
        # value (a subclass, a list, ...) takes the isinstance chain below
        if kind is str:
            # (a string is kept only from a categorical stream or as a channel prop: most are
            # not, and need no exclusion test)
            if (is_cat_stream or k in channel_props) and k not in excl:
                # a short value of a plain prop is its own category (_cat_value without the call)
                cat[k] = v if len(v) <= max_chars and k not in hashed else _cat_value(k, v, fc)
        elif v is None or k in excl:
            continue
        elif kind is int or kind is float:
            _add_numeric(bucket, tot, k, v)
        elif isinstance(v, bool):
            if is_cat_stream:
                cat[k] = "1" if v else "0"
        elif isinstance(v, int | float):
            _add_numeric(bucket, tot, k, v)
        elif isinstance(v, str) and (is_cat_stream or k in channel_props):
            cat[k] = _cat_value(k, v, fc)


def _add_numeric(bucket: dict[str, Any], tot: dict[str, Any], k: str, v: float) -> None:
    """Numeric prop ``k``: its sum in the day's bucket and in total, and its count.

    ``v`` is clamped to ``[-NUMERIC_BOUND, NUMERIC_BOUND]`` first and a NaN is not folded
    (QA33 F1: two props of 1e308, valid JSON, summed to inf, and one label of that user
    made the shared model's weights NaN). A sum that is null (an inf of a state written
    before the clamp, which JSON stores as null) starts again from 0.

    >>> st = new_state()
    >>> for v in (1e308, 1e308, float("nan"), -float("inf")):
    ...     _add_numeric({}, st["tot"], "minutes", v)
    >>> st["tot"]["#minutes"], st["tot"]["~minutes"]
    (1000000000.0, 3)
    """
    if not -NUMERIC_BOUND <= v <= NUMERIC_BOUND:
        if v != v:
            return       # NaN (not from JSON; a caller's float): not a number to sum
        v = NUMERIC_BOUND if v > 0 else -NUMERIC_BOUND
    key = "#" + k
    b = bucket.get(key, 0)
    bucket[key] = (b if b is not None else 0) + v
    t = tot.get(key, 0)
    tot[key] = (t if t is not None else 0) + v
    ckey = "~" + k
    tot[ckey] = tot.get(ckey, 0) + 1


class _Names:
    """Feature names of one :class:`FeatureConfig`, built once per key instead of per event
    (string concatenation and f-strings were a third of :func:`featurize`'s own time)."""

    MAX = 50_000   # names cached per kind; past this the cache starts over (unbounded props)

    def __init__(self, fc: FeatureConfig) -> None:
        self.wins = sorted(set(fc.windows_days) | set(fc.numeric_windows_days))
        self.do_windows = "windows" in fc.per_type or bool(fc.numeric_windows_days)
        self.ev_wins = frozenset(fc.windows_days if "windows" in fc.per_type else ())
        self.num_wins = frozenset(fc.numeric_windows_days)
        self.window: dict[str, tuple[str | None, ...]] = {}
        self.tails: dict[str, tuple[tuple[str, ...], ...]] = {}
        self.total: dict[str, tuple[str, ...]] = {}
        self.since: dict[str, str] = {}
        self.cat: dict[str, dict[str, str]] = {}     # prop -> value -> "prop=value"
        self.n_cat = 0
        self.funnel = tuple((s, "funnel|" + s) for s in fc.funnel)
        self.funnel_steps = frozenset(fc.funnel)
        # featurize's per-call settings, computed once with the same expressions: the day
        # boundary's offset, the recency scale, and (total, rate, recency) made per type
        self.day_offset = fc.day_offset_hours * 3_600_000
        self.settings = (fc.recency_scale_days * DAY_MS, "total" in fc.per_type,
                         "rate" in fc.per_type, "recency" in fc.per_type)
        # featurize's name lookups, bound once (the caches are cleared in place, never
        # replaced, so each bound ``get`` stays theirs)
        self.lookups = (self.window_tails, self.tails.get, self.window_names, self.window.get,
                        self.total_names, self.total.get, self.since_name, self.since.get,
                        self.cat_name, self.cat.get)

    def window_names(self, key: str) -> tuple[str | None, ...]:
        """Per window (ascending): the name of ``key``'s window feature, None if not made."""
        names = self.window.get(key)
        if names is None:
            if len(self.window) >= self.MAX:
                self.window.clear()
            emit = self.num_wins if key[0] == "#" else self.ev_wins
            names = self.window[key] = tuple(f"{key}|{w}d" if w in emit else None
                                             for w in self.wins)
        return names

    def window_tails(self, key: str) -> tuple[tuple[str, ...], ...]:
        """Per window index ``j``: the names of ``key``'s window features of windows ``j``
        and wider (what one bucket that falls in window ``j`` counts towards)."""
        tails = self.tails.get(key)
        if tails is None:
            if len(self.tails) >= self.MAX:
                self.tails.clear()
            names = self.window_names(key)
            tails = self.tails[key] = tuple(tuple(n for n in names[j:] if n is not None)
                                            for j in range(len(names)))
        return tails

    def total_names(self, key: str) -> tuple[str, ...]:
        """``()`` for a count key (``~p``); ``("#", n, mean, count key)`` for a numeric prop;
        ``("", n, rate, rec)`` for an event type."""
        names = self.total.get(key)
        if names is None:
            if len(self.total) >= self.MAX:
                self.total.clear()
            c = key[0]
            if c == "~":
                names = ()
            elif c == "#":
                names = ("#", key + "|n", key + "|mean", "~" + key[1:])
            else:
                names = ("", key + "|n", key + "|rate", key + "|rec")
            self.total[key] = names
        return names

    def since_name(self, m: str) -> str:
        name = self.since.get(m)
        if name is None:
            if len(self.since) >= self.MAX:
                self.since.clear()
            name = self.since[m] = m + "|since"
        return name

    def cat_name(self, k: str, v: str) -> str:
        by_value = self.cat.get(k)
        if by_value is None:
            by_value = self.cat[k] = {}
        name = by_value.get(v)
        if name is None:
            if self.n_cat >= self.MAX:
                self.cat.clear()
                self.n_cat = 0
                by_value = self.cat[k] = {}
            name = by_value[v] = k + "=" + v
            self.n_cat += 1
        return name


_NAMES: dict[int, tuple[FeatureConfig, _Names]] = {}
_EMPTY: dict[str, str] = {}


def _names(fc: FeatureConfig) -> _Names:
    hit = _NAMES.get(id(fc))
    if hit is None or hit[0] is not fc:
        if len(_NAMES) > 64:
            _NAMES.clear()
        hit = _NAMES[id(fc)] = (fc, _Names(fc))
    return hit[1]


def featurize(st: dict[str, Any], now_ms: int, fc: FeatureConfig) -> dict[str, float]:
    """The feature vector of state ``st`` as of ``now_ms`` (pure: ``st`` is not changed)."""
    x: dict[str, float] = {}
    t0 = st["t0"]
    if t0 is None:
        return x
    nm = _names(fc)
    (window_tails, wt_get, window_names, wn_get, total_names, tn_get, since_name, sn_get,
     cat_name, cn_get) = nm.lookups
    today = int((now_ms + nm.day_offset) // DAY_MS)   # day_index, inlined
    age = (now_ms - t0) / DAY_MS
    if not age > 0.0:     # max(0.0, age) without the call (as max: 0.0 for NaN or -0.0 too)
        age = 0.0
    log1p = _log1p
    # window sums from the daily buckets: each bucket adds to the smallest window holding
    # it, then sums accumulate outwards (one dict update per bucket and key)
    if nm.do_windows:
        wins = nm.wins
        nw = len(wins)
        widest = wins[-1]
        hits: list[tuple[int, dict[str, Any]]] = []
        for bday, bucket in st["b"]:
            a = today - bday
            if a < 0 or a >= widest:
                continue
            j = 0
            while a >= wins[j]:
                j += 1
            hits.append((j, bucket))
        if len(hits) == 1:
            # one day of activity in the windows (most users): every window from the
            # bucket's on has the same sum, so one value per key
            j, bucket = hits[0]
            for key, val in bucket.items():
                if key[0] == "#":
                    # a numeric prop's sum: none when not finite (or null: an inf of a state
                    # written before NUMERIC_BOUND, through JSON) (QA33 F1)
                    if val is None or not -_INF < val < _INF:
                        continue
                    scale = _slog
                else:
                    scale = log1p
                total = 0.0 + val
                if total:
                    names = (wt_get(key) or window_tails(key))[j]
                    if names:
                        v = scale(total)
                        for name in names:
                            x[name] = v
        else:
            acc: dict[str, list[float]] = {}
            for j, bucket in hits:
                for key, val in bucket.items():
                    slot = acc.get(key)
                    if slot is None:
                        slot = acc[key] = [0.0] * nw
                    if val is not None:      # (null: see the one-day case)
                        slot[j] += val
            for key, slot in acc.items():
                names = wn_get(key) or window_names(key)
                numeric = key[0] == "#"
                total = 0.0
                for j in range(nw):
                    total += slot[j]
                    if total:
                        name = names[j]
                        if name is not None:
                            if numeric:
                                if -_INF < total < _INF:     # (QA33 F1: no inf, no NaN)
                                    x[name] = _slog(total)
                            else:
                                x[name] = log1p(total)
    tot = st["tot"]
    lst = st["lst"]
    scale, do_total, do_rate, do_rec = nm.settings
    inv_age = 1.0 / (age + 1.0)
    exp = _exp
    for key, val in tot.items():
        names = tn_get(key)
        if names is None:
            names = total_names(key)
        if not names:
            continue
        numeric, n_name, third, fourth = names
        if numeric:      # third: the mean's name, fourth: the count's key
            if val is None or not -_INF < val < _INF:
                continue     # no feature of a non-finite (or null) sum (QA33 F1)
            x[n_name] = _slog(val)
            n = tot.get(fourth)
            if n:
                x[third] = val / n
            continue
        if do_total:
            x[n_name] = log1p(val)
        if do_rate:      # third: the rate's name, fourth: the recency's
            x[third] = val * inv_age
        if do_rec:
            last = lst.get(key)
            if last is not None:
                since = now_ms - last
                x[fourth] = exp(-(since if since > 0 else 0) / scale)    # max(0, since)
    for m, first in st["fs"].items():
        days = (now_ms - first) / DAY_MS
        x[sn_get(m) or since_name(m)] = log1p(days if days > 0.0 else 0.0)   # max(0.0, days)
    if not nm.funnel_steps.isdisjoint(tot):     # (one C call for users on no funnel step)
        for step, name in nm.funnel:
            if step in tot:
                x[name] = 1.0
    for k, v in st["cat"].items():
        x[(cn_get(k) or _EMPTY).get(v) or cat_name(k, v)] = 1.0
    x["age_days"] = log1p(age)
    x["active_days"] = log1p(st["ad"])
    x["active_ratio"] = st["ad"] * inv_age
    since = now_ms - st["last"]
    x["recency"] = exp(-(since if since > 0 else 0) / scale)
    return x
