"""Scoring alarms against injected anomalies, and the simulator -> detector path."""

from __future__ import annotations

import pytest

from stream_app.anomaly.simeval import (
    DAY,
    HOUR,
    Alarm,
    SimRun,
    last_arrival_ms,
    replay,
    score,
    target_of,
)
from stream_app.sim.config import load_sim_config
from stream_app.sim.inject import parse_injection
from stream_app.sim.simulator import START, Simulator


def test_targets_of_the_simulator_injection_kinds() -> None:
    assert target_of({"kind": "lead_drop", "channel": "douyin"}) == ("leads", "douyin")
    assert target_of({"kind": "funnel_collapse", "step": "trial_purchased"}) == \
        ("trial_to_purchase", "all")
    assert target_of({"kind": "spike", "channel": None}) == ("visits", "all")


def test_scoring_separates_detections_from_false_alarms() -> None:
    t0 = 0
    run = SimRun(events=1, start_ms=t0, end_ms=t0 + 20 * DAY, warmup_days=7)
    inj = {"kind": "lead_drop", "channel": "douyin", "start_ms": t0 + 10 * DAY,
           "end_ms": t0 + 10 * DAY + 6 * HOUR}
    run.alarms = [
        Alarm("leads", "douyin", "1h", t0 + 10 * DAY + 2 * HOUR, 0, "critical", -6.0),  # hit
        Alarm("leads", "all", "1h", t0 + 10 * DAY + 3 * HOUR, 0, "warning", -4.0),  # explained
        Alarm("visits", "all", "1m", t0 + 12 * DAY, 0, "warning", 5.0),              # false
        Alarm("visits", "all", "1m", t0 + 2 * DAY, 0, "warning", 5.0),               # warm-up
        Alarm("leads", "douyin", "1h", t0 + 9 * DAY, 0, "warning", -4.0),            # false
    ]
    score(run, [inj])
    (d,) = run.detections
    assert d["detected"] and d["delay_min"] == 120 and d["window"] == "1h"
    assert [a.ts for a in run.false_alarms] == [t0 + 12 * DAY, t0 + 9 * DAY]
    assert run.scored_days == 13


def test_alarms_after_the_last_arrival_are_not_false_alarms() -> None:
    """A bulk run has exactly N people: once every place is taken nobody new comes, and the
    visits / leads series rightly alarm on that collapse; it is not clean traffic (simeval
    seed 42 counted 16 such alarms in the last 5 h of day 21 as false alarms)."""
    run = SimRun(events=1, start_ms=0, end_ms=21 * DAY, warmup_days=7,
                 clean_until_ms=20 * DAY + 18 * HOUR)
    run.alarms = [
        Alarm("leads", "all", "1h", 15 * DAY, 0, "warning", 5.0),                   # false
        Alarm("visits", "all", "1h", 20 * DAY + 20 * HOUR, 0, "critical", -41.0),   # after
        Alarm("leads", "douyin", "1h", 20 * DAY + 20 * HOUR, 0, "critical", -12.0),  # after
    ]
    score(run, [])
    assert [a.ts for a in run.false_alarms] == [15 * DAY]
    assert [a.metric for a in run.after_clean] == ["visits", "leads"]
    assert run.scored_days == pytest.approx(13.75)


def test_a_bulk_run_has_no_new_visitor_after_its_last_arrival() -> None:
    """Invitees take the places of the last planned arrivals, so new people stop coming
    before the run ends: last_arrival_ms is when, and no one's first event comes later."""
    sim = Simulator(load_sim_config(overrides={"users": 300}), seed=42)
    first: dict[str, int] = {}
    for ev in sim.events(START, 40 * DAY):
        first.setdefault(ev["user_id"], ev["ts"])
    truth = sim.truth()
    last = last_arrival_ms(truth)
    assert last is not None and last < START + 40 * DAY
    assert sum(1 for t in truth.values() if t["inviter_id"]) > 0
    assert max(first.values()) <= last + HOUR     # a first event follows its arrival


def test_missed_injection_is_reported() -> None:
    run = SimRun(events=1, start_ms=0, end_ms=20 * DAY)
    score(run, [{"kind": "spike", "channel": None, "start_ms": DAY, "end_ms": DAY + HOUR}])
    assert run.detections[0]["detected"] is False and run.detections[0]["delay_min"] is None


def test_simulator_events_flow_through_aggregation_and_detection() -> None:
    sim = Simulator(load_sim_config(overrides={"users": 400}), seed=3)
    run = replay(sim.events(START, 2 * DAY), None, warmup_days=1)
    assert run.events > 1000
    assert run.series > 10          # leads/visits per channel and "all" were watched
    assert run.end_ms - run.start_ms > DAY


@pytest.mark.slow
def test_partitions_merged_alarm_like_one_aggregator() -> None:
    """The workers' path (partial aggregators per input partition, merged by the anomaly
    agent's merger) opens the same alarms, at the same points, as one aggregator (the
    integration test's week: a traffic spike on day 8; ~1.5 min)."""
    sim = Simulator(load_sim_config(overrides={"users": 2500}), seed=5,
                    injections=[parse_injection("spike:start=8d,duration=3h,factor=10")])
    events = list(sim.events(START, 9 * DAY))
    one = replay(events, None, warmup_days=1)
    merged = replay(events, None, warmup_days=1, partitions=3)
    key = [(a.metric, a.channel, a.window, a.ts, a.since, a.severity) for a in one.alarms]
    assert key and key == [(a.metric, a.channel, a.window, a.ts, a.since, a.severity)
                           for a in merged.alarms]
    assert any(a.metric == "visits" and a.z > 0 for a in merged.alarms)
