"""``stream-app simulate`` writes what it is asked for or refuses at once (QA F11):
``--users N`` is exactly N people (invitees included: ``--users 50`` wrote 51 or 52),
``--tenants`` values follow the event schema's tenant pattern (``'a b'`` was accepted and every
event would have been dead-lettered), and an ``--inject`` outside the run is refused (one
starting after the end was accepted and reported as injected)."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from stream_app.cli.simulate_cmd import command as simulate


@pytest.mark.parametrize("seed, extra", [(42, []), (7, []), (42, ["--tenants", "acme,beta"])])
def test_users_is_the_number_of_people(tmp_path, seed, extra) -> None:
    out = tmp_path / "sim.jsonl"
    res = CliRunner().invoke(simulate, ["--users", "50", "--days", "30", "--seed", str(seed),
                                        "--out", str(out), "--quiet", *extra])
    assert res.exit_code == 0, res.output
    truth = orjson.loads(out.with_name("sim.truth.json").read_bytes())["users"]
    assert len(truth) == 50
    assert any(t["inviter_id"] for t in truth.values())   # invitees are among the 50
    people = {orjson.loads(line)["user_id"] for line in out.read_bytes().splitlines()}
    assert people <= set(truth)
    assert "of 50 people" in res.output


@pytest.mark.parametrize("tenants", ["a b", "acme,b/c", "é"])
def test_a_tenant_the_schema_refuses_is_an_error_naming_the_option(tmp_path, tenants) -> None:
    out = tmp_path / "sim.jsonl"
    res = CliRunner().invoke(simulate, ["--users", "5", "--days", "1", "--out", str(out),
                                        "--quiet", "--tenants", tenants])
    assert res.exit_code == 2
    assert "Invalid value for --tenants" in res.output
    assert "the event schema's tenant pattern ^[A-Za-z0-9_-]+$" in res.output
    assert not out.exists()


@pytest.mark.parametrize("spec, says", [
    ("spike:start=99d,duration=1h", "it starts 99 days into the run, at or after its end "
                                    "(1 day)"),
    ("spike:start=1d,duration=1h", "it starts 1 day into the run, at or after its end"),
    ("lead_drop:channel=douyin,start=2020-01-01T00:00:00Z,duration=1h",
     "it ends at 2020-01-01T01:00:00Z, before the run starts"),
])
def test_an_injection_outside_the_run_is_refused(tmp_path, spec, says) -> None:
    out = tmp_path / "sim.jsonl"
    res = CliRunner().invoke(simulate, ["--users", "5", "--days", "1", "--out", str(out),
                                        "--quiet", "--inject", spec])
    assert res.exit_code == 2
    assert f"Invalid value for --inject: '{spec}' would never happen: {says}" in res.output
    assert not out.exists()


def test_an_injection_inside_the_run_is_counted(tmp_path) -> None:
    out = tmp_path / "sim.jsonl"
    res = CliRunner().invoke(simulate, ["--users", "5", "--days", "1", "--out", str(out),
                                        "--quiet", "--inject", "spike:start=23h,duration=5h"])
    assert res.exit_code == 0, res.output
    assert "(1 injected anomaly)" in res.output
