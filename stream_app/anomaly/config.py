"""Anomaly-detection policy: the ``anomaly:`` section of ``config/anomaly.yaml``.

Example:
    >>> cfg = load_anomaly_config()
    >>> cfg.detector, cfg.watches("leads", "1m"), cfg.watches("leads", "5m")
    ('seasonal', True, False)
    >>> cfg.alarm.cusum_h > cfg.alarm.cusum_k
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stream_app.config import REPO_ROOT
from stream_app.errors import ConfigError

DEFAULT_PATH = REPO_ROOT / "config" / "anomaly.yaml"
DETECTORS = ("seasonal", "river_hw")


@dataclass(frozen=True)
class AlarmConfig:
    cusum_k: float = 0.5
    cusum_h: float = 12.0
    z_spike: float = 7.0
    close_fraction: float = 0.25
    band_z: float = 3.0
    critical_relative: float = 0.5
    critical_z: float = 12.0
    critical_min_z: float = 3.0      # critical by critical_relative needs |z| >= this too
    hold_fraction: float = 0.8       # the detector does not learn while the alarm is open
                                     # or its CUSUM is at or above this part of cusum_h


@dataclass(frozen=True)
class WindowDetectorConfig:
    slot_minutes: float = 10.0
    level_halflife: float = 60.0
    season_halflife_days: float = 3.0
    var_halflife: float = 720.0
    warmup_days: float = 1.0
    warmup_min_share: float = 0.25   # the warm-up also needs this share of its points
    adopt_days: float = 1.0          # a held excursion this long becomes the new level
    week_classes: int = 2
    alarm: dict[str, float] = field(default_factory=dict)  # overrides of the global alarm


@dataclass(frozen=True)
class WatchConfig:
    metric: str
    windows: tuple[str, ...]
    zh: str = ""
    en: str = ""
    channels: frozenset[str] | None = None  # None: every channel and "all"


@dataclass(frozen=True)
class AnomalyConfig:
    detector: str = "seasonal"
    windows: dict[str, WindowDetectorConfig] = field(default_factory=dict)
    alarm: AlarmConfig = AlarmConfig()
    min_weight: dict[str, float] = field(default_factory=dict)
    monitor: dict[str, WatchConfig] = field(default_factory=dict)

    def alarm_for(self, window: str) -> AlarmConfig:
        """Alarm settings of ``window``: the global ones with the window's overrides."""
        w = self.windows.get(window)
        return dataclasses.replace(self.alarm, **w.alarm) if w and w.alarm else self.alarm

    def watches(self, metric: str, window: str, channel: str | None = None) -> bool:
        """Whether series ``metric`` at ``window`` (of ``channel``, if given) is watched."""
        w = self.monitor.get(metric)
        if w is None or window not in w.windows or window not in self.windows:
            return False
        return channel is None or w.channels is None or channel in w.channels


def _build(cls: Any, raw: dict[str, Any] | None, where: str) -> Any:
    raw = raw or {}
    unknown = set(raw) - set(cls.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    return cls(**raw)


def load_anomaly_config(path: Path = DEFAULT_PATH) -> AnomalyConfig:
    """Parse and check the ``anomaly:`` section of ``path``."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    raw = doc.get("anomaly")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: no 'anomaly:' section")
    detector = raw.get("detector", "seasonal")
    if detector not in DETECTORS:
        raise ConfigError(f"{path}: anomaly.detector must be one of {DETECTORS}, not {detector!r}")
    try:
        windows = {str(n): _build(WindowDetectorConfig, w, f"{path}: anomaly.windows.{n}")
                   for n, w in (raw.get("windows") or {}).items()}
        alarm = _build(AlarmConfig, raw.get("alarm"), f"{path}: anomaly.alarm")
        monitor = {str(m): WatchConfig(str(m), tuple(w.get("windows") or ()), w.get("zh", ""),
                                       w.get("en", ""),
                                       frozenset(w["channels"]) if w.get("channels") else None)
                   for m, w in (raw.get("monitor") or {}).items()}
    except TypeError as exc:
        raise ConfigError(f"{path}: invalid anomaly section: {exc}") from exc
    for name, wc in windows.items():
        try:
            alarm_w = dataclasses.replace(alarm, **wc.alarm)
        except TypeError as exc:
            raise ConfigError(f"{path}: anomaly.windows.{name}.alarm: {exc}") from exc
        if alarm_w.cusum_h <= 0 or alarm_w.cusum_k < 0:
            raise ConfigError(f"{path}: anomaly.windows.{name}.alarm needs cusum_h > 0")
    for w in monitor.values():
        missing = [n for n in w.windows if n not in windows]
        if missing:
            raise ConfigError(f"{path}: monitor.{w.metric} uses windows {missing} "
                              "that have no detector settings")
    if alarm.cusum_h <= 0 or alarm.cusum_k < 0:
        raise ConfigError(f"{path}: anomaly.alarm needs cusum_h > 0 and cusum_k >= 0")
    return AnomalyConfig(detector=detector, windows=windows, alarm=alarm,
                         min_weight={str(k): float(v)
                                     for k, v in (raw.get("min_weight") or {}).items()},
                         monitor=monitor)
