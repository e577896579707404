"""Tag rules: the expression language, YAML loader, rule sets and the tag engine (pure).

Modules: ``grammar`` (lark grammar), ``compiler`` (expressions -> closures), ``model``
(TagDef, RuleSet.evaluate), ``loader`` (YAML + schema -> RuleSet), ``engine`` (TagEngine),
``derive`` (referral events for other users), ``diff`` (shadow comparison of rule sets),
``explain`` (readable why records and timelines). See docs/RULES.md.

Example:
    >>> from stream_app.rules import DEFAULT_RULES, TagEngine, load_ruleset
    >>> TagEngine(load_ruleset(DEFAULT_RULES)).tick_granularity_ms
    86400000
"""

from stream_app.rules.diff import RulesetDiff, diff_rulesets
from stream_app.rules.engine import DEFAULT_RULES, StepResult, TagEngine
from stream_app.rules.loader import load_ruleset, ruleset_from_files, ruleset_from_text
from stream_app.rules.model import RuleSet, TagDef, TagValue, ValueDef

__all__ = ["DEFAULT_RULES", "RuleSet", "RulesetDiff", "StepResult", "TagDef", "TagEngine",
           "TagValue", "ValueDef", "diff_rulesets", "load_ruleset", "ruleset_from_files",
           "ruleset_from_text"]
