"""Which of a rule tag's conditions hold, in plain words, for an alert's reasons.

The at-risk alert fires when the ``at_risk`` tag (``config/rules/learning.yaml``) turns true;
its cases join three conditions with ``or``: missed lessons in a row, no study event for a
while, the gated model's score. A class teacher needs to know which one holds ("no study
event for over 14 days (the last on 2026-11-20)"), not "flagged at risk by the rules".
``config/alerts.yaml`` lists the conditions (``at_risk.conditions``) by kind, with the
rule-set params that hold their thresholds and a zh/en template each; the numbers are read
from the running rule set when an alert is built, as for the hot-lead ``basis``. Three kinds
of condition:

* ``tag_at_least``: a number tag at or above a param (``consecutive_absences >=
  at_risk_absences``);
* ``idle``: more than a param's duration since the user's last study event (the scorer's
  state keeps its time: ``since(stream:study) > $stalled_after``);
* ``score_at_least``: a gated model's score at or above a param (``score.at_risk >=
  $at_risk_score``), at the resolution the rules read (2 places); a rules-sourced score is
  not the model's, as for the rules.

Example:
    >>> c = Condition.parse({"kind": "idle", "param": "stalled_after",
    ...                      "zh": "超过{threshold}天没有学习(最近一次在{date})",
    ...                      "en": "no study event for over {threshold} days (the last on {date})"})
    >>> day = 86_400_000
    >>> r = c.reason({"stalled_after": "14d"}, {}, {"study": 0}, 14 * day + 1, 0.1, "rules")
    >>> r["en"], r["value"]
    ('no study event for over 14 days (the last on 1970-01-01)', 14.0)
    >>> r["zh"]
    '超过14天没有学习(最近一次在1970-01-01)'
    >>> c.reason({"stalled_after": "14d"}, {}, {"study": 0}, 14 * day, 0.1, "rules") is None
    True
    >>> c.reason({"stalled_after": "14d"}, {}, {"study": 0}, 9 * day, 0.1, "rules") is None
    True
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream_app.errors import ConfigError
from stream_app.rules.compiler import DAY_MS, parse_duration
from stream_app.scoring.points import published

__all__ = ["KINDS", "Condition", "number"]

#: the condition kinds and what each reads
KINDS = {"tag_at_least": "a number tag", "idle": "the last study event's time",
         "score_at_least": "a gated model's score"}


def number(v: Any) -> float | None:
    """``v`` if it is a number (not a bool), else None.

    >>> number(3), number(True), number("3")
    (3, None, None)
    """
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


@dataclass(frozen=True)
class Condition:
    """One condition of a rule tag: its kind, the rule-set param with its threshold, the tag
    it reads (``tag_at_least``) and its words (``{value}`` and ``{threshold}`` filled in)."""

    kind: str
    param: str
    zh: str
    en: str
    tag: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Condition:
        """One entry of ``conditions`` in alerts.yaml, checked.

        >>> Condition.parse({"kind": "tag_at_least", "param": "p", "zh": "z", "en": "e"})
        Traceback (most recent call last):
        ...
        stream_app.errors.ConfigError: condition tag_at_least needs `tag` (the number tag it reads)
        """
        kind = raw.get("kind")
        if kind not in KINDS:
            raise ConfigError(f"condition kind {kind!r} is not one of {sorted(KINDS)}")
        missing = [k for k in ("param", "zh", "en") if not raw.get(k)]
        if missing:
            raise ConfigError(f"condition {kind} needs {', '.join(missing)}")
        if kind == "tag_at_least" and not raw.get("tag"):
            raise ConfigError(f"condition {kind} needs `tag` (the number tag it reads)")
        extra = set(raw) - {"kind", "param", "zh", "en", "tag"}
        if extra:
            raise ConfigError(f"condition {kind}: unknown keys {sorted(extra)}")
        return cls(kind, str(raw["param"]), str(raw["zh"]), str(raw["en"]), raw.get("tag"))

    def reason(self, params: Mapping[str, Any], rule_tags: Mapping[str, Any],
               st: Mapping[str, Any], now: int, score: float | None,
               source: str, day_offset_ms: int = 0) -> dict[str, Any] | None:
        """The reason stating this condition if it holds now, else None (also when its
        param is missing or not a number: nothing is claimed that was not checked).
        ``{date}`` in an ``idle`` template is the last study event's business day
        (``day_offset_ms``: UTC+8 is 8 hours)."""
        value: float | None
        date = ""
        if self.kind == "idle":
            after, last = parse_duration(params.get(self.param)), number(st.get("study"))
            if after is None or last is None or now - last <= after:
                return None
            # the days to one decimal, the date in words: a tick comes just after the
            # threshold, and "14 days ago (at risk after 14 days)" would read as a contradiction
            value, threshold = round((now - last) / DAY_MS, 1), after / DAY_MS
            date = time.strftime("%Y-%m-%d", time.gmtime((last + day_offset_ms) / 1000))
        else:
            threshold = number(params.get(self.param))
            if self.kind == "tag_at_least":
                value = number(rule_tags.get(self.tag or ""))
            else:
                # at the published resolution, as the rules read it (0.697 is 0.70)
                value = None if source == "rules" else published(score)
            if threshold is None or value is None or value < threshold:
                return None
        shown = f"{value:.2f}" if self.kind == "score_at_least" else f"{value:g}"
        words = {lang: getattr(self, lang).format(value=shown, threshold=f"{threshold:g}",
                                                  date=date)
                 for lang in ("zh", "en")}
        return {"kind": "condition", "condition": self.kind, "feature": self.tag or self.param,
                "value": value, "threshold": threshold, **words}
