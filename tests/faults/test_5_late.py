"""Item 5: late and out-of-order events. Within the grace period a shuffled order gives the
same tags as the ordered input; an event older than the grace period goes to the DLQ with
reason "late" and is counted in ``stream_app_late_events`` (never silently dropped)."""

from __future__ import annotations

import random
import uuid

import pytest

from tests.faults.workload import (
    DAY,
    GRACE_MS,
    DlqWatch,
    TableWatch,
    base_ts,
    comparable_tags,
    counted,
    live_workers,
    make_events,
    reference,
    scrape,
    send_all,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.faults


def test_shuffled_within_grace_equals_ordered_and_late_goes_to_dlq(fstack, report):
    base = base_ts()
    ordered = make_events(n_users=60, per_user=14, base=base, span_days=10, seed=21,
                          prefix="ord")
    twin = {e["user_id"]: e["user_id"].replace("ord-", "shuf-", 1) for e in ordered}
    shuffled = [dict(e, user_id=twin[e["user_id"]], event_id=uuid.uuid4().hex)
                for e in ordered]
    random.Random(3).shuffle(shuffled)
    ref, _ = reference(ordered)
    ref_shuf = {twin[u]: s for u, s in ref.items()}
    table = TableWatch(fstack.bootstrap, fstack.partitions)
    dlq = DlqWatch(fstack.bootstrap, fstack.partitions)
    try:
        send_all(fstack.bootstrap, ordered)
        send_all(fstack.bootstrap, shuffled)
        took = table.wait_counted({**ref, **ref_shuf}, timeout=120)
        st = table.states
        differ = [u for u in ref
                  if comparable_tags(st.get(u, {})) != comparable_tags(st.get(twin[u], {}))]
        early_dlq = dlq.for_keys(set(ref) | set(ref_shuf))
        # now one event far older than the grace period, for a known user
        victim = next(iter(ref))
        before = counted(st[victim])
        late_before = sum(scrape(w.url, "stream_app_late_events_total")
                          for w in live_workers(fstack))
        late_ts = base + 10 * DAY - GRACE_MS - 15 * DAY
        late = {"event_id": f"late-{uuid.uuid4().hex[:8]}", "user_id": victim, "ts": late_ts,
                "type": "page_view", "stream": "click", "props": {}}
        send_all(fstack.bootstrap, [late])
        recs = wait_until(lambda: [r for r in dlq.for_keys({victim}) if r["reason"] == "late"],
                          timeout=60, what="the late event in the DLQ")
        late_after = wait_until(
            lambda: (lambda v: v if v > late_before else None)(
                sum(scrape(w.url, "stream_app_late_events_total")
                    for w in live_workers(fstack))),
            timeout=30, what="stream_app_late_events to grow")
        table.reader.poll(1.0)
        n_in = len(ordered) + len(shuffled) + 1
        n_proc = sum(counted(st.get(u)) for u in list(ref) + list(ref_shuf))
        report.add("late + out-of-order", n_in, n_proc, len(early_dlq) + len(recs), 0, 0,
                   took, f"shuffled twin users: {len(differ)} tag differences; late event -> "
                         f"DLQ reason 'late', late metric +{late_after - late_before:.0f}")
        assert not differ, [(u, st[u]["tags"], st[twin[u]]["tags"]) for u in differ[:3]]
        assert early_dlq == [], early_dlq[:3]
        assert counted(table.states[victim]) == before, "the late event changed the state"
        assert n_proc == len(ordered) + len(shuffled)
        assert late_after - late_before >= 1
    finally:
        table.close()
        dlq.close()
