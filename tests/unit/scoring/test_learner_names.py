"""Learner names and checkpoint-group order of the offline evaluations (QA30 F5).

A misspelt ``stream-app evaluate --learner`` / ``oulad eval --learners`` name is one
``Error:`` line naming the option and the config's learners, exit code 1, before any replay
(it was a bare ``ValueError``, in ``oulad eval`` only after the learners before it had run);
the per-group results are in checkpoint order (``@10, @20, @100``, not text order)."""

from __future__ import annotations

import json

import pytest

from stream_app.cli import evaluate_cmd, main
from stream_app.errors import ConfigError
from stream_app.oulad import report
from stream_app.scoring.config import load_scoring_config
from stream_app.scoring.evaluate import evaluate_file

DAY = 86_400_000
GOOD = ('{"event_id":"e1","user_id":"u1","ts":1714528800000,"type":"page_view",'
        '"stream":"click"}\n')
NAMES = "logreg, logreg_std, hat, arf, ensemble"


def _no_work(*a: object, **k: object) -> None:
    raise AssertionError("a replay ran")


def _one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    captured = capsys.readouterr()
    assert stop.value.code == 1, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_evaluate_refuses_an_unknown_learner_with_the_configured_names(
        tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(evaluate_cmd, "evaluate_file", _no_work)
    events = tmp_path / "events.jsonl"
    events.write_text(GOOD)
    out = tmp_path / "report.json"
    line = _one_error_line(capsys, ["evaluate", str(events), "-t", "convert", "--learner",
                                    "logreg_sd", "--out", str(out)])
    assert line == f"Error: --learner: unknown 'logreg_sd' (choose from {NAMES}: the " \
                   "scoring config's learners)"
    assert not out.exists()


def test_evaluate_reads_the_learners_of_its_config(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(evaluate_cmd, "evaluate_file", _no_work)
    events = tmp_path / "events.jsonl"
    events.write_text(GOOD)
    cfg = tmp_path / "scoring.yaml"
    cfg.write_text("targets: {convert: {learner: fast}}\nlearners: {fast: {kind: logreg}}\n")
    line = _one_error_line(capsys, ["evaluate", str(events), "-t", "convert", "--config",
                                    str(cfg), "--learner", "logreg_std"])
    assert "unknown 'logreg_std' (choose from fast, logreg, hat, arf, ensemble" in line


def test_oulad_eval_refuses_an_unknown_learner_before_the_first_replay(
        tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(report, "run", _no_work)
    line = _one_error_line(capsys, ["oulad", "eval", "--learners", "logreg_std,nosuch,hatt",
                                    "--events", str(tmp_path / "events.jsonl.gz"),
                                    "--no-plot", "--out", str(tmp_path / "out")])
    assert line == f"Error: --learners: unknown 'nosuch', 'hatt' (choose from {NAMES}: " \
                   "the scoring config's learners)"


def test_the_oulad_report_checks_every_learner_first(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(report, "evaluate_file", _no_work)
    with pytest.raises(ConfigError, match=r"unknown learner\(s\) \['nosuch'\]; configured"):
        report.run(tmp_path / "out", events=tmp_path / "events.jsonl.gz",
                   learners=("logreg_std", "nosuch"), plot=False)
    assert not (tmp_path / "out").exists()


def test_a_config_copy_refuses_an_unknown_learner() -> None:
    cfg = load_scoring_config()
    assert cfg.with_learner("logreg_std").targets["convert"].learner == "logreg_std"
    with pytest.raises(ConfigError, match=r"unknown learner\(s\) \['logreg_sd'\]"):
        cfg.with_learner("logreg_sd")


def test_groups_are_in_checkpoint_order(tmp_path) -> None:
    rows = []
    for i in range(40):
        u = f"u{i}"
        rows.append({"event_id": f"a{i}", "user_id": u, "ts": DAY * (10 + i), "stream": "click",
                     "type": "trial_booked" if i % 2 else "page_view", "props": {}})
        for pct in (100, 20, 10):
            rows.append({"event_id": f"c{i}-{pct}", "user_id": u, "ts": DAY * (10 + i) + pct,
                         "stream": "label", "type": "checkpoint",
                         "props": {"target": "convert", "group": f"AAA-2013J@{pct}"}})
        rows.append({"event_id": f"o{i}", "user_id": u, "ts": DAY * (11 + i), "stream": "label",
                     "type": "outcome", "props": {"target": "convert", "value": i % 2}})
    path = tmp_path / "ev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = evaluate_file(path, "convert", warmup=0.0)
    order = ["AAA-2013J@10", "AAA-2013J@20", "AAA-2013J@100"]
    assert list(res["checkpoints"]["groups"]) == order
    assert list(res["checkpoints"]["after_warmup"]["groups"]) == order
