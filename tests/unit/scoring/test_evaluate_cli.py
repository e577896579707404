import gzip
import json

import orjson
import pytest
from click.testing import CliRunner

from stream_app.cli.evaluate_cmd import command
from tests.unit.scoring.fixtures import lead_stream


def test_evaluate_command_prints_and_writes_the_report(tmp_path):
    path = tmp_path / "ev.jsonl.gz"
    with gzip.open(path, "wb") as f:
        for e in lead_stream(200, seed=9):
            f.write(orjson.dumps(e.to_dict()) + b"\n")
    out = tmp_path / "report.json"
    model = tmp_path / "model.bin"
    res = CliRunner().invoke(command, [str(path), "--target", "convert", "--out", str(out),
                                       "--save-model", str(model)])
    assert res.exit_code == 0, res.output
    assert "events/s" in res.output and "d3" in res.output and "gate:" in res.output
    rep = json.loads(out.read_text())
    assert rep["checkpoints"]["groups"]["d3"]["n"] == 200
    for k in ("roc_auc", "pr_auc", "log_loss", "calibration", "precision", "recall"):
        assert k in rep["checkpoints"]["all"]
    assert rep["learning_curve"] is not None and rep["gate"]["target"] == "convert"
    # a frozen replay from the saved model scores without learning
    res = CliRunner().invoke(command, [str(path), "-t", "convert", "--out", str(out),
                                       "--model", str(model), "--no-learn"])
    assert res.exit_code == 0, res.output
    frozen = json.loads(out.read_text())
    assert frozen["snapshots_learned"] == 0
    assert frozen["gate"]["version"] == rep["gate"]["version"]


@pytest.mark.parametrize("line, says", [
    ("[1, 2]", "bad_line: {f}:2: not a JSON object"),
    ("{not json", "bad_line: {f}:2: not JSON"),
    ('{"stream": "click", "user_id": "u1"}', "bad_line: {f}:2: no 'ts' field"),
    ('{"stream": "click", "event_id": "e2", "user_id": "u1", "ts": "garbage", "type": "x"}',
     "bad_ts: {f}:2: ts 'garbage' is not ISO-8601"),
])
def test_bad_lines_name_the_file_line_and_what_is_wrong(tmp_path, line, says):
    """Each error of a bad line says where it is and what is wrong (it said ``'ts'`` or
    ``'list' object has no attribute 'get'`` before, session 23)."""
    from stream_app.errors import EventError
    from stream_app.scoring.evaluate import read_events

    f = tmp_path / "ev.jsonl"
    f.write_text('{"stream": "click", "event_id": "e1", "user_id": "u1", "ts": 1714528800000, '
                 '"type": "page_view", "props": {}}\n' + line + "\n")
    with pytest.raises(EventError) as exc:
        list(read_events(f))
    assert says.format(f=f) in str(exc.value)


def test_bad_lines_are_skipped_and_counted_as_the_workers_go_on(tmp_path):
    """One bad line no longer ends the run (QA28 F16): it is skipped, counted per reason in
    the report and named on stderr; --validate also skips what the workers would
    dead-letter; --strict stops at the first, as before."""
    good = [orjson.dumps(e.to_dict()) for e in lead_stream(60, seed=3)]
    bad = [b'{"stream": "click", "event_id": "x1", "user_id": "u", "ts": "bad", "type": "t"}',
           b"not json",
           b'{"stream": "click", "event_id": "x2", "user_id": "u", "ts": 1714528800000, '
           b'"type": "page_view", "props": {"a": {"b": 1}}}']
    path = tmp_path / "ev.jsonl"
    path.write_bytes(b"\n".join(good[:50] + bad + good[50:]) + b"\n")
    out = tmp_path / "r.json"
    base = [str(path), "--target", "convert", "--out", str(out)]
    res = CliRunner().invoke(command, base)
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    # without --validate the nested prop is read (the scorer needs no contract), 2 skipped
    assert rep["skipped"]["lines"] == 2 and rep["skipped"]["reasons"] == {
        "bad_ts": 1, "bad_line": 1}, rep["skipped"]
    assert rep["events"] == len(good) + 1
    assert "skipped 2 bad lines" in res.stderr and f"{path}:51" in res.stderr
    res = CliRunner().invoke(command, [*base, "--validate"])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["skipped"]["reasons"] == {"bad_ts": 1, "bad_line": 1, "schema": 1}
    assert rep["events"] == len(good)
    res = CliRunner().invoke(command, [*base, "--strict"])
    assert res.exit_code != 0 and f"{path}:51" in str(res.exception or res.stderr)
