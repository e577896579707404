"""Item 5: late and out-of-order events. Within the grace period a shuffled order gives the
same tags as the ordered input; an event older than the grace period goes to the DLQ with
reason "late" and is counted in ``stream_app_late_events`` (never silently dropped)."""

from __future__ import annotations

import random
import time
import uuid

import orjson
import pytest

from stream_app.kafka_io import partition_of
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


def _user_on(prefix: str, partition: int, partitions: int) -> str:
    """A fresh user id whose partition is ``partition``."""
    for i in range(10_000):
        u = f"{prefix}-{uuid.uuid4().hex[:8]}-{i}"
        if partition_of(u, partitions) == partition:
            return u
    raise AssertionError("no user id found for the partition")


def _states(table: TableWatch) -> dict[str, dict]:
    """The users table's states after reading what the changelog has now."""
    table.reader.poll(0.3)
    return table.states


def test_republished_records_are_judged_where_they_came_from(fstack, report):
    """A derived referral event and a re-keyed copy land at the end of partitions that are
    further on in event time than the grace period, though they were on time where they came
    from. They are applied, not dead-lettered as late (stream_app/republished.py): in a
    backlog that spans more than the grace period (a replay, `stream-app dev --warmup-days`)
    the inviter's referral credit was lost before."""
    from confluent_kafka import Producer

    from stream_app.kafka_io import producer_config

    parts = fstack.partitions
    base = base_ts()
    ahead = base + 2 * GRACE_MS          # the next test's range starts 100 days after base
    rekeyed = _user_on("rk", 0, parts)                      # its copy lands on partition 0
    wrong_key = _user_on("wk", 1, parts)                   # it comes in on partition 1
    invitee = _user_on("vee", 2, parts)                     # a click partition left behind
    inviter = f"inv-{uuid.uuid4().hex[:8]}"                 # every profile partition moves on
    # 1. every profile partition, and the click partition the copy lands on, move on past
    #    the grace period
    movers = [{"event_id": f"mv-{uuid.uuid4().hex[:10]}", "user_id": _user_on("mv", p, parts),
               "ts": ahead, "type": "profile_updated", "stream": "profile", "props": {}}
              for p in range(parts)]
    movers.append({"event_id": f"mv-{uuid.uuid4().hex[:10]}",
                   "user_id": _user_on("mvc", 0, parts), "ts": ahead, "type": "page_view",
                   "stream": "click", "props": {}})
    table = TableWatch(fstack.bootstrap, parts)
    dlq = DlqWatch(fstack.bootstrap, parts)
    try:
        send_all(fstack.bootstrap, movers)
        wait_until(lambda: all(counted(_states(table).get(m["user_id"])) == 1 for m in movers),
                   timeout=120, what="the events that move the partitions on")
        # 2. the invitee books a trial (on time on its click partition): the worker derives
        #    invitee_trialled for the inviter, on the inviter's profile partition, 60 days on
        send_all(fstack.bootstrap, [{
            "event_id": f"tb-{uuid.uuid4().hex[:10]}", "user_id": invitee, "ts": base + DAY,
            "type": "trial_booked", "stream": "click", "props": {"inviter_id": inviter}}])
        # 3. an event of `rekeyed` keyed by another user, on that user's partition (on time
        #    there): the worker re-publishes it keyed by `rekeyed`, to partition 0
        p = Producer(producer_config(fstack.bootstrap))
        p.produce("events.click", key=wrong_key, partition=partition_of(wrong_key, parts),
                  value=orjson.dumps({"event_id": f"rk-{uuid.uuid4().hex[:10]}",
                                      "user_id": rekeyed, "ts": base + DAY,
                                      "type": "course_view", "props": {}}))
        # 4. the same kind of record, but late where it comes in (partition 0, moved on): it
        #    is dead-lettered there, not re-published
        late_user, late_key = _user_on("lu", 1, parts), _user_on("lk", 0, parts)
        p.produce("events.click", key=late_key, partition=0,
                  value=orjson.dumps({"event_id": f"lk-{uuid.uuid4().hex[:10]}",
                                      "user_id": late_user, "ts": base + DAY,
                                      "type": "course_view", "props": {}}))
        assert p.flush(30) == 0
        t0 = time.monotonic()

        def applied() -> bool:
            st = _states(table)
            return (st.get(inviter, {}).get("n", {}).get("invitee_trialled") == 1
                    and counted(st.get(rekeyed)) == 1)

        wait_until(applied, timeout=120, what="the derived event and the re-keyed copy applied")
        took = time.monotonic() - t0
        late = [r for r in dlq.for_keys({inviter, rekeyed, wrong_key, invitee})
                if r["reason"] == "late"]
        at_source = wait_until(lambda: dlq.for_keys({late_key}), timeout=60,
                               what="the record late where it came in, in the DLQ")
        report.add("re-published records past the grace", 3, 2, len(late) + len(at_source),
                   0, 0, took, "a derived referral event and a re-keyed copy on partitions "
                               "60 days on: applied; a re-key late at its source: DLQ")
        assert late == [], late
        assert [(r["reason"], r["source_topic"], r["source_partition"]) for r in at_source] == [
            ("late", "events.click", 0)]
        st = _states(table)
        assert counted(st.get(invitee)) == 1 and late_user not in st
    finally:
        table.close()
        dlq.close()


def test_a_late_deletion_request_is_still_applied(fstack, report):
    """A deletion request is an instruction, not an input to aggregates: one dated before its
    profile partition's stream time minus the grace period deletes the user all the same.
    Before (session 23), it went to the DLQ as late and the user stayed, while `stream-app
    forget` had said the deletion was requested."""
    from stream_app.state.deletion import is_marker

    parts = fstack.partitions
    base = base_ts()
    victim = _user_on("late-del", 0, parts)
    mover = {"event_id": f"mv-{uuid.uuid4().hex[:10]}", "user_id": _user_on("mvd", 0, parts),
             "ts": base + 2 * GRACE_MS, "type": "profile_updated", "stream": "profile",
             "props": {}}
    table = TableWatch(fstack.bootstrap, parts)
    dlq = DlqWatch(fstack.bootstrap, parts)
    try:
        send_all(fstack.bootstrap, [
            {"event_id": f"v-{uuid.uuid4().hex[:10]}", "user_id": victim, "ts": base,
             "type": "course_view", "stream": "click", "props": {}}, mover])
        wait_until(lambda: counted(_states(table).get(victim)) == 1
                   and counted(_states(table).get(mover["user_id"])) == 1,
                   timeout=120, what="the user and the event that moves its partition on")
        t0 = time.monotonic()
        send_all(fstack.bootstrap, [{
            "event_id": f"del-{uuid.uuid4().hex[:10]}", "user_id": victim, "ts": base + DAY,
            "type": "deletion_requested", "stream": "profile", "props": {}}])
        wait_until(lambda: victim not in _states(table) or is_marker(_states(table)[victim]),
                   timeout=120, what="the late deletion request applied")
        took = time.monotonic() - t0
        refused = [r for r in dlq.for_keys({victim}) if r["reason"] == "late"]
        report.add("late deletion request", 1, 1, len(refused), 0, 0, took,
                   "dated 2 grace periods before its partition's stream time: applied")
        assert refused == []
    finally:
        table.close()
        dlq.close()
