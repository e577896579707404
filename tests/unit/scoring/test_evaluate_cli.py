import gzip
import json

import orjson
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
