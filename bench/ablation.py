"""What each part of the worker costs: the same backlog through stream-app workers with parts
switched off (``STREAM_APP_DISABLE``), alternating variants, in one run.

``python -m bench.ablation [--events 15000] [--rounds 2] [--variants full,agent,...]``

``agent`` consumes and counts only: the framework floor of the worker (its topics, tables,
timers, Redis writer and anomaly agent idle); ``faust_writes`` writes the state through
Faust's table API instead of :class:`~stream_app.app.state_store.DirectTableWriter`.
Results: ``bench/results/ablation-<date>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench import systems
from bench.measure import CpuProbe
from bench.run import REPO, fresh_stack, log, parse_args, workload

#: variant -> the worker's environment
VARIANTS: dict[str, dict[str, str]] = {
    "full": {}, "agent": {"STREAM_APP_DISABLE": "agent"},
    "no_scoring": {"STREAM_APP_DISABLE": "scoring"},
    "no_business": {"STREAM_APP_DISABLE": "business"},
    "no_redis": {"STREAM_APP_DISABLE": "redis"},
    "no_redis_scoring_business": {"STREAM_APP_DISABLE": "redis,scoring,business"},
    # the users table's state stored with no changelog record: the most one changelog record
    # per user per commit could save (items 16, 39; unsafe, measurement only)
    "no_changelog": {"STREAM_APP_DISABLE": "changelog"},
    # the state written through Faust's table API (a future per write) instead of directly
    "faust_writes": {"STREAM_APP_STATE_WRITES": "faust"},
    # the users table in memory (no RocksDB; a restart reads the whole changelog)
    "memory_store": {"STREAM_APP_TABLE_STORE": "memory://"},
    # RocksDB's write-ahead log on (off by default: the changelog is the log, app/store_marker.py)
    "rocksdb_wal": {"STREAM_APP_TABLE_ROCKSDB_WAL": "true"},
    # the scorer's checkpoints and snapshots parsed and encoded with the state on every event
    # (the record's cold block not used, stream_app/state/codec.py)
    "cold_inline": {"STREAM_APP_DISABLE": "cold_block"},
    # the cold block written as before item 46: every feature name in full (no cold_pack)
    "cold_unpacked": {"STREAM_APP_DISABLE": "cold_pack"},
    # RocksDB read and written per event (no write-back cache, app/state_cache.py)
    "no_state_cache": {"STREAM_APP_TABLE_CACHE_USERS": "0"},
    # item 38: every event parses its user's record (no parsed states kept)
    "no_decoded_states": {"STREAM_APP_DECODED_STATES": "0"},
    # Faust's own per-record hand-over of fetched batches (app/eager_drain.py off)
    "no_eager_drain": {"STREAM_APP_EAGER_DRAIN": "false"},
    # Faust's own conductor: index lock, registry decode (app/fast_conductor.py off)
    "faust_conductor": {"STREAM_APP_LEAN_CONDUCTOR": "false"},
    # 25 ms pinned (the default since session 8, so the same as "full")
    "linger_25ms": {"STREAM_APP_PRODUCER_LINGER_MS": "25"},
    # the worker's producer gathering outputs for 5 ms (the default until session 8; more,
    # smaller requests)
    "linger_5ms": {"STREAM_APP_PRODUCER_LINGER_MS": "5"},
}


def run(events: int, rounds: int, variants: list[str]) -> dict[str, Any]:
    """CPU µs/event and events/s per variant, ``rounds`` alternating passes."""
    args = parse_args(["--quick", "--events", str(events)])
    wl = workload(args)
    recs = wl.records[:events]
    out: dict[str, Any] = {v: [] for v in variants}
    for r in range(rounds):
        for v in variants:
            s = fresh_stack(f"ablation-{v}", args, env=VARIANTS[v])
            try:
                ws, _ = systems.start_workers(s, "stream_app", 1, "worker")
                probe = CpuProbe({"worker": ws[0].process.pid, "tansu": s.broker.process.pid,
                                  "redis-server": s.redis.process.pid})
                res = systems.throughput(s, ws, recs, probe=probe)
                per = res.get("cpu", {}).get("steady", {}).get("us_per_event", {})
                out[v].append({"eps": res["eps"], "cpu_us_per_event": res["cpu_us_per_event"],
                               "broker_us_per_event": per.get("tansu"),
                               "redis_us_per_event": per.get("redis-server"),
                               "disk_bytes_per_event": res["disk_bytes_per_event"]})
                log(f"round {r + 1} {v}: {out[v][-1]}")
                systems.stop_all(ws)
            finally:
                s.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=15_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--variants", default="full,agent")
    a = ap.parse_args()
    res = run(a.events, a.rounds, [v.strip() for v in a.variants.split(",")])
    path = REPO / "bench" / "results" / f"ablation-{time.strftime('%Y-%m-%dT%H%M')}.json"
    path.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
