"""Labels of tag values for people (the API's ``labels``): never Python reprs (QA28 F5)."""

from __future__ import annotations

import pytest

from stream_app.rules.model import TagDef, ValueDef


def test_set_values_are_their_elements_labels_joined(default_ruleset):
    cats = default_ruleset.by_id["categories_bought"]
    assert cats.kind == "set"
    assert cats.label(["java", "pmp"], "zh") == "java、pmp"
    assert cats.label(["java", "pmp"], "en") == "java, pmp"
    assert cats.label(["java"], "en") == "java"
    labelled = TagDef("c", "f", "类目", "Categories", kind="set",
                      values=[ValueDef("java", "Java 开发", "Java development")])
    assert labelled.label(["java", "pmp"], "zh") == "Java 开发、pmp"
    assert labelled.label(["java", "pmp"], "en") == "Java development, pmp"


def test_bool_values_are_the_rules_labels_or_yes_no(default_ruleset):
    at_risk = default_ruleset.by_id["at_risk"]
    assert at_risk.label(True, "zh") == "有流失风险" and at_risk.label(True, "en") == "At risk"
    refunded = default_ruleset.by_id["refunded"]          # only true has a label
    assert refunded.label(True, "en") == "Refunded"
    assert refunded.label(False, "en") == "no" and refunded.label(False, "zh") == "否"
    bare = TagDef("b", "f", "", "", kind="bool")
    assert (bare.label(True), bare.label(False, "zh")) == ("yes", "否")


def test_a_bool_label_is_not_a_number_label_and_none_is_empty():
    num = TagDef("n", "f", "", "", kind="number", values=[ValueDef(1, "一", "one")])
    assert num.label(1, "en") == "one" and num.label(True, "en") == "yes"
    assert num.label(2.5, "en") == "2.5" and num.label(None) == ""


@pytest.mark.parametrize("tag_id", ["categories_bought", "at_risk", "refunded", "activity",
                                    "lead_points", "first_channel"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_no_label_is_a_python_repr(default_ruleset, tag_id, lang):
    tag = default_ruleset.by_id[tag_id]
    values = {"set": [["java", "pmp"], ["python_data"]], "bool": [True, False],
              "number": [0, 12, 2.5], "text": ["douyin"],
              "enum": [v.value for v in tag.values]}[tag.kind]
    for value in values:
        text = tag.label(value, lang)
        assert text and not any(s in text for s in ("[", "'", "True", "False")), (value, text)
