"""Segment queries executed on a real Redis filled through the projection's operations."""

from __future__ import annotations

import random

import pytest

from stream_app.serving.segment_runner import CursorError, SegmentRunner, encode_cursor
from stream_app.serving.segments import SegmentError, parse
from tests.unit.serving import fixtures
from tests.unit.serving.conftest import fresh_client

run = fixtures.run


@pytest.fixture(scope="module")
def data(catalog, redis_url):
    """One filled Redis database for the module (read-only tests)."""
    fake = fresh_client(redis_url)
    users = fixtures.random_users(seed=7, n=240)
    fixtures.fill(fake, "t", users)
    fixtures.fill(fake, "other", fixtures.random_users(seed=8, n=60, prefix="o"))
    return fake, users


@pytest.fixture()
def filled(data, catalog):
    fake, users = data
    return SegmentRunner(fake, catalog), users


def test_random_expressions_match_the_reference_evaluator(filled):
    runner, users = filled
    rnd = random.Random(2024)
    nonempty = 0
    for _ in range(150):
        expr = fixtures.random_expr(rnd)
        want = fixtures.reference(users, parse(expr))
        got = run(runner.members("t", expr))
        assert got == want, expr
        assert run(runner.size("t", expr)) == len(want), expr
        nonempty += bool(want)
    assert nonempty > 50  # the generator is not producing only empty segments


def test_issue_example(filled):
    runner, users = filled
    expr = "family.activity = high AND lifecycle IN (growth, mature) AND NOT tag:refunded"
    want = {u for u, t in users.items() if t.get("activity") == "high"
            and t.get("lifecycle") in ("growth", "mature") and not t.get("refunded")}
    assert want and run(runner.members("t", expr)) == want


def test_temporary_keys_are_removed_and_tenants_stay_apart(filled, data):
    fake = data[0]
    runner, users = filled
    got = run(runner.members("t", "NOT tag:refunded OR lead_points > 3"))
    assert got and all(u.startswith("u") for u in got)
    assert all(u.startswith("o") for u in run(runner.members("other", "NOT tag:refunded")))
    assert run(fake.keys("sa:*:tmp:*")) == []


def test_text_tag_values_are_found_in_redis(filled):
    runner, users = filled
    values = run(runner.present_values("t", "first_channel"))
    assert values == sorted({t["first_channel"] for t in users.values() if "first_channel" in t})


