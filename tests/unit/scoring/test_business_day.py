"""One business day (QA30 F4): the setting ``day_offset_minutes``
(``STREAM_APP_DAY_OFFSET_MINUTES``) sets the day of the tag rules, the scorer's daily buckets,
the alerts' ``{date}`` and "in the last N days" counts, and ``stream-app evaluate``'s rule
engine alike; scoring.yaml no longer sets a second one (an old file that still gives a
different ``features.day_offset_hours`` is refused), and the default (UTC+8) features are
those of before."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from stream_app.alerts.policy import AlertPolicy
from stream_app.config import Settings, get_settings
from stream_app.errors import ConfigError
from stream_app.events import Event
from stream_app.scoring.config import DEFAULT_PATH, load_scoring_config, parse_scoring_config
from stream_app.scoring.evaluate import ConsentReader
from stream_app.scoring.features import day_index

DAY = 86_400_000
#: 2026-11-20T20:00:00Z: 2026-11-20 in UTC, 2026-11-21 in UTC+8
STUDY = 1_795_204_800_000


@pytest.fixture()
def utc_business_day(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The settings of a deployment whose business days are UTC days."""
    monkeypatch.setenv("STREAM_APP_DAY_OFFSET_MINUTES", "0")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def _stall_reason(policy: AlertPolicy) -> str:
    st = {"tot": {"lesson_attended": 1}, "study": STUDY, "al": {}}
    tick = Event("clock:1", "u1", STUDY + 15 * DAY, "clock_tick", "clock")
    [alert] = policy.decide_clock(st, tick, {"at_risk": True})
    return alert["reasons"][0]["en"]


def test_the_setting_sets_the_scorer_and_alert_day(utc_business_day) -> None:
    cfg = load_scoring_config()
    policy = AlertPolicy.from_config(cfg)
    assert get_settings().day_offset_ms == policy.day_offset_ms == cfg.features.day_offset_ms == 0
    assert day_index(STUDY, cfg.features) == STUDY // DAY
    assert _stall_reason(policy) == "no study event for over 14 days (the last on 2026-11-20)"
    reader = ConsentReader.for_config(cfg)
    assert reader is not None and reader.engine.day_offset_ms == 0


def test_the_default_business_day_is_utc_plus_8_as_before() -> None:
    """The shipped scoring.yaml without its ``day_offset_hours: 8`` gives the features of
    before: same day boundary, same fold plan."""
    doc = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    assert "day_offset_hours" not in doc["features"]
    old = parse_scoring_config({**doc, "features": {**doc["features"], "day_offset_hours": 8}},
                               day_offset_minutes=480)
    cfg = load_scoring_config(day_offset_minutes=480)
    assert cfg.features == old.features and cfg.features.day_offset_hours == 8.0
    assert cfg.features.fold_plan == old.features.fold_plan
    assert cfg.features.fold_plan[0] == 28_800_000.0
    policy = AlertPolicy.from_config(cfg)
    assert policy.day_offset_ms == 8 * 3_600_000
    assert _stall_reason(policy).endswith("(the last on 2026-11-21)")


def test_the_worker_reads_one_business_day() -> None:
    from stream_app.app.runtime import Runtime  # noqa: PLC0415

    rt = Runtime.create(Settings(day_offset_minutes=-300))   # UTC-5
    assert rt.engine.day_offset_ms == -300 * 60_000
    assert rt.scoring_config.features.day_offset_ms == -300 * 60_000
    assert rt.scorer.alert_policy is not None
    assert rt.scorer.alert_policy.day_offset_ms == -300 * 60_000


def test_a_second_business_day_in_scoring_yaml_is_refused() -> None:
    doc = {"features": {"day_offset_hours": 8}, "targets": {"convert": {}}}
    with pytest.raises(ConfigError, match=r"day_offset_hours \(8\) differs .* "
                                          r"day_offset_minutes \(0, STREAM_APP_DAY_OFF"):
        parse_scoring_config(doc, day_offset_minutes=0)
    # the same day written twice (an old file, default settings) still loads
    assert parse_scoring_config(doc, day_offset_minutes=480).features.day_offset_hours == 8.0
