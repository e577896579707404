"""Conductor cost: CPU µs per record of handing a fetched record to its stream's queue, Faust's
conductor against stream-app's lean one (``stream_app.app.fast_conductor``), in-process.

Both hand the same records (raw key and value, one channel, as the worker's inputs) to a fresh
channel queue through the conductor's ``on_message``, run the way the eager drain runs it (one
``send`` of the coroutine, no task). The two alternate, ``--rounds`` times each (who goes first
alternates); every pass checks that the queue holds an event per record with the record's
key, value and message.

Usage::

    python -m bench.conductor_cost                  # 20k records, 7 rounds
    python -m bench.conductor_cost --records 50000 --rounds 9

Example (a tiny run):
    >>> res = run(records=200, rounds=1)
    >>> sorted(res["median_us"]), res["same_events"]
    (['faust', 'lean'], True)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import faust
from faust.transport.conductor import Conductor
from faust.types import TP, Message

from stream_app.app.fast_conductor import LeanConductor

TOPIC = "bench.conductor"


def _pass(app: Any, cls: type, msgs: list[Message]) -> tuple[float, bool]:
    """One pass of ``msgs`` through a fresh conductor of ``cls``: CPU seconds, events right."""
    tp = msgs[0].tp
    chan = app.topic(TOPIC, key_serializer="raw", value_serializer="raw").clone(
        is_iterator=True)
    conductor = cls(app)
    conductor._tp_to_callback[tp] = conductor._compiler.build(conductor, tp, {chan})
    on_message = conductor.on_message
    t0 = time.process_time()
    for msg in msgs:
        coro = on_message(msg)
        try:
            coro.send(None)
        except StopIteration:
            continue
        coro.close()                       # it would wait: not expected with room
        return 0.0, False
    cpu = time.process_time() - t0
    queue = chan.queue
    events = [queue.get_nowait() for _ in range(queue.qsize())]
    same = len(events) == len(msgs) and all(
        ev.message is m and ev.key == m.key and ev.value == m.value
        for ev, m in zip(events, msgs, strict=False))
    return cpu, same


def run(records: int = 20_000, rounds: int = 7) -> dict[str, Any]:
    """Alternating passes of both conductors; medians in µs per record."""
    app = faust.App("bench-conductor", broker="kafka://127.0.0.1:1", store="memory://",
                    stream_buffer_maxsize=records + 1)
    app.flow_control.resume()
    tp = TP(TOPIC, 0)
    sides = {"faust": Conductor, "lean": LeanConductor}
    cpu: dict[str, list[float]] = {k: [] for k in sides}
    same = True

    async def passes() -> None:
        nonlocal same
        for r in range(rounds):
            for name in (("faust", "lean") if r % 2 == 0 else ("lean", "faust")):
                msgs = [Message(TOPIC, 0, i, 1.0, 0, None, b"u%d" % (i % 997), b"v" * 220,
                                None, 4, 220, tp=tp) for i in range(records)]
                secs, ok = _pass(app, sides[name], msgs)
                same = same and ok
                cpu[name].append(secs / records * 1e6)

    asyncio.run(passes())
    med = {k: round(statistics.median(v), 2) for k, v in cpu.items()}
    return {"records": records, "rounds": rounds, "same_events": same, "median_us": med,
            "us": {k: [round(x, 2) for x in v] for k, v in cpu.items()}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    res = run(args.records, args.rounds)
    med = res["median_us"]
    print(f"conductor hand-over over {res['records']:,} records x {res['rounds']} rounds, "
          f"same events: {res['same_events']}")
    print(f"  Faust {med['faust']} µs, lean {med['lean']} µs per record "
          f"({med['faust'] / med['lean']:.2f}x); rounds {res['us']}")


if __name__ == "__main__":
    main()
