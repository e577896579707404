"""State growth: how the worker's per-event CPU and its users' state size change along a long
run, in-process (the worker's own per-event code as :mod:`bench.glue_cost` drives it: no
Kafka, no Redis, a simulated wall clock).

Why: a quick benchmark feeds the first 25k events of the simulation, when most users have
just arrived; the full one feeds 300k, when they have weeks of history. The per-event cost
follows the state each event decodes and encodes, and this shows by how much, and which parts
of the state grow.

Usage::

    python -m bench.state_growth                        # 300k events, a line per 25k
    python -m bench.state_growth --events 100000 --chunk 10000 --parts 12

Each line: CPU µs per event of that stretch (engine and scorer calls apart), users held,
mean state bytes, output records per event; then the largest parts of the final states
(bytes per user, top-level keys and the scorer's ``sc`` keys) and ``orjson`` decode and encode
µs per state, all states and without the scorer's checkpoints and snapshots (``sc.cp``,
``sc.sn``: read only on label events and scheduled snapshots), and the table record's decode
and encode as the worker does them (the hot part parsed, the cold block copied:
:mod:`stream_app.state.codec`).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from typing import Any

import orjson

from bench import glue_cost
from bench.workload import build, cached
from stream_app.state.codec import COLD_KEYS, decode, encode, merged


def part_sizes(states: list[dict[str, Any]]) -> tuple[collections.Counter, collections.Counter]:
    """Encoded bytes of each top-level key and each ``sc`` key, summed over ``states``.

    Example:
        >>> top, sc = part_sizes([{"n": 1, "sc": {"cp": [1, 2]}}])
        >>> top["n"], top["sc"], sc["cp"]
        (6, 18, 11)
    """
    top: collections.Counter = collections.Counter()
    sc: collections.Counter = collections.Counter()
    for s in states:
        for k, v in s.items():
            top[k] += len(orjson.dumps(v)) + len(k) + 4
            if k == "sc" and isinstance(v, dict):
                for k2, v2 in v.items():
                    sc[k2] += len(orjson.dumps(v2)) + len(k2) + 4
    return top, sc


def codec_us(raws: list[bytes], objs: list[Any], repeat: int = 3) -> dict[str, float]:
    """Best-of-``repeat`` µs per state to decode ``raws`` and to encode ``objs`` (the same
    states decoded)."""
    dec, enc = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        for r in raws:
            orjson.loads(r)
        dec.append(time.perf_counter() - t)
        t = time.perf_counter()
        for o in objs:
            orjson.dumps(o)
        enc.append(time.perf_counter() - t)
    n = max(len(raws), 1)
    return {"loads": round(min(dec) / n * 1e6, 2), "dumps": round(min(enc) / n * 1e6, 2)}


def record_us(raws: list[bytes], repeat: int = 3) -> dict[str, float]:
    """Best-of-``repeat`` µs per table record for what the worker does on an event that does
    not read the scorer's cold block: decode the hot part, encode it with the block copied
    (:mod:`stream_app.state.codec`)."""
    pairs = [decode(r) for r in raws]
    dec, enc = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        for r in raws:
            decode(r)
        dec.append(time.perf_counter() - t)
        t = time.perf_counter()
        for state, cold in pairs:
            encode(state, cold)
        enc.append(time.perf_counter() - t)
    n = max(len(raws), 1)
    return {"decode": round(min(dec) / n * 1e6, 2), "encode": round(min(enc) / n * 1e6, 2)}


def without_cold(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` without the scorer's checkpoints and snapshots.

    Example:
        >>> without_cold({"n": 1, "sc": {"cp": [], "sn": {}, "b": 2}})
        {'n': 1, 'sc': {'b': 2}}
    """
    sc = state.get("sc")
    if not isinstance(sc, dict):
        return state
    return {**state, "sc": {k: v for k, v in sc.items() if k not in COLD_KEYS}}


def run(events: int, chunk: int, users: int, seed: int, parts: int) -> None:
    wl = cached(glue_cost.VAR / f"workload-u{users}-s{seed}-{max(events, 225_000)}.pkl",
                lambda: build(users, seed, max_events=max(events, 225_000)))
    mods = glue_cost.import_tree(None)
    side = glue_cost.Side(mods, mods, split=True)
    msgs = glue_cost.messages(wl, events, side.agents.settings.partitions)
    core_before = 0.0
    print(f"{'from':>8} {'µs/event':>9} {'engine+scorer':>14} {'users':>7} {'state B':>8}  "
          "outputs per event")
    for start in range(0, len(msgs), chunk):
        part = msgs[start:start + chunk]
        first_out = len(side.producer.records)
        cpu = side.run(part, start)
        core = side.core_cpu[0] - core_before
        core_before = side.core_cpu[0]
        vals = side.store.cache.vals
        outs = collections.Counter(r[0] for r in side.producer.records[first_out:])
        mean = statistics.mean(map(len, vals.values())) if vals else 0
        per = {k: round(v / len(part), 2) for k, v in outs.most_common(3)}
        print(f"{start:>8,} {cpu / len(part) * 1e6:>9.1f} {core / len(part) * 1e6:>14.1f} "
              f"{len(vals):>7,} {mean:>8.0f}  {per}", flush=True)
    records = list(side.store.cache.vals.values())
    # the states whole, in the scorer's layout (checkpoints and snapshots inside sc), and
    # their records as the layout before the cold block wrote them
    states = [merged(orjson.loads(r)) for r in records]
    raws = [orjson.dumps(s) for s in states]
    n = max(len(states), 1)
    top, sc = part_sizes(states)
    print("\nlargest parts of the final states (bytes per user):")
    print("  " + ", ".join(f"{k} {v / n:.0f}" for k, v in top.most_common(parts)))
    print("  sc: " + ", ".join(f"{k} {v / n:.0f}" for k, v in sc.most_common(parts)))
    hot_objs = [without_cold(s) for s in states]
    hot = [orjson.dumps(s) for s in hot_objs]
    print(f"\norjson µs per state: all {codec_us(raws, states)} (mean "
          f"{statistics.mean(map(len, raws)):.0f} B); without sc.cp and sc.sn "
          f"{codec_us(hot, hot_objs)} (mean "
          f"{statistics.mean(map(len, hot)):.0f} B)")
    print(f"table record (hot part parsed, cold block copied): {record_us(records)} (mean "
          f"{statistics.mean(map(len, records)):.0f} B)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.state_growth",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--chunk", type=int, default=25_000)
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--parts", type=int, default=8, help="largest state parts listed")
    a = p.parse_args(argv)
    run(a.events, a.chunk, a.users, a.seed, a.parts)


if __name__ == "__main__":
    main()
