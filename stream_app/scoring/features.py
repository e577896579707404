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
_log1p = math.log1p
_exp = math.exp

__all__ = ["DAY_MS", "day_index", "featurize", "new_state", "update"]


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
    """Fold one (non-label) event into the state ``st`` in place."""
    etype = ev.type
    ts = ev.ts
    if etype in fc.exclude_types:
        return
    day = day_index(ts, fc)
    if st["t0"] is None or ts < st["t0"]:
        st["t0"] = ts
    if st["last"] is None or ts > st["last"]:
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
    if etype in fc.milestones or etype == fc.registration_type:
        fs = st["fs"]
        if etype not in fs or ts < fs[etype]:
            fs[etype] = ts
    if ev.stream == "study":
        st["study"] = max(ts, st.get("study") or 0)
    props = ev.props
    if not props:
        return
    excl = fc.exclude_props
    is_cat_stream = ev.stream in fc.categorical_streams
    for k, v in props.items():
        if k in excl or v is None:
            continue
        if isinstance(v, bool):
            if is_cat_stream:
                st["cat"][k] = "1" if v else "0"
        elif isinstance(v, int | float):
            key = "#" + k
            bucket[key] = bucket.get(key, 0) + v
            tot[key] = tot.get(key, 0) + v
            ckey = "~" + k
            tot[ckey] = tot.get(ckey, 0) + 1
        elif isinstance(v, str) and (is_cat_stream or k in fc.channel_props):
            st["cat"][k] = _cat_value(k, v, fc)


_WINDOWS: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}


def _windows(fc: FeatureConfig) -> list[int]:
    key = (fc.windows_days, fc.numeric_windows_days)
    w = _WINDOWS.get(key)
    if w is None:
        w = _WINDOWS[key] = sorted(set(fc.windows_days) | set(fc.numeric_windows_days))
    return w


def featurize(st: dict[str, Any], now_ms: int, fc: FeatureConfig) -> dict[str, float]:
    """The feature vector of state ``st`` as of ``now_ms`` (pure: ``st`` is not changed)."""
    x: dict[str, float] = {}
    t0 = st["t0"]
    if t0 is None:
        return x
    today = day_index(now_ms, fc)
    age = max(0.0, (now_ms - t0) / DAY_MS)
    per = fc.per_type
    # window sums from the daily buckets: each bucket adds to the smallest window holding
    # it, then sums accumulate outwards (one dict update per bucket and key)
    if "windows" in per or fc.numeric_windows_days:
        wins = _windows(fc)
        nw = len(wins)
        acc: dict[str, list[float]] = {}
        for bday, bucket in st["b"]:
            a = today - bday
            if a < 0 or a >= wins[-1]:
                continue
            j = 0
            while a >= wins[j]:
                j += 1
            for key, val in bucket.items():
                slot = acc.get(key)
                if slot is None:
                    slot = acc[key] = [0.0] * nw
                slot[j] += val
        ev_wins = fc.windows_days if "windows" in per else ()
        num_wins = fc.numeric_windows_days
        for key, slot in acc.items():
            numeric = key[0] == "#"
            total = 0.0
            for j, w in enumerate(wins):
                total += slot[j]
                if total and w in (num_wins if numeric else ev_wins):
                    x[f"{key}|{w}d"] = _slog(total) if numeric else _log1p(total)
    tot = st["tot"]
    lst = st["lst"]
    scale = fc.recency_scale_days * DAY_MS
    do_total = "total" in per
    do_rate = "rate" in per
    do_rec = "recency" in per
    inv_age = 1.0 / (age + 1.0)
    for key, val in tot.items():
        c = key[0]
        if c == "~":
            continue
        if c == "#":
            x[key + "|n"] = _slog(val)
            n = tot.get("~" + key[1:])
            if n:
                x[key + "|mean"] = val / n
            continue
        if do_total:
            x[key + "|n"] = _log1p(val)
        if do_rate:
            x[key + "|rate"] = val * inv_age
        if do_rec:
            last = lst.get(key)
            if last is not None:
                x[key + "|rec"] = _exp(-max(0, now_ms - last) / scale)
    for m, first in st["fs"].items():
        x[m + "|since"] = _log1p(max(0.0, (now_ms - first) / DAY_MS))
    for step in fc.funnel:
        if step in tot:
            x["funnel|" + step] = 1.0
    for k, v in st["cat"].items():
        x[k + "=" + v] = 1.0
    x["age_days"] = _log1p(age)
    x["active_days"] = _log1p(st["ad"])
    x["active_ratio"] = st["ad"] * inv_age
    x["recency"] = _exp(-max(0, now_ms - st["last"]) / scale)
    return x
