"""``stream-app send`` (Faust's command) with no broker: the project's one-line error."""

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
