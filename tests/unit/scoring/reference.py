"""The feature builder as it was before the per-event speed-ups (issue #7), kept verbatim as
the reference the optimised :func:`stream_app.scoring.features.featurize` must equal."""

from __future__ import annotations

import math
from typing import Any

from stream_app.scoring.config import FeatureConfig
from stream_app.scoring.features import DAY_MS, _slog, day_index

_log1p = math.log1p
_exp = math.exp


_WINDOWS: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}


def _windows(fc: FeatureConfig) -> list[int]:
    key = (fc.windows_days, fc.numeric_windows_days)
    w = _WINDOWS.get(key)
    if w is None:
        w = _WINDOWS[key] = sorted(set(fc.windows_days) | set(fc.numeric_windows_days))
    return w


def featurize_reference(st: dict[str, Any], now_ms: int, fc: FeatureConfig) -> dict[str, float]:
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
