"""Commands that need a broker say so at once, with its address, when none answers: a clear
message and exit code 1, never a traceback or minutes of queued records
(``kafka_io.require_broker``; ``stream_app.cli.main`` turns any ``StreamAppError`` of a
project command into ``Error: ...``)."""

from __future__ import annotations

import pytest

from stream_app import kafka_io
from stream_app.cli import main

#: nothing listens on port 1
NOWHERE = "127.0.0.1:1"


@pytest.mark.parametrize("argv", [
    ["topics", "create", "--bootstrap", NOWHERE],
    ["rules", "apply", "config/rules", "--bootstrap", NOWHERE],
    ["forget", "u1", "--bootstrap", NOWHERE],
    ["replay", "{file}", "--bootstrap", NOWHERE, "--quiet"],
    ["redis-rebuild", "--bootstrap", NOWHERE],
    ["rules", "diff", "config/rules", "--bootstrap", NOWHERE],
    ["rules", "show", "--bootstrap", NOWHERE],   # said "no rule set published" before
])
def test_no_broker_is_a_clear_error(argv, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(kafka_io, "BROKER_CHECK_S", 0.5)
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id":"e1","user_id":"u1","ts":1714528800000,'
                      '"type":"page_view","stream":"click"}\n')
    with pytest.raises(SystemExit) as stop:
        main([a.replace("{file}", str(events)) for a in argv])
    err = capsys.readouterr().err
    assert stop.value.code == 1
    assert f"Error: no Kafka broker answered at {NOWHERE} within 0.5 s" in err
    assert "--bootstrap or STREAM_APP_BROKER_URL" in err
    assert "Traceback" not in err


def test_a_broker_that_answers_passes(monkeypatch) -> None:
    class Metadata:
        brokers = {1: object()}

    class Admin:
        def __init__(self, conf: dict) -> None:
            assert conf["bootstrap.servers"] == "b:9092"

        def list_topics(self, timeout: float) -> Metadata:
            return Metadata()

    import confluent_kafka.admin

    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", Admin)
    md = kafka_io.require_broker("b:9092", timeout=1.0)   # the metadata, for its topics
    assert isinstance(md, Metadata) and md.brokers
