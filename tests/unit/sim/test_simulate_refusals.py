"""``stream-app simulate`` refuses up front what would crash or write events the workers
refuse (QA pass 28): ``--days inf`` ended in an OverflowError traceback (F1); an
``--id-prefix`` making event ids longer than the schema's 128 characters and a run ending
after 2100-01-01 (the accepted event time) wrote files whose events are dead-lettered, and
``--days 1e9`` ran for ever (F2)."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from stream_app.cli import main
from stream_app.cli.simulate_cmd import command as simulate
from stream_app.errors import EventError
from stream_app.events import parse_event
from stream_app.sim import load_sim_config


def _run(tmp_path, capsys, *args: str) -> tuple[int, str]:
    out = tmp_path / "sim.jsonl"
    with pytest.raises(SystemExit) as stop:
        main(["simulate", "--users", "10", "--quiet", "--out", str(out), *args])
    return stop.value.code, capsys.readouterr().err


@pytest.mark.parametrize("days", ["inf", "Infinity", "-inf", "nan"])
def test_days_must_be_finite(tmp_path, capsys, days) -> None:
    code, err = _run(tmp_path, capsys, "--days", days)
    assert code in (1, 2)
    assert "--days" in err and "Traceback" not in err
    assert not (tmp_path / "sim.jsonl").exists()


def test_the_config_refuses_infinite_numbers() -> None:
    from stream_app.errors import ConfigError

    for override in ({"days": "inf"}, {"live.warmup_days": "inf"}, {"days": float("nan")}):
        with pytest.raises(ConfigError, match="finite number|greater than 0"):
            load_sim_config(overrides=override)


def test_a_prefix_making_too_long_ids_is_refused(tmp_path, capsys) -> None:
    code, err = _run(tmp_path, capsys, "--days", "5", "--id-prefix", "x" * 200)
    assert code == 2
    assert "Invalid value for --id-prefix: the --id-prefix of 200 characters makes event " \
           "ids of up to 212 characters, longer than the event schema's 128" in err
    assert "give at most 116 characters" in err
    assert not (tmp_path / "sim.jsonl").exists()


def test_the_longest_prefix_allowed_gives_ids_the_schema_accepts(tmp_path, capsys) -> None:
    out = tmp_path / "sim.jsonl"
    prefix = "p" * 116        # at most 116 characters with --seed 42 and 10 people
    res = CliRunner().invoke(simulate, ["--users", "10", "--days", "5", "--quiet", "--out",
                                        str(out), "--id-prefix", prefix])
    assert res.exit_code == 0, res.output
    lines = out.read_bytes().splitlines()
    assert lines
    for line in lines:
        doc = orjson.loads(line)
        parse_event(line, doc["stream"])       # raises EventError if refused
        assert doc["event_id"].startswith(prefix)
    code, err = _run(tmp_path, capsys, "--days", "5", "--id-prefix", prefix + "p")
    assert code == 2 and "--id-prefix" in err


def test_a_spike_counts_its_extra_visitors(tmp_path, capsys) -> None:
    code, err = _run(tmp_path, capsys, "--days", "5", "--id-prefix", "p" * 116,
                     "--inject", "spike:start=1d,duration=1d,factor=200")
    assert code == 2
    assert "with --seed 42 and 2,000 people" in err


@pytest.mark.parametrize("args, end", [
    (["--days", "5", "--start", "2099-12-30T00:00:00+00:00"], "2100-01-04T00:00:00Z"),
    (["--days", "1e9"], "after the accepted event time 2000..2100"),
])
def test_a_run_ending_after_2100_is_refused(tmp_path, capsys, args, end) -> None:
    code, err = _run(tmp_path, capsys, *args)
    assert code == 1
    assert "Error: the run would end " in err and end in err
    assert "--days" in err and "--start" in err
    assert not (tmp_path / "sim.jsonl").exists()


def test_a_run_ending_at_2100_exactly_is_accepted(tmp_path, capsys) -> None:
    out = tmp_path / "sim.jsonl"
    res = CliRunner().invoke(simulate, ["--users", "10", "--days", "2", "--quiet", "--out",
                                        str(out), "--start", "2099-12-30T00:00:00+00:00"])
    assert res.exit_code == 0, res.output
    for line in out.read_bytes().splitlines():
        try:
            parse_event(line, orjson.loads(line)["stream"])
        except EventError as exc:
            pytest.fail(str(exc))
