"""Segment paging edges on a real Redis: empty segments, exact page fits, page boundaries
inside a byte, NOT expressions, sparse and clustered bitmaps, tenants, and the first page
reading only what it returns.

Users are written with :func:`~stream_app.serving.bulk.bulk_commands` at known integer ids
(user ``i`` has bit ``i``), so the expected members and their order are known exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from stream_app.serving import segment_runner as sr
from stream_app.serving.bulk import bulk_commands
from stream_app.serving.segment_runner import (
    CursorError,
    SegmentRunner,
    bit_positions,
    decode_cursor,
)
from tests.unit.serving import fixtures
from tests.unit.serving.conftest import fresh_client

run = fixtures.run
EDGES = [0.0, 1.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0]


def load(r: Any, tenant: str, n: int, tags_of: Callable[[int], dict[str, Any]]) -> list[str]:
    """Write users ``{tenant}-0 .. {tenant}-{n-1}`` (user i has integer id i); their names."""
    names = [f"{tenant}-{i}" for i in range(n)]

    async def go() -> None:
        for start in range(0, n, 8192):
            batch = [(names[i], tags_of(i)) for i in range(start, min(n, start + 8192))]
            pipe = r.pipeline(transaction=False)
            for cmd in bulk_commands(tenant, batch, start, EDGES):
                pipe.execute_command(*cmd)
            await pipe.execute()

    run(go())
    return names


def walk(runner: SegmentRunner, tenant: str, expr: str,
         limits: list[int]) -> tuple[list[str], list[Any]]:
    """Every page of a segment, page sizes cycling through ``limits``; (members, pages)."""
    pages = [run(runner.page(tenant, expr, None, limit=limits[0]))]
    k = 1
    while pages[-1].next_cursor:
        pages.append(run(runner.page(tenant, expr, pages[-1].next_cursor,
                                     limit=limits[k % len(limits)])))
        k += 1
    return [m for p in pages for m in p.members], pages


def tmp_keys(r: Any) -> list[bytes]:
    return run(r.keys("sa:*:tmp:*"))


# -- decoding ------------------------------------------------------------------------------

def test_bit_positions_agrees_with_a_bit_by_bit_reference():
    rnd = random.Random(5)
    for _ in range(300):
        data = bytes(rnd.choice([0, 0, 0, 255, rnd.randrange(256)])
                     for _ in range(rnd.randrange(0, 40)))
        base = 8 * rnd.randrange(0, 4)
        ref = [base + i for i in range(8 * len(data)) if data[i // 8] >> (7 - i % 8) & 1]
        start = rnd.randrange(0, base + 8 * len(data) + 9)
        limit = rnd.choice([None, 0, 1, 3, 8, 9, 1000])
        want = [x for x in ref if x >= start]
        want = want if limit is None else want[:limit]
        assert bit_positions(data, base, start, limit) == want, (data, base, start, limit)
    assert bit_positions(b"\xff" * 4, 0) == list(range(32))


# -- paging edges --------------------------------------------------------------------------

@pytest.fixture()
def r(redis_url):
    return fresh_client(redis_url)


def test_empty_segments_page_as_empty_and_leave_nothing(r, catalog):
    load(r, "t", 50, lambda i: {"activity": "low"})
    runner = SegmentRunner(r, catalog)
    for expr in ("activity = high", "NOT activity = low", "activity = high AND tag:refunded",
                 "lead_points >= 3"):
        page = run(runner.page("t", expr, None, limit=100))
        assert (page.members, page.total, page.next_cursor) == ([], 0, None), expr
    assert tmp_keys(r) == []


@pytest.mark.parametrize("n", [99, 100, 101, 200])
def test_exactly_one_page_and_one_more(r, catalog, n):
    names = load(r, "t", n + 37, lambda i: {"activity": "high" if i < n else "low"})
    runner = SegmentRunner(r, catalog)
    page = run(runner.page("t", "activity = high", None, limit=100))
    assert page.total == n and page.members == names[:min(n, 100)]
    if n <= 100:  # fits: no cursor and no snapshot left behind
        assert page.next_cursor is None and tmp_keys(r) == []
        return
    assert page.next_cursor is not None and len(tmp_keys(r)) == 1
    assert decode_cursor(page.next_cursor)[1] == 100  # the next member's bit
    rest = run(runner.page("t", "activity = high", page.next_cursor, limit=100))
    assert rest.members == names[100:n] and rest.next_cursor is None and rest.total == n
    assert tmp_keys(r) == []


def test_page_boundaries_inside_bytes_keep_order_and_count(r, catalog):
    """Members at ids 3, 5, 6, 7, 8, 12, ... (a pattern crossing byte edges at odd offsets);
    every page size from 1 to 11 splits bytes differently."""
    member = {i for i in range(400) if i % 7 in (3, 5) or i % 11 == 8}
    names = load(r, "t", 400, lambda i: {"activity": "high" if i in member else "low"})
    want = [names[i] for i in sorted(member)]
    runner = SegmentRunner(r, catalog)
    for size in range(1, 12):
        got, pages = walk(runner, "t", "activity = high", [size])
        assert got == want, size
        assert all(len(p.members) == size for p in pages[:-1]), size
        assert {p.total for p in pages} == {len(want)}
        starts = [decode_cursor(p.next_cursor)[1] for p in pages if p.next_cursor]
        assert any(s % 8 for s in starts), size  # some pages did start inside a byte
    assert tmp_keys(r) == []


def test_not_expressions_page_over_every_user_of_the_tenant(r, catalog):
    """``NOT x`` includes users without the tag; ``!=`` does not."""
    def tags(i: int) -> dict[str, Any]:
        if i % 3 == 0:
            return {}
        return {"activity": "high" if i % 3 == 1 else "low", "refunded": i % 5 == 0}

    names = load(r, "t", 1000, tags)
    runner = SegmentRunner(r, catalog)
    cases = {
        "NOT activity = high": [i for i in range(1000) if i % 3 != 1],
        "activity != high": [i for i in range(1000) if i % 3 == 2],
        "NOT tag:refunded": [i for i in range(1000) if not (i % 3 and i % 5 == 0)],
        "NOT (activity = high OR activity = low)": [i for i in range(1000) if i % 3 == 0],
        "tag:activity AND NOT refunded = true": [i for i in range(1000)
                                                 if i % 3 and i % 5],
    }
    for expr, ids in cases.items():
        got, pages = walk(runner, "t", expr, [100, 13, 250])
        assert got == [names[i] for i in ids], expr
        assert pages[0].total == len(ids), expr
    assert tmp_keys(r) == []


def test_sparse_and_clustered_segments_with_small_chunks(r, catalog):
    """Members only near the end of 40k ids (zero runs the reader jumps with BITPOS) and a
    thin uniform spread; a 64-byte chunk forces many reads."""
    rnd = random.Random(3)
    late = set(range(39_000, 40_000, 3)) | {7}
    thin = set(rnd.sample(range(40_000), 250))
    names = load(r, "t", 40_000, lambda i: {"activity": "high" if i in late else "low",
                                            "refunded": i in thin})
    for chunk in (64, 16_384):
        runner = SegmentRunner(r, catalog, read_chunk=chunk)
        got, _ = walk(runner, "t", "activity = high", [100, 1, 77])
        assert got == [names[i] for i in sorted(late)], chunk
        got, _ = walk(runner, "t", "refunded = true", [100])
        assert got == [names[i] for i in sorted(thin)], chunk
    assert tmp_keys(r) == []


def test_later_pages_see_the_first_pages_snapshot(r, catalog):
    names = load(r, "t", 300, lambda i: {"activity": "high" if i % 2 else "low"})
    runner = SegmentRunner(r, catalog)
    first = run(runner.page("t", "activity = high", None, limit=100))
    load(r, "t", 300, lambda i: {"activity": "high" if i % 2 == 0 else "low"})  # flip all
    rest = run(runner.page("t", "activity = high", first.next_cursor, limit=100))
    assert first.members + rest.members == [names[i] for i in range(1, 300, 2)]
    assert rest.total == first.total == 150 and rest.next_cursor is None
    fresh = run(runner.page("t", "activity = high", None, limit=100))
    assert fresh.members == [names[i] for i in range(0, 200, 2)]


def test_tenants_stay_apart_and_cursors_do_not_cross(r, catalog):
    a = load(r, "acme", 250, lambda i: {"activity": "high"})
    b = load(r, "globex", 120, lambda i: {"activity": "high" if i % 2 else "low"})
    runner = SegmentRunner(r, catalog)
    got_a, _ = walk(runner, "acme", "activity = high", [100])
    got_b, _ = walk(runner, "globex", "NOT activity = low", [100])
    assert got_a == a and got_b == b[1::2]
    page = run(runner.page("acme", "activity = high", None, limit=100))
    with pytest.raises(CursorError, match="expired"):  # no such snapshot under globex
        run(runner.page("globex", "activity = high", page.next_cursor, limit=100))
    rest = run(runner.page("acme", "activity = high", page.next_cursor, limit=200))
    assert rest.members == a[100:]


# -- cost follows the page -------------------------------------------------------------------

def test_first_page_reads_and_decodes_only_what_it_returns(r, catalog, monkeypatch):
    """A 100-member page of a dense 100k-user segment reads a few hundred bytes (not the
    12.5 KB bitmap) and decodes 101 bits; a sparse one reads more, but stops at 101 bits."""
    rnd = random.Random(9)
    load(r, "t", 100_000, lambda i: {"activity": "high" if i % 2 else "low",
                                     "refunded": rnd.random() < 0.01})
    calls: list[tuple[int, int]] = []
    real = sr.bit_positions

    def spy(data: bytes, base: int = 0, start: int = 0, limit: int | None = None) -> list[int]:
        out = real(data, base, start, limit)
        calls.append((len(data), len(out)))
        return out

    monkeypatch.setattr(sr, "bit_positions", spy)
    runner = SegmentRunner(r, catalog)
    page = run(runner.page("t", "activity = high", None, limit=100))
    assert len(page.members) == 100 and page.total == 50_000
    assert sum(n for n, _ in calls) <= 512 and sum(k for _, k in calls) == 101
    calls.clear()
    page = run(runner.page("t", "refunded = true", None, limit=100))
    assert len(page.members) == 100 and sum(k for _, k in calls) == 101
    assert sum(n for n, _ in calls) < 12_500  # sized from the density, not the whole bitmap


def test_profile_store_reads_segments_and_user_ids_in_order(r, redis_url):
    from stream_app.serving.store import ProfileStore

    names = load(r, "t", 700, lambda i: {"activity": "high" if i % 5 == 2 else "low"})
    store = ProfileStore(f"{redis_url}/{r.connection_pool.connection_kwargs['db']}")
    assert store.segment("t", "activity", "high") == {names[i] for i in range(2, 700, 5)}
    ids = [650, 3, 129, 128, 9_999, 0]  # across id hashes, one never assigned
    assert store.user_ids("t", ids) == [names[650], names[3], names[129], names[128], names[0]]
    assert store.user_ids("t", []) == [] and store.user_id_number("t", names[129]) == 129
