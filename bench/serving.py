"""Serving: profile lookup and segment query latency through the HTTP API over many users.

Tag profiles come from the real tag engine run over the head of the workload; Redis is filled
with ``users`` users holding those profiles (cycled) in the projection's key layout (user
hash, ``seg:`` sets, ``num:`` sorted sets, tenant user set; no timelines or why records,
which segment queries do not read). ``stream-app api`` is started as a child process and
queried over HTTP, one request at a time. The API's segment size cache is off
(``STREAM_APP_SEGMENT_SIZE_CACHE_S=0``), so every size is computed: these are the
uncached latencies (a cached size costs what a single-tag size does). Each first page of 100
members (which snapshots the segment) is followed by the next page by cursor, timed apart.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.measure import percentiles
from bench.procs import REPO

TENANT = "default"
TOKEN = "bench-token"


def tag_profiles(records: list, limit: int = 20_000) -> list[dict[str, Any]]:
    """Final tags of each user after the engine ran over the first ``limit`` records."""
    from stream_app.app.runtime import build_engine  # noqa: PLC0415
    from stream_app.config import Settings  # noqa: PLC0415
    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.events import parse_event  # noqa: PLC0415

    contract = load_contract()
    eng = build_engine(Settings())
    states: dict[str, Any] = {}
    for topic, _, value, _ in records[:limit]:
        ev = parse_event(value, contract.stream_of(topic))
        r = eng.on_event(states.get(ev.user_id), ev)
        if r.state is not None:
            states[ev.user_id] = r.state
    return [dict(s["tags"]) for s in states.values() if s.get("tags")]


def _numeric(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def fill(url: str, profiles: list[dict[str, Any]], users: int, chunk: int = 20_000) -> float:
    """Write ``users`` users (profiles cycled) into Redis, bitmap layout in bulk (integer
    ids, ``SETRANGE`` of each chunk's bitmap bytes); seconds taken."""
    import redis  # noqa: PLC0415

    from stream_app.config import get_settings  # noqa: PLC0415
    from stream_app.serving.bulk import bulk_commands  # noqa: PLC0415

    edges = sorted(float(x) for x in get_settings().redis_num_edges.split(",") if x.strip())
    r = redis.Redis.from_url(url)
    t0 = time.perf_counter()
    for start in range(0, users, chunk):
        batch = [(f"b{i}", profiles[i % len(profiles)])
                 for i in range(start, min(users, start + chunk))]
        pipe = r.pipeline(transaction=False)
        for cmd in bulk_commands(TENANT, batch, start, edges):
            pipe.execute_command(*cmd)
        pipe.execute()
    r.close()
    return time.perf_counter() - t0


def expressions(profiles: list[dict[str, Any]]) -> dict[str, str]:
    """Segment expressions over the most common tag values (narrow, wide, with NOT/range)."""
    c: Counter = Counter()
    nums: Counter = Counter()
    for tags in profiles:
        for k, v in tags.items():
            if isinstance(v, str) and v.replace("_", "").isalnum():
                c[(k, v)] += 1
            elif _numeric(v):
                nums[k] += 1
    top = [kv for kv, _ in c.most_common(12)]
    (a, av), (b, bv) = top[0], next(kv for kv in top[1:] if kv[0] != top[0][0])
    d, dv = next(kv for kv in top[2:] if kv[0] not in (a, b))
    out = {"one_tag": f"{a} = {av}",
           "and_two": f"{a} = {av} AND {b} = {bv}",
           "and_not_or": f"({a} = {av} OR {d} = {dv}) AND NOT {b} = {bv}"}
    if nums:
        n = nums.most_common(1)[0][0]
        out["range_and"] = f"{n} >= 1 AND {a} = {av}"
    return out


def _repeat(fn: Callable[[], Any], n: int, budget_s: float, least: int = 10) -> list[Any]:
    """``fn()`` up to ``n`` times, stopping after ``budget_s`` once ``least`` ran."""
    out: list[Any] = []
    t0 = time.monotonic()
    while len(out) < n and (len(out) < least or time.monotonic() - t0 < budget_s):
        out.append(fn())
    return out


def start_api(redis_url: str, workdir: Path, env: dict[str, str] | None = None,
              cwd: Path = REPO) -> tuple[Any, int]:
    """``stream-app api`` as a child process on a free port (size cache off); (process, port).

    ``cwd``: the source tree whose ``stream_app`` runs (``python -m`` puts it first on the
    path), e.g. an exported older commit for a same-run before/after comparison.
    """
    from stream_app.services.process import ManagedProcess, free_port, port_open, wait_for  # noqa: PLC0415

    port = free_port()
    api = ManagedProcess(
        "api", [sys.executable, "-m", "stream_app", "api", "--port", str(port),
                "--log-level", "warning"],
        log=workdir / "logs" / f"api-{port}.log",
        env={**(env or {}), "STREAM_APP_REDIS_URL": redis_url, "STREAM_APP_API_TOKEN": TOKEN,
             "STREAM_APP_SEGMENT_SIZE_CACHE_S": "0"}, cwd=cwd)
    try:
        wait_for(lambda: port_open(port), 60, "stream-app api", proc=api.proc, log=api.log)
    except BaseException:
        api.stop()
        raise
    return api, port


def measure_api(port: int, users: int, exprs: dict[str, str], log: Callable[[str], None] = print,
                requests: int = 300, budget_s: float = 8.0, page: int = 100) -> dict[str, Any]:
    """Latency of profile GETs and, per expression, of the size, the first page of ``page``
    members and the page after it (by cursor) through the HTTP API on ``port``."""
    import httpx  # noqa: PLC0415

    res: dict[str, Any] = {}
    base = f"http://127.0.0.1:{port}/v1/tenants/{TENANT}"
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as cl:
        rng = random.Random(1)

        def timed(url: str, params: dict | None = None) -> tuple[float, Any]:
            t = time.perf_counter()
            resp = cl.get(url, params=params)
            ms = (time.perf_counter() - t) * 1000
            resp.raise_for_status()
            return ms, resp

        for _ in range(20):  # warm up (connections, catalog, value caches)
            timed(f"{base}/users/b{rng.randrange(users)}")
        lat = [timed(f"{base}/users/b{rng.randrange(users)}")[0] for _ in range(requests)]
        res["profile_ms"] = percentiles(lat, (50, 99))
        res["segments"] = {}

        def two_pages(e: str, n: int) -> tuple[float, float | None]:
            """Time the first page of ``e`` (``n`` members), then the next one by cursor."""
            ms, resp = timed(f"{base}/segments/members", {"expr": e, "limit": page})
            body = resp.json()
            if len(body["members"]) != min(page, n) or body["total"] != n:
                raise RuntimeError(f"first page of {e!r}: {len(body['members'])} members, "
                                   f"total {body['total']} (size {n})")
            if not body["next_cursor"]:
                return ms, None
            nms, _ = timed(f"{base}/segments/members",
                           {"expr": e, "limit": page, "cursor": body["next_cursor"]})
            return ms, nms

        for name, expr in exprs.items():
            t_cold = time.perf_counter()
            first = cl.get(f"{base}/segments/size", params={"expr": expr})
            cold_ms = round((time.perf_counter() - t_cold) * 1000, 2)
            if first.status_code != 200:  # e.g. the API's 5 s Redis timeout: record it
                res["segments"][name] = {"expr": expr, "first_size_ms": cold_ms,
                                         "size_error": f"{first.status_code} {first.text}"}
                log(f"serving: {name}: {res['segments'][name]}")
                continue
            size = first.json()["size"]
            lat = _repeat(lambda e=expr: timed(f"{base}/segments/size", {"expr": e})[0],
                          max(requests // 3, 30), budget_s)
            row = {"expr": expr, "size": size, "first_size_ms": cold_ms,
                   "size_ms": percentiles(lat, (50, 99))}
            try:  # a first page snapshots the whole segment: may hit the API's timeout
                pairs = _repeat(lambda e=expr, n=size: two_pages(e, n),
                                max(requests // 10, 20), budget_s, least=5)
                row["first_page_ms"] = percentiles([a for a, _ in pairs], (50, 99))
                nexts = [b for _, b in pairs if b is not None]
                if nexts:
                    row["next_page_ms"] = percentiles(nexts, (50, 99))
            except httpx.HTTPStatusError as exc:
                row["first_page_error"] = f"{exc.response.status_code} {exc.response.text}"
            res["segments"][name] = row
            log(f"serving: {name} size {size}: {row}")
    return res


def run(stack: Any, wl: Any, users: int, log: Callable[[str], None] = print,
        requests: int = 300, budget_s: float = 8.0) -> dict[str, Any]:
    """Fill ``stack``'s Redis with ``users`` users and measure the API over them."""
    import redis  # noqa: PLC0415

    profiles = tag_profiles(wl.records)
    fill_s = fill(stack.redis.url, profiles, users)
    log(f"serving: {users} users written in {fill_s:.0f}s ({len(profiles)} distinct profiles)")
    rc = redis.Redis.from_url(stack.redis.url)
    version = rc.info("server")["redis_version"]
    rc.close()
    log(f"serving: redis {version}")
    res: dict[str, Any] = {"users": users, "fill_s": round(fill_s, 1),
                           "profiles": len(profiles), "redis_version": version,
                           "size_cache": "off"}
    api, port = start_api(stack.redis.url, stack.workdir, stack.settings_env())
    try:
        res.update(measure_api(port, users, expressions(profiles), log, requests, budget_s))
    finally:
        api.stop()
    return res
