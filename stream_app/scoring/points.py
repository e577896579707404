"""The rule-points score (lead score / risk points): the fallback while a model is gated.

Points per event type with exponential decay (``half_life_days``); for at-risk, points for
every day without study activity after ``inactive_after_days``. The probability-like score is
``1 - exp(-points / scale)`` and the layer comes from the points thresholds.

Example:
    >>> from stream_app.scoring.config import RulesConfig
    >>> rc = RulesConfig(points={"course_view": 1, "trial_booked": 3}, half_life_days=7, scale=10)
    >>> rp = {}
    >>> add_points(rp, "convert", "trial_booked", 0, rc)
    >>> add_points(rp, "convert", "course_view", 7 * 86_400_000, rc)   # one half-life later
    >>> points_at(rp, "convert", 7 * 86_400_000, rc, None)
    2.5
    >>> round(points_score(2.5, rc), 3)
    0.221
"""

from __future__ import annotations

import math
from typing import Any

from stream_app.scoring.config import RulesConfig

DAY_MS = 86_400_000
_exp = math.exp

__all__ = ["RulePoints", "add_points", "points_at", "points_score", "published", "round_fixed",
           "round_scores", "top_point_events"]


def round_fixed(v: float, scale: float, digits: int) -> float:
    """``round(v, digits)`` for ``scale == 10.0 ** digits`` (digits 0-9), bit for bit, at
    about half the cost: ``round(v, digits)`` formats ``v`` as decimal digits and parses them
    back (~280 ns); this rounds ``v * scale`` to an integer ``n`` and divides it by ``scale``.

    Why it is the same: ``round(v, digits)`` is the double nearest to ``m / scale``, ``m`` the
    integer nearest to the exact product ``v * 10**digits`` (ties to even). ``v * scale``
    is that product within half an ulp, so its nearest integer ``n`` is ``m`` unless the
    product sits near a half (then: ``round`` itself); ``n / scale`` is one correctly rounded
    division of exact numbers (``|n| < 2**53``), i.e. the double nearest to ``n / scale``.
    A zero keeps the sign of ``v`` as ``round`` does; anything but a float (an int stays an
    int) goes to ``round``.

    >>> [round_fixed(v, 1e6, 6) == round(v, 6) for v in (2.6406714, 0.2320775, 1e-7, 12.5)]
    [True, True, True, True]
    >>> round_fixed(-1e-9, 1e6, 6), round_fixed(0.0005, 1e3, 3), round(0.0005, 3)
    (-0.0, 0.001, 0.001)
    >>> round_fixed(3, 1e3, 3)
    3
    """
    # |v| < 1e6 (NaN and inf fail it): the product's ulp is far below the margin of a half
    if v.__class__ is not float or not -1e6 < v < 1e6:
        return round(v, digits)
    y = v * scale
    n = round(y)
    if -0.499 < y - n < 0.499:
        return n / scale if n else 0.0 * v
    return round(v, digits)


def published(v: float) -> float:
    """One score at the published resolution (2 places), the number the rules read as
    ``score.X`` (:func:`round_scores`) and the alerts' reasons show.

    >>> published(0.5965), published(0.23456)
    (0.6, 0.23)
    """
    return round_fixed(v, 1e2, 2)


def round_scores(scores: dict[str, float]) -> dict[str, float]:
    """Scores at the published resolution (``round(v, 2)`` each, bit for bit), as the agent
    publishes them. A float zero (the usual score of a target without points) is its own
    rounding, sign included, so it skips the call.

    >>> round_scores({"convert": 0.23456, "at_risk": 0.0, "x": -0.0, "n": 1})
    {'convert': 0.23, 'at_risk': 0.0, 'x': -0.0, 'n': 1}
    """
    out = {}
    for t, v in scores.items():
        out[t] = published(v) if v or v.__class__ is not float else v
    return out


def _decay(points: float, from_ts: int, to_ts: int, rc: RulesConfig) -> float:
    if to_ts <= from_ts or not points:
        return points
    return points * 0.5 ** ((to_ts - from_ts) / (rc.half_life_days * DAY_MS))


