"""The static type check (QA F2): type errors that would give null or false for every user
are refused at load with the file, line, rule, field and column; unknown-typed expressions
(profile fields, props, scores, tags of unknown kind) are never refused; the shipped rules
and the activity family's QA edit behave as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_app.errors import RuleError
from stream_app.rules.engine import DEFAULT_RULES
from stream_app.rules.loader import load_ruleset, ruleset_from_files, ruleset_from_text

TAG = """\
  - id: {id}
    family: f
    zh: 标签
    en: Tag
    kind: {kind}
    value: "{expr}"
"""
ENUM_TAG = """\
  - id: stage
    family: f
    zh: 阶段
    en: Stage
    kind: enum
    cases:
      - {value: high, zh: 高, en: High, when: "count(x) > 2"}
"""
PARAMS = 'params: {n: 3, w: 7d, word: "three", yes: true}\n'


def one(expr: str, kind: str = "bool", extra: str = "") -> str:
    """A rule set of one tag ``t`` (value ``expr``) plus ``extra`` tags."""
    return PARAMS + "tags:\n" + TAG.format(id="t", kind=kind, expr=expr) + extra


def refusal(text: str) -> str:
    with pytest.raises(RuleError) as exc:
        ruleset_from_text(text, name="q.yaml")
    return str(exc.value)


@pytest.mark.parametrize(("expr", "problem"), [
    # the QA examples
    ("count(course_view) + 'x' > 0", "'x' is text: + needs numbers (count(course_view) + 'x' "
                                     "would be null for everyone) (column 22)"),
    ("count(course_view) > 'three'", "count(course_view) > 'three' orders a number with text: "
                                     "always false"),
    ("count(course_view) > true", "orders a number with a bool: always false"),
    ("days('abc') > 1", "days() takes a number, got text 'abc' (column 6)"),
    ("size(5) > 1", "size() takes a list, got a number (5) (column 6)"),
    ("count(course_view) in 5", "the right side of in must be a list"),
    ("round('a', 2) > 1", "round() takes a number, got text 'a' (column 7)"),
    ("-'x' > 1", "unary - needs a number, got text 'x'"),
    # the same harm through other routes
    ("count(x) + $word > 1", "$word is text: + needs numbers"),
    ("count(x) * true > 1", "true is a bool: * needs numbers"),
    ("count(x) + $yes > 1", "$yes is a bool: + needs numbers"),
    ("'x' - 'y' == 'z'", "'x' is text: - needs numbers"),
    ("'three' < count(x, $w)", "orders text with a number: always false (both sides must be "
                               "numbers, or both text) (column 1)"),
    ("profile.age + 1 > 'a'", "orders a number with text"),   # a sum is a number (or null)
    ("lower(profile.x) in 5", "the right side of in must be a list"),
    ("count(x) == 'three'", "compares a number with text: always false"),
    ("count(x) != 'three'", "compares a number with text: always true"),
    ("count(x) not in 5", "the right side of not in must be a list"),
    ("count(x) in 'abc'", "the right side of in must be a list"),
    ("distinct(a.b) + 1 > 0", "distinct(a.b) is a list: + needs numbers"),
    ("max(1, count(x) > 0) > 0", "max() takes numbers, got a bool (count(x) > 0)"),
    ("min('a', 2) > 0", "min() takes numbers, got text 'a'"),
    ("days(distinct(a.b)) > 0", "days() takes a number, got a list"),
    ("size(count(x) > 1) > 0", "size() takes a list, got a bool"),
    ("round(count(x), 'a') > 1", "round(): the number of decimals must be a whole number"),
    ("round(count(x), 1.5) > 1", "round(): the number of decimals must be a whole number"),
    ("coalesce(count(x), 0) > 'a'", "orders a number with text"),
    ("if(count(x) > 0, 'a', 'b') < 3", "orders text with a number"),
    ("nullif(count(x), 0) + 'a' > 0", "'a' is text: + needs numbers"),
    ("(count(x) > 0) + 'a' == 1", "'a' is text: + needs numbers"),
])
def test_type_errors_are_refused_with_file_line_rule_and_problem(expr, problem):
    msg = refusal(one(expr))
    assert msg.startswith("q.yaml:8: rule 't': value: "), msg
    assert problem in msg, msg


@pytest.mark.parametrize(("expr", "kind", "problem"), [
    ("'notanumber'", "number", "a number tag's value must be a number, this expression gives "
                               "text (the tag would be null for everyone)"),
    ("count(x) > 0", "number", "a number tag's value must be a number, this expression gives "
                               "a bool"),
    ("distinct(a.b)", "number", "gives a list"),
    ("count(course_view)", "bool", "a bool tag's value must be true or false, this expression "
                                   "gives a number"),
    ("'yes'", "bool", "gives text"),
    ("count(course_view)", "set", "a set tag's value must be a list or text, this expression "
                                  "gives a number"),
    ("seq(a, b)", "set", "gives a bool"),
    ("count(course_view)", "text", "a text tag's value must be text, this expression gives a "
                                   "number"),
    ("distinct(a.b)", "text", "gives a list"),
    ("tag(stage) == 'high'", "text", "gives a bool"),
])
def test_a_value_that_does_not_fit_the_kind_is_refused(expr, kind, problem):
    msg = refusal(one(expr, kind=kind, extra=ENUM_TAG))
    assert msg.startswith("q.yaml:8: rule 't': value: "), msg
    assert problem in msg, msg


def test_a_case_value_that_does_not_fit_the_kind_is_refused():
    text = ("tags:\n  - id: t\n    family: f\n    zh: a\n    en: b\n    kind: number\n"
            "    cases:\n      - {value: high, when: 'count(x) > 0'}\n")
    assert "value 'high' does not fit kind 'number'" in refusal(text)


def test_tag_is_typed_by_the_kind_of_the_tag_it_reads_wherever_it_is_defined():
    # stage (enum: text) is defined after t: tag(stage) is still known to be text
    msg = refusal(one("tag(stage) + 1 > 0", extra=ENUM_TAG))
    assert "tag(stage) is text: + needs numbers" in msg
    # across files
    files = {"a.yaml": one("tag(stage) > 2"), "b.yaml": "tags:\n" + ENUM_TAG}
    with pytest.raises(RuleError, match=r"a\.yaml:8: rule 't': value: tag\(stage\) > 2 orders "
                                        r"text with a number"):
        ruleset_from_files(files)
    points = TAG.format(id="pts", kind="number", expr="count(x)")
    assert ruleset_from_text(one("tag(pts) * 2 >= $n", extra=points))
    assert ruleset_from_text(one("tag(pts) * 2", kind="number", extra=points))
    with pytest.raises(RuleError, match="a bool tag's value must be true or false"):
        ruleset_from_text(one("tag(pts)", extra=points))


def test_prev_is_typed_by_the_rules_own_kind():
    text = PARAMS + "tags:\n" + TAG.format(id="t", kind="number", expr="coalesce(prev(), 0) + 1")
    assert ruleset_from_text(text)
    bad = PARAMS + "tags:\n" + TAG.format(id="t", kind="text", expr="if(prev() > 2, 'a', 'b')")
    assert "prev() > 2 orders text with a number" in refusal(bad)


@pytest.mark.parametrize("expr", [
    # unknown types: profile fields, props, scores, tags of unknown kind (never refused)
    "profile.region > 3", "profile.age > 'a'", "score.convert > 'x'",
    "last(click.channel) > 3", "first(any.channel) + '/' == 'a/'", "lower(profile.x) in [5]",
    "size(last(order_paid.items)) > 0", "days(profile.tenure) > 1", "-profile.x < 0",
    "if(count(x) > 0, 1, 'x') > 2", "coalesce(first(any.channel), '-') + '/' == '-/'",
    # allowed on purpose
    "(count(a) > 0) * 5 > 1",        # a comparison's result counts as 1
    "'a' + 'b' == 'ab'",             # + of two texts concatenates
    "size('abc') > 1", "size(distinct(a.b)) > 1", "'a' in 'abc'", "count(x) in [1, 'a']",
    "round(avg(v.p), $n) > 0.5", "count(x, $w) > 0",
    "min(1, null) == null", "null > 1", "count(x) == true", "since(a) < $w",
    "distinct(a.b) + distinct(c.b) == []",
])
def test_unknown_or_well_typed_expressions_are_accepted(expr):
    assert ruleset_from_text(one(expr), name="ok.yaml")


def test_the_shipped_rules_load_and_type_their_values():
    rs = load_ruleset(DEFAULT_RULES)
    types = {t.id: t.expr.vtype for t in rs.tags if t.expr is not None}
    assert types["lead_points"] == "number"
    assert types["categories_bought"] == "list"
    assert types["first_channel"] == "unknown"


def test_the_qa_activity_edit_is_refused(tmp_path: Path):
    """QA F2: the activity.yaml medium case edited with `+ 'x'` validated ok; now it stops
    loading with the file, the line and the column of the text."""
    src = Path(DEFAULT_RULES)
    for f in src.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    act = tmp_path / "activity.yaml"
    text = act.read_text(encoding="utf-8")
    old = "active_days(stream:click|stream:study, $churn_period) >= $activity_medium_days"
    assert old in text
    act.write_text(text.replace(old, old.replace(" >=", " + 'x' >=")), encoding="utf-8")
    with pytest.raises(RuleError, match=r"activity\.yaml:\d+: rule 'activity': cases\.\d+\."
                                        r"when: 'x' is text: \+ needs numbers"):
        load_ruleset(tmp_path)
