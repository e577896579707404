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