#: a by-type scale factor above this is folded into the values (:func:`add_points`)
_REBASE = 1e6


def add_points(rp: dict[str, Any], target: str, etype: str, ts: int, rc: RulesConfig) -> None:
    """Add the points of one event of type ``etype`` at ``ts`` to ``rp[target]`` in place.

    ``rp[target]`` is ``[points, newest ts, by type, scale]``: the decayed points as of the
    newest event, and per event type its points decayed alike, kept times ``scale`` (the
    growth ``2 ** (days / half-life)`` since the first event) so that an event adds to its
    own type only, with no decay of the others: :func:`top_point_events` divides it out.

    >>> rc = RulesConfig(points={"cart_add": 4, "course_view": 1}, half_life_days=14)
    >>> rp = {}
    >>> add_points(rp, "convert", "cart_add", 0, rc)
    >>> add_points(rp, "convert", "course_view", 42 * DAY_MS, rc)   # 3 half-lives later
    >>> rp["convert"][0], top_point_events(rp, "convert")    # not the cart's lifetime 4
    (1.5, [('course_view', 1.0), ('cart_add', 0.5)])
    """
    pts = rc.points.get(etype)
    if pts is None:
        return
    cur = rp.get(target)
    if cur is None:
        rp[target] = [pts, ts, {etype: pts}, 1.0]
        return
    # a state written before the by-type points decayed holds lifetime totals and no
    # scale: they count as of its newest event
    g = cur[3] if len(cur) > 3 else 1.0
    if ts >= cur[1]:
        if ts > cur[1]:
            d = 0.5 ** ((ts - cur[1]) / (rc.half_life_days * DAY_MS))
            value = (cur[0] * d if cur[0] else cur[0]) + pts      # (_decay)
            g /= d
            add = pts * g
        else:
            value = cur[0] + pts
            add = pts * g
    else:   # an older event (another topic's record consumed later): decay it to the newest
        older = _decay(pts, ts, cur[1], rc)
        value = cur[0] + older
        add = older * g
    by = cur[2]
    by[etype] = round_fixed(by.get(etype, 0) + add, 1e3, 3)
    if g > _REBASE:     # (rare: months of activity) back to a scale of 1
        for t, v in by.items():
            by[t] = round_fixed(v / g, 1e3, 3)
        g = 1.0
    # the same list, updated in place (no new list per event)
    if ts > cur[1]:
        cur[1] = ts
    cur[0] = value
    if len(cur) > 3:
        cur[3] = g
    else:
        cur.append(g)


def points_at(rp: dict[str, Any], target: str, now_ms: int, rc: RulesConfig,
              last_study_ts: int | None) -> float:
    """The decayed points of ``target`` at ``now_ms`` (plus inactivity points, if configured)."""
    cur = rp.get(target)
    value = _decay(cur[0], cur[1], now_ms, rc) if cur else 0.0
    if rc.inactive_points_per_day and last_study_ts is not None:
        idle = (now_ms - last_study_ts) / DAY_MS - rc.inactive_after_days
        if idle > 0:
            value += idle * rc.inactive_points_per_day
    return round(value, 6)


def points_score(points: float, rc: RulesConfig) -> float:
    """Probability-like score in [0, 1) of a points total."""
    return 1.0 - math.exp(-max(points, 0.0) / rc.scale)


