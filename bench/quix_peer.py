"""The peer: the same windowed per-user counting written with Quix Streams, on the same input.

Per event: decode JSON, take the event time from ``ts``, count the user's events (a state
record per user) and their events in 1-hour tumbling windows (RocksDB state with changelogs,
Quix's defaults). Run as a child process by the benchmark::

    python -m bench.quix_peer --bootstrap 127.0.0.1:9092 --expect 150000 --out res.json

It writes ``{"samples": [[t, count], ...]}`` once ``expect`` events are processed (or at the
timeout) and exits.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--state-dir", default="var/bench/quix-state")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--fetch-wait-ms", type=int, default=50)
    args = ap.parse_args()

    from quixstreams import Application  # noqa: PLC0415

    from stream_app.contract import load_contract  # noqa: PLC0415

    samples: list[tuple[float, int]] = []
    count = {"n": 0, "cpu0": 0.0}
    started = time.monotonic()

    def processed(topic: str, partition: int, offset: int) -> None:
        count["n"] += 1
        n = count["n"]
        if n == 1:
            count["cpu0"] = time.process_time()
        if n % 500 == 0 or n == args.expect:
            samples.append((time.monotonic(), n))
        if n >= args.expect or time.monotonic() - started > args.timeout:
            app.stop()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group="bench-quix",
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
        on_message_processed=processed,
        consumer_extra_config={"fetch.wait.max.ms": args.fetch_wait_ms},
    )

    def event_time(value: Any, headers: Any, ts: int, ts_type: Any) -> int:
        return int(value["ts"])

    def count_user(value: dict[str, Any], state: Any) -> dict[str, Any]:
        n = state.get("n", 0) + 1
        state.set("n", n)
        value["n"] = n
        return value

    for name in load_contract().input_topics():
        topic = app.topic(name, value_deserializer="json", timestamp_extractor=event_time)
        sdf = app.dataframe(topic)
        sdf = sdf.apply(count_user, stateful=True)
        sdf.tumbling_window(timedelta(hours=1), grace_ms=timedelta(days=3)).count().final()
    app.run()
    Path(args.out).write_text(json.dumps({"samples": samples, "processed": count["n"],
                                          "cpu_s": time.process_time() - count["cpu0"]}))


if __name__ == "__main__":
    main()
