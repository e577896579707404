"""bench.verdicts: targets judged over several runs."""

from __future__ import annotations

import json

import pytest

from bench import verdicts


def _run(date, one, pt, two=None, lat=None):
    res = {"date": date, "mode": "quick", "stream_app_1w": {"eps": one},
           "passthrough": {"eps": pt}}
    if two is not None:
        res["stream_app_2w"] = {"eps": two}
    if lat is not None:
        res["latency"] = {"loads": {"50": {"broker": {"p99": 40.0},
                                           "stream_app_realtime": {"p99": lat}}}}
    return res


def test_each_target_counts_only_the_runs_that_measured_it():
    runs = [_run("a", 400, 1000, two=700), _run("b", 600, 1000, lat=60.0),
            _run("c", 500, 1000, two=400, lat=100.0)]
    v = verdicts.verdicts(runs)
    pt = v["1 worker >= 50% of pass-through"]
    assert (pt["values"], pt["met"], pt["runs"], pt["median"]) == ([0.4, 0.6, 0.5], 2, 3, 0.5)
    two = v["2 workers >= 1.6 x 1 worker"]
    assert (two["values"], two["dates"], two["met"]) == ([1.75, 0.8], ["a", "c"], 1)
    lat = next(x for k, x in v.items() if k.startswith("p99 at 50%"))
    assert (lat["values"], lat["met"]) == ([1.5, 2.5], 1)
    assert not any("reference" in k for k in v)


def test_the_command_reads_results_files_and_skips_other_json(tmp_path, capsys):
    for name, res in {"1.json": _run("a", 450, 1000), "2.json": _run("b", 550, 1000),
                      "ablation.json": {"full": []}}.items():
        (tmp_path / name).write_text(json.dumps(res))
    out = tmp_path / "V.md"
    assert verdicts.main([str(p) for p in tmp_path.glob("*.json")] + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("2 runs")
    assert "| 1 worker >= 50% of pass-through | >= 0.5 | 0.45, 0.55 | 0.5 | 1 of 2 |" in printed
    assert "Runs: a, b." in out.read_text()


def test_no_results_among_the_files_is_a_clear_error(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(SystemExit, match="no benchmark results"):
        verdicts.main([str(tmp_path / "x.json")])
    with pytest.raises(SystemExit, match="not a results file"):
        verdicts.main([str(tmp_path / "missing.json")])


def test_verdicts_doctests():
    import doctest

    failed, attempted = doctest.testmod(
        verdicts, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert attempted > 0 and failed == 0
