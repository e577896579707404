"""``stream-app evaluate`` refuses ``--learn-from`` / ``--warmup`` values that make no sense:
one ``Error:`` line, exit code 1, before the file is read or a report written. Before, an
unknown ``--learn-from`` name was ignored, ``--warmup`` 1 or more reported no checkpoint
after it (silently), a negative one all of them, and NaN failed after the whole replay."""

from __future__ import annotations

import pytest

from stream_app.cli import evaluate_cmd, main

GOOD = ('{"event_id":"e1","user_id":"u1","ts":1714528800000,"type":"page_view",'
        '"stream":"click"}\n')


@pytest.mark.parametrize("args, says", [
    (["--learn-from", "checkpoint"], "Error: --learn-from: unknown 'checkpoint'"),
    (["--learn-from", "checkpoints,everything"], "Error: --learn-from: unknown 'everything'"),
    (["--learn-from", ""], "Error: --learn-from '' names no snapshots"),
    (["--learn-from", " , "], "Error: --learn-from ' , ' names no snapshots"),
    (["--no-learn", "--learn-from", "live"], "Error: --learn-from with --no-learn"),
    (["--warmup", "-0.1"], "Error: --warmup -0.1: a share of the file's time span"),
    (["--warmup", "1"], "Error: --warmup 1.0:"),
    (["--warmup", "7"], "Error: --warmup 7.0:"),
    (["--warmup", "nan"], "Error: --warmup nan:"),
    (["--warmup", "inf"], "Error: --warmup inf:"),
])
def test_senseless_options_are_refused_before_any_work(args, says, tmp_path, monkeypatch,
                                                       capsys) -> None:
    def no_work(*a: object, **k: object) -> None:
        raise AssertionError("evaluate_file ran")

    monkeypatch.setattr(evaluate_cmd, "evaluate_file", no_work)
    monkeypatch.setattr(evaluate_cmd, "load_scoring_config", no_work)
    events = tmp_path / "events.jsonl"
    events.write_text(GOOD)
    out = tmp_path / "report.json"
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", str(events), "-t", "convert", "--out", str(out), *args])
    captured = capsys.readouterr()
    assert stop.value.code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(says), captured.err
    assert captured.out == "" and not out.exists()


@pytest.mark.parametrize("learn_from, warmup, names", [
    ("checkpoints,live", 0.5, ("checkpoints", "live")),
    (" live ", 0.0, ("live",)),
    ("checkpoints", 0.99, ("checkpoints",)),
])
def test_sensible_options_pass(learn_from, warmup, names) -> None:
    assert evaluate_cmd.check_options(learn_from, warmup) == names


def test_no_learn_alone_keeps_the_default_learn_from() -> None:
    assert evaluate_cmd.check_options("checkpoints,live", 0.5, no_learn=True) == (
        "checkpoints", "live")