def test_paging_returns_every_member_once_in_order(filled, data):
    fake = data[0]
    runner, users = filled
    expr = "tag:activity OR tag:lead_points"
    want = fixtures.reference(users, parse(expr))
    page = run(runner.page("t", expr, None, limit=17))
    seen, pages = list(page.members), 1
    assert page.total == len(want) and len(page.members) == 17
    while page.next_cursor:
        page = run(runner.page("t", expr, page.next_cursor, limit=17))
        seen += page.members
        pages += 1
    assert sorted(seen) == sorted(want) and len(seen) == len(want)
    assert pages == -(-len(want) // 17)
    assert run(fake.keys("sa:t:tmp:*")) == []  # the snapshot is dropped after the last page


def test_page_size_may_change_between_pages(filled):
    runner, users = filled
    expr = "NOT lifecycle = growth"
    want = fixtures.reference(users, parse(expr))
    page = run(runner.page("t", expr, None, limit=30))
    seen = list(page.members)
    for limit in (1, 7, 50, 3, 1000):
        if not page.next_cursor:
            break
        page = run(runner.page("t", expr, page.next_cursor, limit=limit))
        assert len(page.members) == limit or page.next_cursor is None
        seen += page.members
    assert page.next_cursor is None
    assert sorted(seen) == sorted(want) and len(seen) == len(want)


def test_cursor_is_checked(fake, catalog):
    fixtures.fill(fake, "t", fixtures.random_users(seed=9, n=30))
    runner = SegmentRunner(fake, catalog)
    page = run(runner.page("t", "tag:activity", None, limit=5))
    with pytest.raises(CursorError, match="another expression"):
        run(runner.page("t", "tag:lifecycle", page.next_cursor, limit=5))
    with pytest.raises(CursorError, match="malformed"):
        run(runner.page("t", "tag:activity", "bm90LWEtY3Vyc29y", limit=5))
    with pytest.raises(CursorError, match="expired"):  # another tenant has no such snapshot
        run(runner.page("other", "tag:activity", page.next_cursor, limit=5))
    run(fake.flushdb())
    with pytest.raises(CursorError, match="expired"):
        run(runner.page("t", "tag:activity", page.next_cursor, limit=5))
    forged = encode_cursor("../../x", 0, 0, "b")
    with pytest.raises(CursorError, match="malformed"):
        run(runner.page("t", "tag:activity", forged, limit=5))


def test_empty_segment_pages(filled):
    runner, _ = filled
    page = run(runner.page("t", "activity = high AND NOT activity = high", None, limit=5))
    assert (page.members, page.total, page.next_cursor) == ([], 0, None)


def test_an_empty_computed_result_pages_as_empty(filled):
    runner, _ = filled
    for expr in ("lead_points > 1 AND lead_points < 2", "activity = high AND refunded = false"):
        page = run(runner.page("t", expr, None, limit=5))
        assert (page.members, page.total, page.next_cursor) == ([], 0, None)
    page = run(runner.page("nobody", "lead_points >= 1 AND NOT tag:refunded", None, limit=5))
    assert page.members == [] and page.total == 0


def test_a_new_text_value_or_set_combination_counts_at_once(fake, catalog):
    """QA F2: the values present of text/set tags were cached 30 s per process, so a user
    holding a value (or set combination) first seen in the last 30 s was missing from
    ``tag:x``, ``x != v``, set membership, members and exports."""
    users = {"u1": {"first_channel": "douyin", "categories_bought": ["java"]},
             "u2": {"first_channel": "bilibili", "categories_bought": ["python"]}}
    fixtures.fill(fake, "t", users)
    runner = SegmentRunner(fake, catalog, size_cache_s=0)   # value_cache_s: the default
    queries = {"tag:first_channel": {"u1", "u2"},
               "first_channel != douyin": {"u2"},
               "categories_bought = python": {"u2"},
               "tag:categories_bought": {"u1", "u2"}}
    for expr, want in queries.items():
        assert run(runner.members("t", expr)) == want, expr
    fixtures.fill(fake, "t", {"u3": {"first_channel": "brand-new-camp",
                                     "categories_bought": ["java", "python"]}})
    for expr, want in queries.items():
        assert run(runner.members("t", expr)) == want | {"u3"}, expr
        assert run(runner.size("t", expr)) == len(want) + 1, expr
    page = run(runner.page("t", "first_channel != douyin", None, limit=10))
    assert sorted(page.members) == ["u2", "u3"] and page.total == 2


def test_known_values_are_not_read_again_while_the_index_is_unchanged(fake, catalog):
    fixtures.fill(fake, "t", {"u1": {"first_channel": "douyin"}})
    runner = SegmentRunner(fake, catalog, size_cache_s=0)
    reads = []
    smembers = fake.smembers

    async def counted(key):
        reads.append(key)
        return await smembers(key)

    fake.smembers = counted
    try:
        for _ in range(3):
            assert run(runner.size("t", "tag:first_channel")) == 1
        assert len(reads) == 1                              # then one SCARD per query
        fixtures.fill(fake, "t", {"u2": {"first_channel": "baidu"}})
        assert run(runner.size("t", "tag:first_channel")) == 2 and len(reads) == 2
    finally:
        del fake.smembers


def test_a_numeric_tag_written_after_a_query_counts_at_once(fake, catalog):
    """Bucket edges are stored with a tenant's first value of a numeric tag: an API that
    asked before must not keep reading the tag with no edges (all of it as one bucket)."""
    fixtures.fill(fake, "t", {"u1": {"activity": "high"}})
    runner = SegmentRunner(fake, catalog, size_cache_s=0)
    assert run(runner.size("t", "tag:lead_points")) == 0
    fixtures.fill(fake, "t", {"u2": {"lead_points": 8}, "u3": {"lead_points": 0}})
    assert run(runner.members("t", "tag:lead_points")) == {"u2", "u3"}
    assert run(runner.members("t", "lead_points >= 5")) == {"u2"}


@pytest.mark.parametrize("space", ["\u3000", "\u00a0", "\u2028", "\x1c", "\v"])
def test_a_cached_size_or_a_cursor_never_answers_an_expression_that_does_not_parse(
        filled, space):
    # QA28 F6: the digest collapsed every Unicode space, the grammar ignores only [ \t\f\r\n]
    runner, users = filled
    good = "first_channel = 北京地推"
    bad = good + space
    with pytest.raises(SegmentError, match="unexpected character"):
        parse(bad)
    assert run(runner.size("t", good)) == sum(
        t.get("first_channel") == "北京地推" for t in users.values()) > 0
    with pytest.raises(SegmentError, match="unexpected character"):
        run(runner.size("t", bad))                      # the cached size is not the answer
    with pytest.raises(SegmentError, match="unexpected character"):
        run(runner.size("t", "first_channel =" + space + "北京地推"))
    page = run(runner.page("t", good, None, limit=1))
    assert page.next_cursor
    with pytest.raises(SegmentError, match="unexpected character"):
        run(runner.page("t", bad, page.next_cursor, limit=1))
    # whitespace the grammar ignores still shares the cache and the cursor
    assert run(runner.size("t", " first_channel\t=\n北京地推\r\f")) == run(runner.size("t", good))
    assert run(runner.page("t", "first_channel  =  北京地推 ", page.next_cursor, limit=1)).members
