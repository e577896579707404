"""Feature names to plain words (zh/en) for alert reasons.

Example:
    >>> w = Words({"course_view": {"zh": "查看课程详情", "en": "course detail views"}})
    >>> w.feature("course_view|7d", 1.386)
    {'zh': '近7天查看课程详情3次', 'en': '3 course detail views in the last 7 days'}
    >>> w.feature("channel=douyin", 1.0)["en"]
    'channel is douyin'
    >>> w.event("mystery_event")
    {'zh': 'mystery_event', 'en': 'mystery_event'}
    >>> w.unlabelled("mystery_event|7d"), w.unlabelled("course_view|7d")
    (['mystery_event'], [])
"""

from __future__ import annotations

import math
from typing import Any

from stream_app.text import plural

__all__ = ["POINTS_PREFIX", "Words", "counted"]


def counted(n: int, label: str, one: str | None = None) -> str:
    """A count of events named by a plural ``label`` ("course detail views"), in English
    that reads right for one too: ``one`` is the label's singular (alerts.yaml ``one:``).

    >>> counted(3, "cart adds", "cart add"), counted(1, "cart adds", "cart add")
    ('3 cart adds', '1 cart add')
    >>> counted(1, "homework submitted")          # no singular given
    'homework submitted: 1'
    """
    if n != 1:
        return f"{n:,} {label}"
    return f"1 {one}" if one else f"{label}: 1"

#: the name prefix of a target's rule-points feature (``pts|convert``: scoring.scorer)
POINTS_PREFIX = "pts|"


