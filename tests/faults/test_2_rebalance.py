"""Item 2: start a second and a third worker mid-stream, then stop one: no count lost or
doubled, every partition processed; the time each membership change takes is measured."""

from __future__ import annotations

import time

import pytest

from tests.faults.workload import (
    DlqWatch,
    Feeder,
    TableWatch,
    account,
    base_ts,
    explain_missing,
    live_workers,
    make_events,
    reference,
)
from tests.helpers import TopicReader, wait_until

pytestmark = pytest.mark.faults


def _all_ready(stack) -> float:
    t0 = time.monotonic()
    wait_until(lambda: all(w.ready() for w in live_workers(stack)), timeout=120,
               interval=0.5, what="every live worker ready")
    return time.monotonic() - t0


def test_scale_up_to_three_then_down_mid_stream(fstack, report):
    events = make_events(n_users=150, per_user=16, base=base_ts(), span_days=10, seed=12,
                         prefix="rebal")
    ref, _ = reference(events)
    table = TableWatch(fstack.bootstrap, fstack.partitions)
    tags = TopicReader(fstack.bootstrap, "tags.changes", fstack.partitions)
    dlq = DlqWatch(fstack.bootstrap, fstack.partitions)
    feeder = Feeder(fstack.bootstrap, events, rate=60.0)
    steps: list[tuple[str, float]] = []
    feeder.start()
    try:
        time.sleep(3)
        for name in ("join 2nd", "join 3rd"):
            t0 = time.monotonic()
            fstack.add_worker(wait=False)
            _all_ready(fstack)
            steps.append((name, time.monotonic() - t0))
            time.sleep(2)
        assert len(live_workers(fstack)) >= 3
        victim = live_workers(fstack)[0]
        t0 = time.monotonic()
        victim.stop()
        _all_ready(fstack)
        steps.append(("stop 1", time.monotonic() - t0))
        feeder.join(300)
        assert feeder.undelivered == 0
        catch_up = table.wait_counted(ref, timeout=90)
        acc = account(table.states, ref, len(events))
        in_dlq = len(dlq.for_keys(set(ref)))
        partitions = {table.reader.partition_of[u] for u in ref if u in table.reader.partition_of}
        report.add("rebalance 1->2->3->2 workers", len(events), acc.processed, in_dlq,
                   acc.lost, acc.duplicated, max(s for _, s in steps),
                   "; ".join(f"{n} {s:.1f}s" for n, s in steps) + f"; catch-up {catch_up:.1f}s")
        assert acc.lost == 0 and acc.duplicated == 0, (
            f"{acc}; missing: "
            f"{explain_missing(acc, events, table.reader.partition_of, tags.poll())}")
        assert not acc.mismatched, acc.mismatched[:5]
        assert partitions == set(range(fstack.partitions)), partitions
        assert in_dlq == 0
    finally:
        feeder.join(5)
        table.close()
        tags.close()
        dlq.close()
