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


@pytest.mark.parametrize("make, argv, says", [
    (lambda p: p.write_bytes(b'{"a": 1}\n'), ["evaluate", "{file}", "-t", "convert"],
     "Error: BadGzipFile: Not a gzipped file"),
    (lambda p: p.write_bytes(__import__("gzip").compress(
        b'{"stream":"click","event_id":"e1","user_id":"u1","ts":1714528800000,'
        b'"type":"page_view","props":{}}\n' * 5000)[:300]),
     ["evaluate", "{file}", "-t", "convert"], "Error: an input ended early: Compressed file"),
    (None, ["simulate", "--users", "5", "--days", "1", "--out", "/proc/nope/x.jsonl"],
     "Error: FileNotFoundError"),
    (None, ["tags", "u1"], "Error: STREAM_APP_REDIS_URL 'notaurl': must start with redis://"),
    (None, ["rules", "validate"], "Error: invalid settings (STREAM_APP_* variables)"),
])
def test_other_failures_are_one_error_line_too(make, argv, says, tmp_path, monkeypatch,
                                                capsys) -> None:
    """Files that cannot be read or written (a false or truncated .gz: click took the
    EOFError for Ctrl-D and said only "Aborted!"), settings that do not parse and values a
    library refuses: one ``Error:`` line, exit code 1, no traceback (session 23)."""
    from stream_app.config import get_settings

    path = tmp_path / "events.jsonl.gz"
    if make is not None:
        make(path)
    if argv[0] == "tags":
        monkeypatch.setenv("STREAM_APP_REDIS_URL", "notaurl")
    if argv[0] == "rules":
        monkeypatch.setenv("STREAM_APP_PARTITIONS", "abc")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stop:
            main([a.replace("{file}", str(path)) for a in argv])
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert stop.value.code == 1, err
    assert says in err and "Traceback" not in err, err


def test_simulate_refuses_to_write_the_truth_over_the_events(tmp_path, capsys) -> None:
    out = tmp_path / "sim.jsonl"
    with pytest.raises(SystemExit) as stop:
        main(["simulate", "--quiet", "--users", "5", "--days", "1", "--out", str(out),
              "--truth", str(out)])
    assert stop.value.code == 2 and "would overwrite the events" in capsys.readouterr().err
    assert not out.exists()
