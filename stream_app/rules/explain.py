"""Human-readable tag timelines and "why" records (pure; for the API, CLI and alerts).

Example:
    >>> from stream_app.events import Event
    >>> from stream_app.rules.engine import DEFAULT_RULES, TagEngine
    >>> from stream_app.rules.loader import load_ruleset
    >>> eng = TagEngine(load_ruleset(DEFAULT_RULES))
    >>> r = eng.on_event(None, Event("e1", "u1", 1714528800000, "course_view", "click"))
    >>> ch = next(c for c in r.changes if c["tag_id"] == "activity")
    >>> describe_change(ch, eng.ruleset, "zh")
    '活跃度: 无 → 低活跃 (新增)'
    >>> describe_change(ch, eng.ruleset, "en")
    'Activity level: none → Low (added)'
    >>> print(explain(r.why["activity"], eng.ruleset, "en"))
    Activity level = Low, because active_days(stream:click|stream:study, $churn_period) >= 1
      active_days(stream:click|stream:study, $churn_period) = 1
      count(stream:click|stream:study) = 1

A rule reading ``prev()`` (hysteresis) shows the value the tag had before, with its label:
    >>> why = {"rule": "intent", "case": "... or (prev() == 'high' and ...)", "value": "high",
    ...        "values": {"tag(lead_points)": 13, "prev()": "high", "score.convert": None}}
    >>> print(explain(why, eng.ruleset, "en"))
    Intent layer = High intent, because ... or (prev() == 'high' and ...)
      prev() = High intent (the value before)
      score.convert = None
      tag(lead_points) = 13
"""

from __future__ import annotations

from typing import Any

from stream_app.rules.compiler import PREV_KEY
from stream_app.rules.model import RuleSet, TagDef

_NONE = {"zh": "无", "en": "none"}
_REASONS = {
    "added": {"zh": "新增", "en": "added"}, "removed": {"zh": "移除", "en": "removed"},
    "changed": {"zh": "变更", "en": "changed"}, "score": {"zh": "模型分变化", "en": "score"},
    "expired": {"zh": "过期", "en": "expired"}, "deleted": {"zh": "删除", "en": "deleted"},
    "rule_removed": {"zh": "规则下线", "en": "rule removed"},
}
_BECAUSE = {"zh": "，因为 ", "en": ", because "}
_BEFORE = {"zh": " (此前的值)", "en": " (the value before)"}


def value_label(ruleset: RuleSet, tag_id: str, value: Any, lang: str = "zh") -> str:
    """Label of a tag value, as the API's ``labels`` give it (:meth:`TagDef.label`: enum and
    bool labels, 是/否 or yes/no for an unlabelled bool, a set's elements joined), None ->
    无/none; a tag the rule set does not know the same way, without labels."""
    if value is None:
        return _NONE[lang]
    tag = ruleset.by_id.get(tag_id) or TagDef(tag_id, "", "", "")
    return tag.label(value, lang)


def tag_label(ruleset: RuleSet, tag_id: str, lang: str = "zh") -> str:
    tag = ruleset.by_id.get(tag_id)
    return getattr(tag, lang) if tag else tag_id


def describe_change(change: dict[str, Any], ruleset: RuleSet, lang: str = "zh") -> str:
    """One line: ``<tag>: <old> → <new> (<reason>)``."""
    tid = change["tag_id"]
    reason = _REASONS.get(change.get("reason", ""), {}).get(lang, change.get("reason", ""))
    return (f"{tag_label(ruleset, tid, lang)}: {value_label(ruleset, tid, change['old'], lang)}"
            f" → {value_label(ruleset, tid, change['new'], lang)} ({reason})")


def explain(why: dict[str, Any], ruleset: RuleSet, lang: str = "zh") -> str:
    """A why record as text: the tag and value, the case that matched, the deciding values
    (``prev()``, the tag's value before the evaluation, by its label)."""
    tid = why["rule"]
    value = why.get("value")
    head = f"{tag_label(ruleset, tid, lang)} = {value_label(ruleset, tid, value, lang)}"
    case = why.get("case")
    if case and case != "default":
        head += _BECAUSE[lang] + case
    lines = [head] + [f"  {expr} = {value_label(ruleset, tid, v, lang)}{_BEFORE[lang]}"
                      if expr == PREV_KEY else f"  {expr} = {show_value(expr, v, lang)}"
                      for expr, v in sorted(why.get("values", {}).items())]
    return "\n".join(lines)


_UNITS = (("d", 86_400_000, "天"), ("h", 3_600_000, "小时"), ("min", 60_000, "分钟"),
          ("s", 1_000, "秒"))
_DURATION_FUNCS = ("since(", "since_first(")


def show_value(expr: str, v: Any, lang: str = "zh") -> str:
    """A deciding value as a reader takes it in: a non-integral number to 2 places, and the
    milliseconds of ``since()``/``since_first()`` also as a duration (the rules compare the
    exact value; the record keeps it).

    >>> show_value("count(course_view, 30d, half_life: 14d)", 4.758475765053098, "en")
    '4.76'
    >>> show_value("since(stream:click)", 85585413, "en")
    '85585413 ms (23.8 h)'
    >>> show_value("since(order_paid)", 3 * 86_400_000, "zh")
    '259200000 ms (3天)'
    >>> show_value("tag(lead_points)", 13, "en"), show_value("profile.goal", "exam", "en")
    ('13', 'exam')
    """
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if expr.startswith(_DURATION_FUNCS) and v >= 0:
        for en, ms, zh in _UNITS:
            if v >= ms or ms == 1_000:
                n = f"{v / ms:.1f}".removesuffix(".0")
                raw = round(v)
                return f"{raw} ms ({n}{zh})" if lang == "zh" else f"{raw} ms ({n} {en})"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.2f}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def timeline(changes: list[dict[str, Any]], ruleset: RuleSet, lang: str = "zh",
             tag_id: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Changes newest first (by seq), optionally of one tag, each with a ``text`` line."""
    rows = [c for c in changes if tag_id is None or c["tag_id"] == tag_id]
    rows.sort(key=lambda c: c.get("seq", 0), reverse=True)
    if limit is not None:
        rows = rows[:limit]
    return [dict(c, text=describe_change(c, ruleset, lang)) for c in rows]
