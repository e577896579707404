"""Segment grammar and planner (pure: no Redis)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.serving.segments import (
    And,
    Cmp,
    Eq,
    Has,
    In,
    Lit,
    Not,
    Or,
    SegmentError,
    parse,
    plan,
)


def name(text: str) -> Lit:
    return Lit("name", text)


def test_issue_example_parses_with_precedence():
    ast = parse("family.activity = high AND lifecycle IN (growth, mature) AND NOT tag:refund")
    assert ast == And((Eq("family.activity", name("high")),
                       In("lifecycle", (name("growth"), name("mature"))),
                       Not(Has("refund"))))


def test_and_binds_tighter_than_or_and_parentheses_override():
    a, b, c = (Eq(x, name("v")) for x in "abc")
    assert parse("a = v OR b = v AND c = v") == Or((a, And((b, c))))
    assert parse("(a = v OR b = v) AND c = v") == And((Or((a, b)), c))


def test_keywords_are_case_insensitive_and_do_not_swallow_names():
    assert parse("android = x oR order = y") == Or((Eq("android", name("x")),
                                                    Eq("order", name("y"))))
    assert parse("notes not in (a)") == Not(In("notes", (name("a"),)))


def test_literals_numbers_strings_and_comparisons():
    assert parse("lead_points >= -2.5e1") == Cmp("lead_points", ">=", Lit("number", "-2.5e1"))
    assert parse("region = 'it''s'".replace("''", "\\'")) == Eq("region",
                                                               Lit("string", "it's"))
    assert parse('first_channel = "baidu sem"').value == Lit("string", "baidu sem")
    assert parse("region = 北京").value == name("北京")


@pytest.mark.parametrize("text, where", [
    ("activity = ", "column 12"), ("activity == high", "column 11"),
    ("(a = b", "column 7"), ("a IN (x", "column 8"), ("a # b", "column 3"),
    ("lead_points > high", "column 15"), ("", "empty"), ("a = b AND", "column 10"),
])
def test_syntax_errors_name_the_column(text, where):
    with pytest.raises(SegmentError, match=where):
        parse(text)


@pytest.mark.parametrize("text, hint", [
    ("activity = high)", "expected AND or OR or the end of the expression"),
    ("(activity = high", "expected ')' or AND or OR"),
    ("age_band = 25-34", 'quote a value that holds spaces or signs, e.g. "25-30"'),
    ("region = new york", "quote a value"),
    ("activity = high ANDactivity = low", "a space is missing after AND"),
])
def test_syntax_errors_say_what_could_come_there(text, hint):
    with pytest.raises(SegmentError) as exc:
        parse(text)
    assert hint in str(exc.value) and "$END" not in str(exc.value)


def nested(levels: int) -> str:
    """An expression of ``levels`` nested operators, AND and OR alternating."""
    text = "activity = high"
    for i in range(levels):
        text = f"lifecycle = {'growth' if i % 2 else 'mature'} {'AND' if i % 2 else 'OR'} ({text})"
    return text


def test_nesting_is_bounded_with_a_clear_error():
    parse("NOT " * 100 + "tag:x")       # the documented bound: 100 levels pass
    parse(nested(100))
    parse(f"NOT ({nested(99)})")
    for text in ("NOT " * 101 + "tag:x", "NOT " * 500 + "tag:x", nested(101),
                 f"NOT ({nested(100)})"):
        with pytest.raises(SegmentError, match="nested more than 100 levels deep .levels of "
                           "NOT, AND and OR; parentheses alone and a chain"):
            parse(text)


def test_parentheses_and_chains_of_one_operator_are_no_levels():
    assert parse("(" * 150 + "tag:x" + ")" * 150) == parse("tag:x")
    chain = parse(" AND ".join(["a = 1"] * 400))          # a 400-deep parse tree
    assert isinstance(chain, And) and len(chain.items) == 400
    right = parse("a = 1 OR (" * 300 + "b = 2" + ")" * 300)
    assert isinstance(right, Or) and len(right.items) == 301


def test_tag_references_resolve_family_forms(catalog):
    assert catalog.resolve("family.activity").id == "activity"
    assert catalog.resolve("consumption.refunded").id == "refunded"
    with pytest.raises(SegmentError, match="name one of: categories_bought, refunded"):
        catalog.resolve("family.consumption")
    with pytest.raises(SegmentError, match="unknown tag 'learning.refunded'"):
        catalog.resolve("learning.refunded")
    with pytest.raises(SegmentError, match="unknown tag 'nope'"):
        plan(parse("nope = x"), catalog, "t")


@pytest.mark.parametrize("text, message", [
    ("activity = hgh", "has no value 'hgh'; values: high, low, churned"),
    ("lead_points = high", "numeric"),
    ("activity > 3", "needs a numeric tag"),
    ("refunded = yes", "boolean: use true or false"),
])
def test_values_are_checked_against_the_tag_kind(catalog, text, message):
    with pytest.raises(SegmentError, match=message):
        plan(parse(text), catalog, "t")


def test_and_not_becomes_a_difference_without_the_user_set(catalog):
    p = plan(parse("activity = high AND NOT tag:refunded"), catalog, "t", qid="q")
    assert p.steps == [
        ("BITOP", "AND", "sa:t:tmp:q:1", "sa:t:seg:activity=high", "sa:t:seg:refunded=true"),
        ("BITOP", "XOR", "sa:t:tmp:q:2", "sa:t:seg:activity=high", "sa:t:tmp:q:1")]
    assert p.result == "sa:t:tmp:q:2" and p.temps == ["sa:t:tmp:q:1", "sa:t:tmp:q:2"]


def test_bare_not_uses_the_tenant_user_bitmap(catalog):
    p = plan(parse("NOT refunded = true"), catalog, "acme", qid="q")
    assert p.steps[0] == ("BITOP", "AND", "sa:acme:tmp:q:1", "sa:acme:users",
                          "sa:acme:seg:refunded=true")
    assert p.steps[1] == ("BITOP", "XOR", "sa:acme:tmp:q:2", "sa:acme:users", "sa:acme:tmp:q:1")


def test_in_is_a_union_and_an_intersection_is_not_distributed_over_it(catalog):
    assert plan(parse("lifecycle IN (growth, mature)"), catalog, "t", qid="q").steps == [
        ("BITOP", "OR", "sa:t:tmp:q:1", "sa:t:seg:lifecycle=growth", "sa:t:seg:lifecycle=mature")]
    p = plan(parse("lifecycle IN (growth, mature) AND activity = high"), catalog, "t", qid="q")
    assert [s[:2] for s in p.steps] == [("BITOP", "OR"), ("BITOP", "AND")]
    assert p.explain() == "AND(OR(seg:lifecycle=growth, seg:lifecycle=mature), seg:activity=high)"


def test_not_equal_is_the_union_of_the_other_values(catalog):
    p = plan(parse("activity != high"), catalog, "t", qid="q")
    assert p.steps == [("BITOP", "OR", "sa:t:tmp:q:1", "sa:t:seg:activity=low",
                        "sa:t:seg:activity=churned")]
    assert plan(parse("at_risk != true"), catalog, "t").size_command() == (
        "BITCOUNT", "sa:t:seg:at_risk=false")


EDGES = {"sa:t:num:lead_points": [0.0, 1.0, 5.0, 10.0]}


def test_ranges_on_bucket_edges_are_bucket_bitmaps(catalog):
    p = plan(parse("lead_points >= 1 AND lead_points < 10 AND activity = high"), catalog, "t",
             qid="q", edges=EDGES)
    assert p.steps == [
        ("BITOP", "OR", "sa:t:tmp:q:1", "sa:t:nb:lead_points:2", "sa:t:nb:lead_points:3"),
        ("BITOP", "AND", "sa:t:tmp:q:2", "sa:t:tmp:q:1", "sa:t:seg:activity=high")]
    one = plan(parse("lead_points >= 10"), catalog, "t", edges=EDGES)
    assert one.steps == [] and one.size_command() is None and one.result == "sa:t:nb:lead_points:4"


def test_a_partly_covered_bucket_is_read_from_the_sorted_set(catalog):
    from stream_app.serving.segments import RANGE_SCRIPT

    p = plan(parse("lead_points > 3"), catalog, "t", qid="q", edges=EDGES)
    assert p.steps[0] == ("EVAL", RANGE_SCRIPT, 2, "sa:t:num:lead_points", "sa:t:tmp:q:1",
                          "(3", "(5", 30_000)
    assert p.steps[1] == ("BITOP", "OR", "sa:t:tmp:q:2", "sa:t:nb:lead_points:3",
                          "sa:t:nb:lead_points:4", "sa:t:tmp:q:1")
    nothing_known = plan(parse("lead_points > 3"), catalog, "t", qid="q")  # no edges in Redis
    assert [s[0] for s in nothing_known.steps] == ["EVAL"]
    assert nothing_known.steps[0][5:7] == ("(3", "+inf")


def test_disjoint_ranges_are_empty(catalog):
    assert plan(parse("lead_points > 3 AND lead_points < 3"), catalog, "t").result is None
    p = plan(parse("lead_points >= 3 AND lead_points <= 3"), catalog, "t", edges=EDGES)
    assert p.steps[0][5:7] == ("3", "3")


def test_plain_keys_have_single_command_sizes(catalog):
    assert plan(parse("activity = low"), catalog, "t").size_command() == (
        "BITCOUNT", "sa:t:seg:activity=low")
    both = plan(parse("activity = low AND refunded = true"), catalog, "t")
    assert both.size_command() is None and len(both.steps) == 1


def test_contradictions_and_tautologies_simplify(catalog):
    assert plan(parse("activity = high AND NOT activity = high"), catalog, "t").result is None
    assert plan(parse("NOT NOT activity = high"), catalog, "t").steps == []
    p = plan(parse("categories_bought = java"), catalog, "t", found_values={
        "categories_bought": [["python"]]})
    assert p.result is None


def test_set_tags_match_every_stored_combination_containing_the_value(catalog):
    p = plan(parse("categories_bought = java"), catalog, "t", qid="q", found_values={
        "categories_bought": [["java"], ["java", "pmp"], ["pmp"]]})
    assert p.steps == [("BITOP", "OR", "sa:t:tmp:q:1", "sa:t:seg:categories_bought=[\"java\"]",
                        'sa:t:seg:categories_bought=["java","pmp"]')]


def test_tenant_is_the_prefix_of_every_key(catalog):
    p = plan(parse("(activity = high OR lead_points > 1) AND NOT tag:at_risk"), catalog,
             "tenant-b", qid="q")
    touched = [a for step in p.steps for a in step[1:] if isinstance(a, str)
               and a.startswith("sa:")]
    assert touched and all(a.startswith("sa:tenant-b:") for a in touched)


def test_value_lists_of_one_tag_intersect_without_redis_work(catalog):
    found = {"first_channel": ["a", "b", "douyin"]}
    p = plan(parse("tag:first_channel AND first_channel != douyin"), catalog, "t",
             found_values=found)
    assert p.explain() == "OR(seg:first_channel=a, seg:first_channel=b)"
    p = plan(parse("activity IN (high, low) AND activity IN (low, churned)"), catalog, "t")
    assert p.steps == [] and p.size_command() == ("BITCOUNT", "sa:t:seg:activity=low")
    assert plan(parse("activity = high AND activity = low"), catalog, "t").result is None


@pytest.mark.parametrize("text", ['"first_channel" = douyin', "-3", "5", "'x' = high",
                                  "3 AND activity = high", '"a"', "1e5 OR tag:x"])
def test_an_unexpected_first_token_is_a_syntax_error_at_column_1(text):
    # QA28 F19: lark's token_history is [None] there; the hint crashed (AttributeError)
    with pytest.raises(SegmentError, match="^syntax error at column 1: expected "):
        parse(text)


def test_a_quoted_tag_name_is_told_to_drop_the_quotes():
    for text in ('"first_channel" = douyin', 'activity = high AND "region" = x', 'tag:"x"'):
        with pytest.raises(SegmentError, match="a tag name is written without quotes"):
            parse(text)


_TOKENS = ["activity", "lead_points", "first_channel", "family.activity", "consumption.refunded",
           "tag:", "TAG:", "=", "!=", "<", "<=", ">", ">=", "IN", "NOT", "AND", "OR", "in", "(",
           ")", ",", "high", "'x'", '"y"', '"', "'", "1e5", "-3", "+0", "0", ".5", "5.", "1e999",
           "北京", "x-y", "_a", "a.b.c", "ANDx", "#", "\u3000", "\t", "\n"]


@settings(max_examples=1500, deadline=None)
@given(parts=st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=14),
       glue=st.sampled_from([" ", "", "  "]))
def test_parse_raises_only_segment_errors(parts, glue):
    """Any token sequence either parses or is a SegmentError (the API's 400), never another
    exception (a 500)."""
    with contextlib.suppress(SegmentError):
        parse(glue.join(parts))
