"""Faust's commands through ``stream-app``: no broker (``send``) or bad settings (``worker``) is
the project's one-line error, not a traceback."""

from __future__ import annotations

import pytest

from stream_app import cli, kafka_io


def test_send_without_a_broker_is_one_error_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv("STREAM_APP_BROKER_URL", "kafka://127.0.0.1:1")
    monkeypatch.setattr(kafka_io, "BROKER_CHECK_S", 0.5)
    from stream_app.config import get_settings

    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exc:
            cli.main(["send", "events.click", '{"event_id": "e1"}', "--key", "u1"])
    finally:
        get_settings.cache_clear()
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: no Kafka broker answered at 127.0.0.1:1"), err
    assert "Traceback" not in err


@pytest.mark.parametrize("env, says", [
    ({"STREAM_APP_REDIS_NUM_EDGES": "10,5"}, "STREAM_APP_REDIS_NUM_EDGES"),
    ({"STREAM_APP_PARTITIONS": "abc"}, "invalid settings (STREAM_APP_* variables)"),
])
def test_faust_commands_with_bad_settings_are_one_error_line(env, says, monkeypatch,
                                                              capsys) -> None:
    """``stream-app worker`` with a setting that does not load: one ``Error:`` line and exit
    1 before Faust's app is imported (it was a traceback)."""
    from stream_app.config import get_settings

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exc:
            cli.main(["worker", "-l", "warn"])
    finally:
        get_settings.cache_clear()
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and says in err and "Traceback" not in err, err


def test_a_worker_whose_scoring_config_sets_another_business_day_is_one_error_line(
        tmp_path, monkeypatch, capsys) -> None:
    """A scoring.yaml that still gives ``features.day_offset_hours`` unlike the setting
    ``STREAM_APP_DAY_OFFSET_MINUTES`` (QA30 F4): one ``Error:`` line naming both, exit 1."""
    from stream_app.config import get_settings
    from stream_app.scoring import config as scoring_config

    old = tmp_path / "scoring.yaml"
    old.write_text(scoring_config.DEFAULT_PATH.read_text(encoding="utf-8").replace(
        "features:\n", "features:\n  day_offset_hours: 8\n", 1), encoding="utf-8")
    monkeypatch.setattr(scoring_config, "DEFAULT_PATH", old)
    monkeypatch.setenv("STREAM_APP_DAY_OFFSET_MINUTES", "0")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exc:
            cli.main(["worker", "-l", "warn"])
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: scoring config features.day_offset_hours (8) differs"), err
    assert "STREAM_APP_DAY_OFFSET_MINUTES" in err and "Traceback" not in err, err