class Words:
    """Labels of event types and props, and templates per feature kind."""

    def __init__(self, labels: dict[str, dict[str, str]], recency_scale_days: float = 7.0) -> None:
        self.labels = labels
        self.scale = recency_scale_days

    def label(self, name: str, lang: str) -> str:
        return (self.labels.get(name) or {}).get(lang, name)

    def event(self, etype: str) -> dict[str, str]:
        return {"zh": self.label(etype, "zh"), "en": self.label(etype, "en")}

    def action(self, etype: str) -> dict[str, str]:
        """Words for one action of type ``etype`` (English singular when alerts.yaml gives
        one, ``one:``), e.g. an alert's recent actions.

        >>> w = Words({"cart_add": {"zh": "加入购物车", "en": "cart adds", "one": "cart add"}})
        >>> w.action("cart_add"), w.action("quiz")
        ({'zh': '加入购物车', 'en': 'cart add'}, {'zh': 'quiz', 'en': 'quiz'})
        """
        return {"zh": self.label(etype, "zh"), "en": self.label(etype, "one")
                if "one" in self.labels.get(etype, ()) else self.label(etype, "en")}

    def count(self, n: int, key: str) -> str:
        """``n`` actions of ``key`` in English (:func:`counted` with its singular)."""
        return counted(n, self.label(key, "en"), (self.labels.get(key) or {}).get("one"))

    def feature(self, feat: str, value: float) -> dict[str, str]:
        """Words for feature ``feat`` holding ``value`` (as made by scoring.features)."""
        if "=" in feat:
            if feat in self.labels:     # a value with its own words (goal=career_switch)
                return self.event(feat)
            prop, val = feat.split("=", 1)
            return {"zh": f"{self.label(prop, 'zh')}为{val}",
                    "en": f"{self.label(prop, 'en')} is {val}"}
        if feat.startswith("funnel|"):
            t = feat[7:]
            return {"zh": f"已有{self.label(t, 'zh')}", "en": f"has {self.label(t, 'en')}"}
        if "|" not in feat:
            return self._plain(feat, value)
        if feat.startswith(POINTS_PREFIX):
            # a target's rule points (the scorer's ``pts|<target>``, log-scaled): its label
            # is the whole name, as the points of two targets mean different things
            n = _unlog(value)
            return {"zh": f"{self.label(feat, 'zh')}{n}", "en": f"{self.label(feat, 'en')} {n}"}
        name, kind = feat.rsplit("|", 1)
        numeric = name.startswith("#")
        key = name[1:] if numeric else name
        zh, en = self.label(key, "zh"), self.label(key, "en")
        if kind.endswith("d") and kind[:-1].isdigit():
            n = _unlog(value)
            d = kind[:-1]
            if numeric:
                return {"zh": f"近{d}天{zh}合计{n}", "en": f"{en} {n} in the last {d} days"}
            when_zh = "今天" if d == "1" else f"近{d}天"
            when_en = "today" if d == "1" else f"in the last {d} days"
            return {"zh": f"{when_zh}{zh}{n}次", "en": f"{self.count(n, key)} {when_en}"}
        if kind == "n":
            n = _unlog(value)
            if numeric:
                return {"zh": f"{zh}累计{n}", "en": f"{en} {n} in total"}
            return {"zh": f"累计{zh}{n}次", "en": f"{self.count(n, key)} in total"}
        if kind == "mean":
            return {"zh": f"平均{zh}{value:.1f}", "en": f"average {en} {value:.1f}"}
        if kind == "rate":
            return {"zh": f"平均每天{zh}{value:.2f}次", "en": f"{value:.2f} {en} a day"}
        if kind == "rec":
            days = max(0.0, -math.log(value) * self.scale) if value > 0 else 99.0
            if days < 0.5:
                return {"zh": f"今天有{zh}", "en": f"{en} today"}
            return {"zh": f"{days:.0f}天前{zh}", "en": f"{en} {plural(round(days), 'day')} ago"}
        if kind == "since":
            days = math.expm1(value)
            return {"zh": f"{zh}已{days:.0f}天", "en": f"{plural(round(days), 'day')} since {en}"}
        return {"zh": f"{zh}({kind})", "en": f"{en} ({kind})"}

    def direction(self, feat: str, above: bool | None) -> dict[str, str]:
        """Whether ``feat`` is above or below the population's average, as a suffix for its
        words (a model's reason): "1 lesson attended in the last 7 days (below average)"
        is why an at-risk score rose, where the bare count reads as the opposite. Empty for
        an unknown direction and for features that are only present or not (one-hot,
        funnel steps, rule points).

        >>> w = Words({})
        >>> w.direction("lesson_attended|7d", False)["en"], w.direction("recency", True)["en"]
        (' (below average)', ' (more recent than average)')
        >>> w.direction("goal=certificate", True), w.direction("course_view|7d", None)
        ({'zh': '', 'en': ''}, {'zh': '', 'en': ''})
        """
        if above is None or "=" in feat or feat.startswith(("funnel|", POINTS_PREFIX)):
            return {"zh": "", "en": ""}
        kind = feat.rsplit("|", 1)[1] if "|" in feat else feat
        if kind in ("rec", "recency"):
            return ({"zh": "(比平均更近)", "en": " (more recent than average)"} if above
                    else {"zh": "(比平均更久)", "en": " (less recent than average)"})
        if kind == "since":
            return ({"zh": "(比平均更久)", "en": " (longer than average)"} if above
                    else {"zh": "(比平均更短)", "en": " (shorter than average)"})
        return ({"zh": "(高于平均)", "en": " (above average)"} if above
                else {"zh": "(低于平均)", "en": " (below average)"})

    def unlabelled(self, feat: str) -> list[str]:
        """The names :meth:`feature` would show raw for ``feat``: labels it looks up and does
        not find, and a feature kind it has no template for (shown as ``name (kind)``).
        Empty when every word of the feature is plain.

        >>> w = Words({"channel": {"zh": "渠道", "en": "channel"},
        ...            "pts|convert": {"zh": "近期意向行为加权分", "en": "weighted actions"}})
        >>> w.unlabelled("channel=douyin"), w.unlabelled("pts|convert"), w.unlabelled("pts|x")
        ([], [], ['pts|x'])
        >>> w.unlabelled("channel|weird")     # a kind without a template
        ['weird']
        """
        if "=" in feat:
            key = feat.split("=", 1)[0]
        elif feat.startswith("funnel|"):
            key = feat[7:]
        elif "|" not in feat or feat.startswith(POINTS_PREFIX):
            key = feat
        else:
            name, kind = feat.rsplit("|", 1)
            key = name[1:] if name.startswith("#") else name
            if not ((kind.endswith("d") and kind[:-1].isdigit())
                    or kind in ("n", "mean", "rate", "rec", "since")):
                return [kind] if key in self.labels else [key, kind]
        return [] if key in self.labels else [key]

    def _plain(self, feat: str, value: float) -> dict[str, str]:
        zh, en = self.label(feat, "zh"), self.label(feat, "en")
        if feat in ("age_days", "active_days"):
            n = _unlog(value)
            return {"zh": f"{zh}{n}", "en": f"{n} {en}"}
        if feat == "active_ratio":
            return {"zh": f"{zh}{value:.0%}", "en": f"{en} {value:.0%}"}
        if feat == "recency":
            days = max(0.0, -math.log(value) * self.scale) if value > 0 else 99.0
            return {"zh": f"{days:.0f}天前活跃", "en": f"active {days:.0f} days ago"}
        return {"zh": f"{zh}={value:.2f}", "en": f"{en}={value:.2f}"}


def _unlog(v: float) -> Any:
    n = math.expm1(abs(v))
    n = round(n) if abs(n - round(n)) < 0.05 else round(n, 1)
    return -n if v < 0 else n