class RulePoints:
    """One target's rule-points score, with its settings read once (the per-event path).

    :meth:`points` gives what :func:`points_at` gives, and :meth:`score_layer` what
    :func:`points_at`, :func:`points_score` (rounded to 6 places) and
    :meth:`TargetConfig.rules_layer` give, with the same arithmetic, without their per-call
    attribute reads and calls.

    Example:
        >>> rc = RulesConfig(points={"course_view": 1}, half_life_days=7, scale=10,
        ...                  inactive_points_per_day=0.5, inactive_after_days=7)
        >>> rp = {"convert": [4.0, 0, {"course_view": 4.0}]}
        >>> now = 9 * DAY_MS
        >>> RulePoints("convert", rc).score_layer(rp, now, 0)
        (2.640671, 0.232078, 'low')
        >>> p = points_at(rp, "convert", now, rc, 0)
        >>> p, round(points_score(p, rc), 6)
        (2.640671, 0.232078)
    """

    __slots__ = ("after", "half_ms", "high", "medium", "per_day", "scale", "target", "zero")

    def __init__(self, target: str, rc: RulesConfig) -> None:
        self.target = target
        self.half_ms = rc.half_life_days * DAY_MS
        self.per_day = rc.inactive_points_per_day
        self.after = rc.inactive_after_days
        self.scale = rc.scale
        self.high = rc.layers["high"]
        self.medium = rc.layers["medium"]
        # the result without any points (most users, for most targets), computed once
        self.zero: tuple[float, float, str] | None = None
        if self.scale:
            self.zero = self.score_layer({}, 0, None)

    def points(self, rp: dict[str, Any], now_ms: int, last_study_ts: int | None) -> float:
        """:func:`points_at`: the decayed points at ``now_ms`` (plus inactivity points)."""
        return self._points_of(rp.get(self.target), now_ms, last_study_ts)

    def _points_of(self, cur: list | None, now_ms: int, last_study_ts: int | None) -> float:
        """:meth:`points` of the target's entry ``cur`` in the rule points (None: none)."""
        if cur:
            value = cur[0]
            from_ts = cur[1]
            if now_ms > from_ts and value:     # _decay
                value = value * 0.5 ** ((now_ms - from_ts) / self.half_ms)
        else:
            value = 0.0
        if self.per_day and last_study_ts is not None:
            idle = (now_ms - last_study_ts) / DAY_MS - self.after
            if idle > 0:
                return round_fixed(value + idle * self.per_day, 1e6, 6)
        return round_fixed(value, 1e6, 6) if value else value    # (round keeps a zero as it is)

    def score_layer(self, rp: dict[str, Any], now_ms: int,
                    last_study_ts: int | None) -> tuple[float, float, str]:
        """``(points, score, layer)`` of the target at ``now_ms``."""
        cur = rp.get(self.target)
        if self.zero is not None and not cur and (last_study_ts is None or not self.per_day):
            return self.zero     # no points and no inactivity points (most users, most events)
        pts = self._points_of(cur, now_ms, last_study_ts)   # the target's points read once
        if not pts and self.zero is not None:
            return pts, self.zero[1], self.zero[2]    # (a zero's score is 0.0, whatever its sign)
        # max(pts, 0.0) without the call (as max: pts itself unless below zero, NaN too)
        score = round_fixed(1.0 - _exp(-(0.0 if pts < 0.0 else pts) / self.scale), 1e6, 6)
        if pts >= self.high:
            return pts, score, "high"
        return pts, score, "medium" if pts >= self.medium else "low"


def top_point_events(rp: dict[str, Any], target: str, k: int = 3,
                     now_ms: int | None = None, half_life_days: float | None = None,
                     ) -> list[tuple[str, float]]:
    """Event types that bring the most points to ``target`` now, largest first: their
    points decayed like the score's, as of the newest event, and further to ``now_ms``
    given ``half_life_days``; rounded to 2 places (none below 0.01). A state written
    before the by-type points decayed gives its lifetime totals.

    >>> rp = {"convert": [6.0, 0, {"cart_add": 8.0, "course_view": 4.0}, 2.0]}
    >>> top_point_events(rp, "convert")
    [('cart_add', 4.0), ('course_view', 2.0)]
    >>> top_point_events(rp, "convert", 1, now_ms=14 * DAY_MS, half_life_days=14)
    [('cart_add', 2.0)]
    """
    cur = rp.get(target)
    if not cur:
        return []
    f = 1.0 / cur[3] if len(cur) > 3 else 1.0
    if now_ms is not None and half_life_days and now_ms > cur[1]:
        f *= 0.5 ** ((now_ms - cur[1]) / (half_life_days * DAY_MS))
    items = [(t, round(float(p) * f, 2)) for t, p in cur[2].items() if p > 0]
    items = [it for it in items if it[1] > 0]
    items.sort(key=lambda t: -t[1])
    return items[:k]
