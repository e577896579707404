"""Item 7 measurement: state size and memory per user at 100k users (pure engine, no broker).

Run: ``.venv/bin/python -m tests.faults.measure_state [users] [events_per_user]``. Prints the
JSON bytes of a state record (what each changelog write carries) and the Python heap per user
(what a worker holds in its in-memory table), then the effect of the idle-user TTL.
"""

from __future__ import annotations

import random
import sys
import time

import orjson

from stream_app.events import Event
from tests.faults.workload import DAY, T0, TYPES, engine


def rss() -> int:
    """Resident set size of this process in bytes (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def main(n_users: int = 100_000, per_user: int = 8) -> None:
    eng = engine()
    rnd = random.Random(1)
    base_mem = rss()
    t0 = time.perf_counter()
    table: dict[str, dict] = {}
    for u in range(n_users):
        uid = f"m-{u}"
        st = None
        for i in range(per_user):
            stream, etype, props = rnd.choice(TYPES)
            ts = T0 + int(rnd.random() * 30 * DAY)
            st = eng.on_event(st, Event(f"{uid}-{i}", uid, ts, etype, stream,
                                        props=props(rnd))).state
        table[uid] = st
    took = time.perf_counter() - t0
    heap = rss() - base_mem
    sizes = sorted(len(orjson.dumps(s)) for s in table.values())
    print(f"{n_users:,} users x {per_user} events: {took:.1f}s "
          f"({n_users * per_user / took:,.0f} events/s, pure engine)")
    print(f"state JSON bytes per user: mean {sum(sizes) / len(sizes):,.0f}, "
          f"p50 {sizes[len(sizes) // 2]:,}, p99 {sizes[int(len(sizes) * 0.99)]:,}, "
          f"max {sizes[-1]:,}")
    print(f"process memory per user (in-memory table, RSS growth): {heap / n_users:,.0f} bytes "
          f"({heap / 2**20:,.0f} MiB for {n_users:,})")
    later = T0 + 30 * DAY + eng.state_ttl_ms + DAY
    expired = sum(1 for s in table.values() if eng.on_tick(s, later).state is None)
    print(f"idle beyond the TTL ({eng.state_ttl_ms // DAY} days): {expired:,} of {n_users:,} "
          "states expire on the next tick")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
