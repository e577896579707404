"""Rule files: validation errors name the file, line, rule and problem."""

from __future__ import annotations

import re

import pytest

from stream_app.errors import RuleError
from stream_app.rules.engine import DEFAULT_RULES
from stream_app.rules.loader import load_ruleset, ruleset_from_text

GOOD_TAG = """\
  - id: {id}
    family: activity
    zh: 标签
    en: Tag
    kind: bool
    value: "{expr}"
"""


def one(expr: str, tag_id: str = "t1") -> str:
    return "tags:\n" + GOOD_TAG.format(id=tag_id, expr=expr)


@pytest.mark.parametrize(("text", "line", "rule", "problem"), [
    (one("cuont(x)"), 7, "t1", "unknown function 'cuont'"),
    (one("count(x, 30d) >"), 7, "t1", "unexpected end of expression"),
    (one("count(x, 30d) >= $nope"), 7, "t1", "unknown parameter $nope"),
    (one("profile"), 7, "t1", "unknown name 'profile'"),
    (one("streak(a)"), 7, "t1", "streak() needs reset"),
    (one("sum(order_paid, 30d)"), 7, "t1", "expected selector.prop"),
    (one("active_days(x, 12h)"), 7, "t1", "whole days"),
    (one("count(x, 1, 2, 3)"), 7, "t1", "takes 1..2 positional arguments"),
    (one("tag(nothere)"), 2, "t1", "unknown tag"),
    (one("count(stream:clik, 30d) > 0"), 7, "t1", "unknown stream 'clik'"),
    ("params: {n: three}\n" + one("count(x, 30d) > $n"), 8, "t1",
     "$n is 'three', not a number: > compares numbers"),
    ("tags:\n  - id: t1\n    family: activity\n    zh: a\n    en: b\n    kind: colour\n"
     "    value: 'true'\n", 6, "t1", "kind"),
    ("tags:\n  - id: t1\n    family: activity\n    zh: a\n    en: b\n    kind: bool\n",
     2, "t1", "either 'cases'"),
    ("tags:\n  - id: t1\n    family: activity\n    zh: a\n    en: b\n    kind: enum\n"
     "    cases:\n      - {value: x, when: 'true'}\n", 2, "t1", "needs zh and en"),
    ("tags:\n  - id: t1\n    family: activity\n    zh: a\n    en: b\n    kind: number\n"
     "    cases:\n      - {value: high, when: 'true'}\n", 8, "t1", "does not fit kind"),
])
def test_errors_name_file_line_rule(text, line, rule, problem):
    with pytest.raises(RuleError) as exc:
        ruleset_from_text(text, name="rules/x.yaml")
    msg = str(exc.value)
    assert msg.startswith(f"rules/x.yaml:{line}: rule '{rule}': "), msg
    assert problem in msg


def test_duplicate_ids_and_cycles():
    text = "tags:\n" + GOOD_TAG.format(id="a", expr="tag(b)") + GOOD_TAG.format(
        id="b", expr="tag(a)")
    with pytest.raises(RuleError, match=r"dependency cycle (a -> b -> a|b -> a -> b)"):
        ruleset_from_text(text)
    text = "tags:\n" + GOOD_TAG.format(id="a", expr="true") + GOOD_TAG.format(
        id="a", expr="false")
    with pytest.raises(RuleError,
                       match=r"<string>:8: rule 'a': duplicate tag id \(first defined at"):
        ruleset_from_text(text)


def test_yaml_syntax_error_names_line():
    with pytest.raises(RuleError, match=r"^bad.yaml:4: YAML error: expected ','"):
        ruleset_from_text("tags:\n  - id: a\n    zh: [unclosed\n", name="bad.yaml")


def test_directory_errors_name_the_file(tmp_path):
    (tmp_path / "a.yaml").write_text(one("true", "a"), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(one("count(x, 7d) >", "b"), encoding="utf-8")
    with pytest.raises(RuleError) as exc:
        load_ruleset(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path / 'b.yaml'}:7: rule 'b':")
    with pytest.raises(RuleError, match="no such"):
        load_ruleset(tmp_path / "missing")


def test_params_conflict_across_files(tmp_path):
    (tmp_path / "a.yaml").write_text("params: {w: 7d}\n" + one("true", "a"), encoding="utf-8")
    (tmp_path / "b.yaml").write_text("params: {w: 8d}\n" + one("true", "b"), encoding="utf-8")
    with pytest.raises(RuleError, match=r"b.yaml:1: parameter \$w is set differently"):
        load_ruleset(tmp_path)


def test_default_rules_cover_ten_families_with_labels():
    rs = load_ruleset(DEFAULT_RULES)
    assert {t.family for t in rs.tags} == {
        "channel", "demand_stage", "demographic", "consumption", "activity", "rfm",
        "lifecycle", "lead", "learning", "referral"}
    for t in rs.tags:
        assert t.zh and t.en
        assert all(v.zh and v.en for v in t.values), t.id
    assert re.fullmatch(r"2024-05-01\.1\+[0-9a-f]{8}", rs.version)


def test_version_changes_with_content():
    a = ruleset_from_text('version: "v1"\n' + one("true"))
    b = ruleset_from_text('version: "v1"\n' + one("false"))
    assert a.version != b.version and a.version.startswith("v1+")
