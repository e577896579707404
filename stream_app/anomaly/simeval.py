"""Run the business aggregation and the anomaly monitor on simulator events and score the
alarms against the simulator's injected anomalies (its ground truth).

The event path is the streaming one: events -> :class:`~stream_app.business.BusinessAggregator`
(study and order events are attributed to the user's first-touch channel, as the worker does
from user state) -> :class:`~stream_app.anomaly.AnomalyMonitor`. An alarm that opens on an
injection's target series between its start and one hour after its end detects it; every
other alarm opened after the warm-up and up to the simulated world's last arrival is a false
alarm. A bulk run has exactly ``--users`` people: invitees take the places of the last planned
arrivals, so new traffic stops some hours before the run ends (at 150,000 people over 21 days,
seed 42: Sunday 18:5x, day 20.79); every visits and leads series rightly alarms on that
collapse, which is no clean day and is reported apart (``after_clean``), not as false alarms.

``python -m stream_app.anomaly.simeval --users 150000 --days 21 --inject ...`` prints the
table quoted in ``docs/OPERATIONS.md``.

Example:
    >>> evs = [{"type": "registered", "ts": 60_000 * i, "user_id": f"u{i}", "tenant": "default",
    ...         "props": {"channel": "douyin"}} for i in range(3)]
    >>> run = replay(evs, [], warmup_days=0)
    >>> run.events, run.false_alarms
    (3, [])
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_app.anomaly.monitor import AnomalyMonitor
from stream_app.business.aggregator import BusinessAggregator
from stream_app.business.merge import Merger
from stream_app.business.series import ALL
from stream_app.business.spec import load_business_spec

DAY = 86_400_000
HOUR = 3_600_000


@dataclass(slots=True)
class _Ev:
    type: str
    ts: int
    tenant: str
    props: dict[str, Any]


@dataclass
class Alarm:
    metric: str
    channel: str
    window: str
    ts: int          # end of the window that opened the alarm
    since: int
    severity: str
    z: float


@dataclass
class SimRun:
    events: int
    start_ms: int
    end_ms: int
    alarms: list[Alarm] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)
    false_alarms: list[Alarm] = field(default_factory=list)
    warmup_days: float = 7.0
    series: int = 0
    #: alarms opened after this event time are not scored (None: up to the end): the
    #: simulated world's last arrival (:func:`last_arrival_ms`)
    clean_until_ms: int | None = None
    after_clean: list[Alarm] = field(default_factory=list)

    @property
    def scored_days(self) -> float:
        end = self.end_ms if self.clean_until_ms is None else min(self.end_ms,
                                                                   self.clean_until_ms)
        return max(0.0, (end - self.start_ms) / DAY - self.warmup_days)


def last_arrival_ms(truth: dict[str, dict[str, Any]]) -> int | None:
    """Event time of the last person to arrive, injected spike visitors left out: after it
    no new visitor comes (a bulk run's places are all taken), which is no clean traffic.

    >>> last_arrival_ms({"a": {"arrival_ts": 5, "spike": None},
    ...                  "b": {"arrival_ts": 9, "spike": 0}})
    5
    """
    times = [t["arrival_ts"] for t in truth.values() if t.get("spike") is None]
    return max(times) if times else None


def target_of(inj: dict[str, Any]) -> tuple[str, str]:
    """(metric, channel) on which an injected anomaly must raise an alarm."""
    if inj["kind"] == "lead_drop":
        return "leads", inj["channel"]
    if inj["kind"] == "funnel_collapse":
        step = inj.get("step") or "trial_booked"
        metric = {"trial_booked": "lead_to_trial", "trial_purchased": "trial_to_purchase",
                  "order_paid": "orders"}.get(step, "lead_to_trial")
        return metric, inj.get("channel") or ALL
    return "visits", inj.get("channel") or ALL


def replay(events: Iterable[dict[str, Any]], injections: Sequence[dict[str, Any]] | None,
           warmup_days: float = 7.0, monitor: AnomalyMonitor | None = None,
           partitions: int = 0) -> SimRun:
    """Feed ``events`` (time-ordered dicts) through aggregation and detection; score against
    ``injections`` (None: call :func:`score` later, e.g. once the simulator knows them).
    ``partitions`` > 0: the workers' path instead of one aggregator: events split by user
    into that many partial aggregators (``zeros=False``), whose closed points and watermarks
    a :class:`~stream_app.business.Merger` merges, as the anomaly agent does."""
    spec = load_business_spec()
    agg = BusinessAggregator(spec)
    mon = monitor or AnomalyMonitor(spec=spec)
    parts = [BusinessAggregator(spec, zeros=False) for _ in range(partitions)]
    merger = Merger(spec, wall=lambda: 0.0)
    first_channel: dict[str, str] = {}
    run = SimRun(0, 0, 0, warmup_days=warmup_days)
    start = None
    ts = 0
    for doc in events:
        ts = int(doc["ts"])
        if start is None:
            start = ts
        props = doc.get("props") or {}
        uid = doc.get("user_id", "")
        ch = props.get("channel")
        if ch and uid not in first_channel:
            first_channel[uid] = ch
        ev = _Ev(doc["type"], ts, doc.get("tenant") or "default", props)
        if parts:
            i = zlib.crc32(uid.encode()) % partitions
            closed = parts[i].add(ev, channel=ch or first_channel.get(uid))
            if closed:
                merger.add(str(i), parts[i].watermark, closed)
                _observe(merger.ready(), mon, run)
        else:
            _observe(agg.add(ev, channel=ch or first_channel.get(uid)), mon, run)
        run.events += 1
    # windows still open at the end of the run are not closed: an artificial silence after
    # the last event would look like every series collapsing
    run.start_ms, run.end_ms = start or 0, ts
    run.series = len(mon._series)  # noqa: SLF001
    if injections is not None:
        score(run, injections)
    return run


def _observe(points: list, mon: AnomalyMonitor, run: SimRun) -> None:
    for p in points:
        o = mon.observe(p)
        if o is not None and o.change == "open":
            run.alarms.append(Alarm(p.metric, p.channel, p.window, p.end_ms,
                                    o.record["since"], o.record["severity"], o.z))


def score(run: SimRun, injections: Sequence[dict[str, Any]]) -> None:
    """Fill ``run.detections`` and ``run.false_alarms``."""
    run.detections = []
    explained: set[int] = set()
    for inj in injections:
        metric, channel = target_of(inj)
        hits = [a for a in run.alarms
                if a.metric == metric and a.channel == channel
                and inj["start_ms"] <= a.ts <= inj["end_ms"] + HOUR]
        first = min(hits, key=lambda a: a.ts) if hits else None
        run.detections.append({"kind": inj["kind"], "metric": metric, "channel": channel,
                               "detected": first is not None,
                               "delay_min": (first.ts - inj["start_ms"]) / 60_000
                               if first else None,
                               "window": first.window if first else None,
                               "severity": first.severity if first else None})
        # anything that opens while an injection is active (plus an hour) is not "false":
        # an injected traffic spike also moves leads, a collapse also moves later steps
        for i, a in enumerate(run.alarms):
            if inj["start_ms"] <= a.ts <= inj["end_ms"] + HOUR:
                explained.add(i)
    t0 = run.start_ms + run.warmup_days * DAY
    clean = run.clean_until_ms
    unexplained = [a for i, a in enumerate(run.alarms) if i not in explained and a.ts >= t0]
    run.false_alarms = [a for a in unexplained if clean is None or a.ts <= clean]
    run.after_clean = [a for a in unexplained if clean is not None and a.ts > clean]


def report(run: SimRun, title: str) -> str:
    days = run.scored_days
    out = [f"{title}: {run.events:,} events, {run.series} watched series, "
           f"{days:.0f} days scored after a {run.warmup_days:.0f}-day warm-up", "",
           "| injected anomaly | target series | detected | delay | window | severity |",
           "|---|---|---|---|---|---|"]
    for d in run.detections:
        delay = f"{d['delay_min']:.0f} min" if d["delay_min"] is not None else "-"
        out.append(f"| {d['kind']} | {d['metric']} / {d['channel']} | "
                   f"{'yes' if d['detected'] else 'no'} | {delay} | {d['window'] or '-'} | "
                   f"{d['severity'] or '-'} |")
    per_day = len(run.false_alarms) / days if days else 0.0
    by: dict[str, int] = {}
    for a in run.false_alarms:
        by[f"{a.metric}/{a.window}"] = by.get(f"{a.metric}/{a.window}", 0) + 1
    out += ["", f"false alarms: {len(run.false_alarms)} in {days:.0f} days = "
                f"{per_day:.2f} per day ({per_day / max(run.series, 1):.4f} per series-day); "
                f"by series: {by or '-'}"]
    if run.after_clean:
        after: dict[str, int] = {}
        for a in run.after_clean:
            after[f"{a.metric}/{a.window}"] = after.get(f"{a.metric}/{a.window}", 0) + 1
        cut = run.clean_until_ms or 0
        out.append(f"not scored: {len(run.after_clean)} alarms after the last arrival at day "
                   f"{(cut - run.start_ms) / DAY:.2f} (every place of the run taken, nobody "
                   f"new comes: a real collapse of new traffic); by series: {after}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    from stream_app.sim.config import load_sim_config  # noqa: PLC0415
    from stream_app.sim.inject import parse_injection  # noqa: PLC0415
    from stream_app.sim.simulator import START, Simulator  # noqa: PLC0415

    ap = argparse.ArgumentParser(description="anomaly detection on simulator output")
    ap.add_argument("--users", type=int, default=150_000)
    ap.add_argument("--days", type=float, default=21)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--warmup-days", type=float, default=7)
    ap.add_argument("--inject", action="append", default=[])
    ap.add_argument("--partitions", type=int, default=0,
                    help="the workers' path: partial aggregators of this many input "
                         "partitions merged by the anomaly agent's merger (0: one aggregator)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    sim = Simulator(load_sim_config(overrides={"users": a.users}), seed=a.seed,
                    injections=[parse_injection(s) for s in a.inject])
    run = replay(sim.events(START, int(a.days * DAY)), None, warmup_days=a.warmup_days,
                 partitions=a.partitions)
    run.clean_until_ms = last_arrival_ms(sim.truth())
    score(run, sim.ground_truth()["injections"])
    path = f"{a.partitions} partitions merged" if a.partitions else "one aggregator"
    title = (f"simulator seed {a.seed}, {a.users:,} people over {a.days:g} days ({path}), "
             f"injected: {', '.join(a.inject) or 'nothing'}")
    print(report(run, title))
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
