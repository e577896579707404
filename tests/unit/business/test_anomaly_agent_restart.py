"""QA31 F5: after a restart, move or failover of the anomaly agent a silent channel is still
monitored.

The agent's merger is new in memory at every start; only the monitor comes back from its
table. The merger gives a zero point only to the series it has seen, so a channel that went
silent around the restart had no point any more: its drop was never alerted and an open
alarm was no longer scored (its gauge vanished, it never closed). The restored monitor's
series now seed the new merger (:func:`stream_app.app.business.restore_monitor`)."""

from __future__ import annotations

import random
from typing import Any

import orjson

from stream_app.anomaly.monitor import AnomalyMonitor
from stream_app.app import business
from stream_app.business import BusinessAggregator, SeriesPoint, load_business_spec

H, MIN = 3_600_000, 60_000
T0 = 8 * 24 * H          # after the monitor's 7-day warm-up of hourly series
SPEC = load_business_spec()
DOUYIN = ("leads", "default", "douyin", "1h")


class Lead:
    """A ``registered`` event (a lead) on ``channel``."""

    def __init__(self, ts: int, channel: str) -> None:
        self.type, self.ts, self.tenant, self.props = "registered", ts, "default", {
            "channel": channel}


def warm_monitor() -> AnomalyMonitor:
    """A monitor that has learned 8 days of ~30 leads an hour on douyin and on baidu_sem."""
    mon = AnomalyMonitor(spec=SPEC)
    rng = random.Random(3)
    for i in range(T0 // H):
        both = 0.0
        for channel in ("douyin", "baidu_sem"):
            n = float(rng.randint(26, 34))
            both += n
            mon.observe(SeriesPoint("leads", "default", channel, "1h", i * H, (i + 1) * H,
                                    n, n, "count"))
        mon.observe(SeriesPoint("leads", "default", "all", "1h", i * H, (i + 1) * H,
                                both, both, "count"))
    return mon


def restarted(mon: AnomalyMonitor) -> Agent:
    """The agent after a restart: its monitor's snapshot through the table (JSON), a new
    merger, new counters (the worker restarted too)."""
    saved = orjson.loads(orjson.dumps(mon.snapshot()))
    merger = business.Merger(wall=lambda: 0.0)
    return Agent(business.restore_monitor(saved, merger), merger)


class Agent:
    """Two input partitions' counters sending their closed windows to the anomaly agent's
    merger, whose released windows its monitor scores."""

    def __init__(self, mon: AnomalyMonitor, merger: business.Merger) -> None:
        self.mon, self.merger = mon, merger
        self.aggs = {p: BusinessAggregator(SPEC, zeros=False) for p in ("click:0", "click:1")}
        self.prev: dict[str, int | None] = {}
        self.douyin: dict[int, tuple[float, bool | None]] = {}   # hour -> value, anomalous
        self.records: list[dict[str, Any]] = []

    def run(self, start: int, stop: int, channels: tuple[str, ...]) -> None:
        """One lead per partition and channel every 4 minutes of event time."""
        for ts in range(start, stop, 4 * MIN):
            for p, agg in self.aggs.items():
                for channel in channels:
                    self.send(p, agg, agg.add(Lead(ts, channel)))

    def send(self, p: str, agg: BusinessAggregator, points: list[SeriesPoint]) -> None:
        self.merger.add(p, agg.watermark, points, agg.counted_from, self.prev.get(p))
        self.prev[p] = agg.watermark
        for pt in self.merger.ready():
            o = self.mon.observe(pt)
            if pt.key == DOUYIN:
                self.douyin[(pt.start_ms - T0) // H] = (
                    pt.value, None if o is None else o.anomalous)
            if o is not None and o.record is not None:
                self.records.append(o.record)

    def douyin_records(self, state: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["metric"] == "leads"
                and r["labels"]["channel"] == "douyin" and r["labels"]["state"] == state]


def test_a_channel_silent_since_the_restart_is_a_drop() -> None:
    """The QA's reproduction: the agent restarts when douyin goes silent; baidu_sem goes on.
    The first hour after the restart is a gap (incomplete); then douyin's zeros alarm."""
    agent = restarted(warm_monitor())
    agent.run(T0, T0 + 5 * H, ("baidu_sem",))
    assert agent.douyin[0] == (0.0, None)                   # the restart's gap: not scored
    assert agent.douyin[1] == (0.0, True)                   # was: no douyin point at all
    [opened] = agent.douyin_records("open")
    assert opened["labels"]["direction"] == "down" and opened["since"] == T0 + H
    assert opened["severity"] == "critical"


def test_an_open_alarm_is_still_scored_after_a_restart_and_closes() -> None:
    """Douyin goes silent, its alarm opens; the agent restarts while it is open: douyin is
    still scored as anomalous (the gauge stays), and the alarm closes when leads return."""
    before = Agent(warm_monitor(), business.Merger(wall=lambda: 0.0))
    before.run(T0, T0 + 2 * H, ("douyin", "baidu_sem"))
    before.run(T0 + 2 * H, T0 + 5 * H, ("baidu_sem",))
    assert [r["since"] for r in before.douyin_records("open")] == [T0 + 2 * H]
    agent = restarted(before.mon)
    assert DOUYIN in agent.mon.anomalous()
    agent.run(T0 + 5 * H, T0 + 8 * H, ("baidu_sem",))
    assert agent.douyin[5] == (0.0, None)                   # the restart's gap
    assert agent.douyin[6] == (0.0, True)                   # was: no douyin point at all
    agent.run(T0 + 8 * H, T0 + 14 * H, ("douyin", "baidu_sem"))
    [closed] = agent.douyin_records("resolved")
    assert closed["since"] == T0 + 2 * H and closed["severity"] == "info"
