"""AnomalyMonitor: records, warm-up, weights, state; detection on synthetic series."""

from __future__ import annotations

import dataclasses

import jsonschema
import orjson
import pytest

from stream_app.anomaly.config import load_anomaly_config
from stream_app.anomaly.evaluate import detection, false_alarms
from stream_app.anomaly.monitor import AnomalyMonitor
from stream_app.anomaly.synthetic import generate, scenarios
from stream_app.business import SeriesPoint
from stream_app.config import REPO_ROOT
from stream_app.errors import ConfigError

H = 3_600_000
SCHEMA = orjson.loads((REPO_ROOT / "topics/schemas/metric_anomaly.schema.json").read_bytes())
CHANNELS = ("douyin", "bilibili", "baidu_sem")


def pt(i: int, value: float, metric: str = "leads", kind: str = "count", den: float = 0.0,
       channel: str = "douyin") -> SeriesPoint:
    return SeriesPoint(metric, "default", channel, "1h", i * H, (i + 1) * H, value,
                       den or value, kind)


def _warm(mon: AnomalyMonitor, n: int = 24 * 8, **kw) -> None:
    for i in range(n):
        mon.observe(pt(i, 100.0 + (i % 3), **kw))


def test_collapse_gives_schema_valid_records_open_then_resolved() -> None:
    mon = AnomalyMonitor()
    _warm(mon)
    o = mon.observe(pt(24 * 8, 10.0))
    assert o.change == "open" and o.anomalous
    jsonschema.validate(o.record, SCHEMA)
    assert o.record["severity"] == "critical" and o.record["value"] == 10.0
    assert o.record["expected_low"] <= o.record["expected"] <= o.record["expected_high"]
    assert o.record["labels"]["zh"] and o.record["labels"]["en"]
    assert mon.anomalous() == [("leads", "default", "douyin", "1h")]
    changes = [mon.observe(pt(24 * 8 + i, 100.0 + (i % 3))).change for i in range(1, 30)]
    assert "close" in changes
    assert mon.anomalous() == []


def test_resolved_record_and_deterministic_ids() -> None:
    def run() -> list[dict]:
        mon = AnomalyMonitor()
        _warm(mon)
        out = []
        for i, v in enumerate([10.0] * 3 + [100.0] * 30):
            o = mon.observe(pt(24 * 8 + i, v))
            if o.record:
                out.append(o.record)
        return out
    a, b = run(), run()
    assert [r["alert_id"] for r in a] == [r["alert_id"] for r in b]
    assert a[0]["labels"]["state"] == "open" and a[-1]["labels"]["state"] == "resolved"
    assert a[-1]["severity"] == "info" and a[-1]["since"] == a[0]["since"]
    for r in a:
        jsonschema.validate(r, SCHEMA)


def test_warmup_unwatched_and_light_points_are_not_scored() -> None:
    mon = AnomalyMonitor()
    assert mon.observe(pt(0, 5.0, metric="trial_purchases")) is None  # not watched at 1h
    o = mon.observe(pt(0, 5.0))
    assert o.warming and not o.anomalous
    light = pt(1, 1.0, metric="lead_to_trial", kind="rate", den=3.0)
    assert mon.observe(light) is None  # min_weight.rate = 20


def test_snapshot_restore_continues_the_same() -> None:
    a = AnomalyMonitor()
    _warm(a)
    b = AnomalyMonitor()
    b.restore(orjson.loads(orjson.dumps(a.snapshot())))
    for i, v in enumerate([100.0, 12.0, 11.0, 101.0]):
        oa, ob = a.observe(pt(24 * 8 + i, v)), b.observe(pt(24 * 8 + i, v))
        assert (oa.z, oa.change, oa.record) == (ob.z, ob.change, ob.record)


def test_bad_config_is_rejected(tmp_path) -> None:
    p = tmp_path / "a.yaml"
    p.write_text("anomaly:\n  detector: magic\n")
    with pytest.raises(ConfigError, match="detector"):
        load_anomaly_config(p)
    p.write_text("anomaly:\n  windows: {1m: {}}\n  monitor: {leads: {windows: [5m]}}\n")
    with pytest.raises(ConfigError, match="5m"):
        load_anomaly_config(p)
    p.write_text("anomaly:\n  windows: {1m: {alarm: {cusum_q: 1}}}\n")
    with pytest.raises(ConfigError, match="cusum_q"):
        load_anomaly_config(p)


def test_window_alarm_overrides_apply(tmp_path) -> None:
    p = tmp_path / "a.yaml"
    p.write_text("anomaly:\n  alarm: {cusum_k: 0.5, cusum_h: 12, z_spike: 7}\n"
                 "  windows:\n    1m: {}\n    1h: {alarm: {cusum_h: 5, z_spike: 4}}\n")
    cfg = load_anomaly_config(p)
    assert (cfg.alarm_for("1h").cusum_h, cfg.alarm_for("1h").z_spike) == (5, 4)
    assert cfg.alarm_for("1h").cusum_k == 0.5  # not overridden: global
    assert cfg.alarm_for("1m") == cfg.alarm_for("nope") == cfg.alarm


# ---- the measurement, small: every injected anomaly alarms; clean data stays quiet ----
@pytest.mark.parametrize("inj", scenarios(), ids=lambda i: i.name)
def test_each_injected_anomaly_is_alerted(inj) -> None:
    r = detection(inj, seeds=(11,), channels=CHANNELS)
    assert r.detected == 1, f"{inj.name} was not detected"
    assert r.delays_min[0] <= inj.duration_ms / 60_000


def test_clean_series_have_few_false_alarms() -> None:
    r = false_alarms(days=10, channels=CHANNELS, seeds=(12,), warmup_days=7)
    assert r.series >= 40
    assert r.per_day <= 1.0, r.by_metric


def test_river_alternative_runs_through_the_same_monitor() -> None:
    cfg = dataclasses.replace(load_anomaly_config(), detector="river_hw")
    mon = AnomalyMonitor(cfg)
    seen = [o for p in generate(2, ("douyin",), seed=1, only=cfg.watches)
            if (o := mon.observe(p)) is not None]
    assert seen and all(o.z == o.z for o in seen)  # no NaN


def test_the_seasonal_detectors_use_the_business_day_setting(monkeypatch) -> None:
    """Slots and weekdays follow STREAM_APP_DAY_OFFSET_MINUTES, as the tags' days do (QA30
    F4: the detector had UTC+8 written in). Sunday 20:00 UTC is Monday 04:00 at UTC+8."""
    from stream_app import config
    from stream_app.anomaly.monitor import AnomalyMonitor

    sunday_20h_utc = 1_796_587_200_000          # 2026-12-06 (a Sunday) 20:00 UTC
    assert AnomalyMonitor(day_offset_ms=0).make_detector("1h")._index(sunday_20h_utc)[0] == 1
    assert AnomalyMonitor(day_offset_ms=8 * 3_600_000).make_detector("1h")._index(
        sunday_20h_utc)[0] == 0                  # a weekday in Beijing
    monkeypatch.setenv("STREAM_APP_DAY_OFFSET_MINUTES", "0")
    config.get_settings.cache_clear()
    try:
        assert AnomalyMonitor().make_detector("1h").tz_offset_ms == 0
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()
