"""Measure a detector on synthetic series: false alarms per simulated day on clean data,
and detection delay of each injected anomaly. ``python -m stream_app.anomaly.evaluate``
prints the markdown table quoted in ``docs/OPERATIONS.md``.

Example:
    >>> r = false_alarms(days=3, channels=("douyin",), seeds=(0,), warmup_days=2)
    >>> r.series > 0 and r.days == 1.0 and r.alarms >= 0
    True
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from stream_app.anomaly.config import AnomalyConfig, load_anomaly_config
from stream_app.anomaly.monitor import AnomalyMonitor
from stream_app.anomaly.synthetic import (
    CHANNEL_LEADS,
    DAY,
    EPOCH0,
    MIN,
    Injection,
    generate,
    scenarios,
)


@dataclass
class FalseAlarmReport:
    alarms: int
    days: float          # simulated days scored (after warm-up), summed over seeds
    series: int          # watched series per run
    by_metric: dict[str, int]

    @property
    def per_day(self) -> float:
        return self.alarms / self.days if self.days else 0.0

    @property
    def per_series_day(self) -> float:
        return self.per_day / self.series if self.series else 0.0


@dataclass
class DelayReport:
    name: str
    detected: int
    runs: int
    delays_min: list[float]   # minutes from injection start to the alarm's point end
    severities: list[str]

    @property
    def median_min(self) -> float | None:
        return statistics.median(self.delays_min) if self.delays_min else None


def _monitor(detector: str | None, config: AnomalyConfig | None) -> AnomalyMonitor:
    cfg = config or load_anomaly_config()
    if detector:
        cfg = dataclasses.replace(cfg, detector=detector)
    return AnomalyMonitor(cfg)


def false_alarms(days: int = 14, channels: Sequence[str] = tuple(CHANNEL_LEADS),
                 seeds: Sequence[int] = (0, 1, 2), warmup_days: int = 7,
                 detector: str | None = None,
                 config: AnomalyConfig | None = None) -> FalseAlarmReport:
    """Alarms opened on clean series after ``warmup_days`` (all are false)."""
    alarms, series = 0, 0
    by_metric: dict[str, int] = {}
    for seed in seeds:
        mon = _monitor(detector, config)
        for p in generate(days, channels, seed=seed, only=mon.config.watches):
            o = mon.observe(p)
            if (o is not None and o.change == "open"
                    and p.start_ms >= EPOCH0 + warmup_days * DAY):
                alarms += 1
                by_metric[p.metric] = by_metric.get(p.metric, 0) + 1
        series = len(mon._series)  # noqa: SLF001
    return FalseAlarmReport(alarms, float((days - warmup_days) * len(seeds)), series, by_metric)


def detection(inj: Injection, seeds: Sequence[int] = (0, 1, 2),
              channels: Sequence[str] = tuple(CHANNEL_LEADS), detector: str | None = None,
              config: AnomalyConfig | None = None) -> DelayReport:
    """Delay from ``inj`` start to the first alarm on its target series."""
    metric, channel = inj.target()
    days = (inj.start_ms - EPOCH0) // DAY + 2
    delays: list[float] = []
    sevs: list[str] = []
    for seed in seeds:
        mon = _monitor(detector, config)
        for p in generate(days, channels, injections=[inj], seed=seed, only=mon.config.watches):
            if p.start_ms < inj.start_ms - 60 * MIN:
                mon.observe(p)
                continue
            o = mon.observe(p)
            if (o is not None and o.change == "open" and p.metric == metric
                    and p.channel == channel):
                delays.append((p.end_ms - inj.start_ms) / MIN)
                sevs.append(o.record["severity"])
                break
            if p.start_ms > inj.start_ms + inj.duration_ms:
                break
    return DelayReport(inj.name, len(delays), len(seeds), delays, sevs)


def report(detector: str | None = None, days: int = 14, seeds: Sequence[int] = (0, 1, 2),
           channels: Sequence[str] = tuple(CHANNEL_LEADS)) -> str:
    """Markdown table of both measurements."""
    t0 = time.perf_counter()
    fa = false_alarms(days, channels, seeds, detector=detector)
    rows = [detection(inj, seeds, channels, detector=detector) for inj in scenarios()]
    name = detector or load_anomaly_config().detector
    out = [f"detector `{name}`: {len(channels)} channels + all, {fa.series} watched series, "
           f"{days} simulated days x {len(seeds)} seeds ({time.perf_counter() - t0:.0f} s)",
           "",
           "| measurement | result |", "|---|---|",
           f"| false alarms per simulated day (all series) | {fa.per_day:.2f} |",
           f"| false alarms per series per day | {fa.per_series_day:.4f} |",
           f"| false alarms by metric | {fa.by_metric or '-'} |"]
    for r in rows:
        med = f"{r.median_min:.0f} min" if r.median_min is not None else "-"
        out.append(f"| {r.name}: detected / runs, median delay (delays) | {r.detected}/{r.runs}, "
                   f"{med} ({', '.join(f'{d:.0f}' for d in r.delays_min)}), "
                   f"severity {','.join(r.severities) or '-'} |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", choices=["seasonal", "river_hw"], default=None)
    ap.add_argument("--days", type=int, default=21)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--channels", type=int, default=len(CHANNEL_LEADS))
    a = ap.parse_args(argv)
    print(report(a.detector, a.days, tuple(range(a.seeds)),
                 tuple(CHANNEL_LEADS)[:a.channels]))


if __name__ == "__main__":
    main()
