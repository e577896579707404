"""Configuration loading and overrides, event files and the simulate command."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from stream_app.cli.simulate_cmd import command
from stream_app.errors import ConfigError
from stream_app.events import parse_event
from stream_app.sim import (
    START,
    SimConfig,
    Simulator,
    load_sim_config,
    read_json,
    read_jsonl,
    write_jsonl,
)
from stream_app.sim.rhythm import DAY_MS


def test_config_has_zh_en_labels_for_what_users_see() -> None:
    cfg = load_sim_config()
    for group in (cfg.channels, cfg.funnel, cfg.courses, cfg.class_types, cfg.profile.goals,
                  cfg.profile.regions, cfg.anomalies):
        for key, item in group.items():
            assert item.zh and item.en, key


def test_overrides_parse_yaml_values_and_are_validated() -> None:
    cfg = load_sim_config(overrides={"study.lesson_weekdays": "[6, 0, 0]", "users": "12"})
    assert cfg.study.lesson_weekdays == [0, 6] and cfg.users == 12
    assert SimConfig.load(users=7).users == 7
    assert cfg.with_overrides({"lead.window_days": 3}).lead.window_days == 3
    for bad in ({"users": -1}, {"study.lesson_weekdays": [9]}, {"channels.douyin.share": "x"},
                {"funnel.order_paid.p": 2}, {"users.x": 1}):
        with pytest.raises(ConfigError):
            load_sim_config(overrides=bad)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_sim_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["ev.jsonl", "ev.jsonl.gz"])
def test_jsonl_round_trip(tmp_path: Path, name: str) -> None:
    evs = list(Simulator(load_sim_config(overrides={"users": 40}), seed=8)
               .events(START, 3 * DAY_MS))
    seen = []
    n = write_jsonl(evs, tmp_path / name, progress=lambda k, ev: seen.append(k))
    assert n == len(evs) and seen[-1] == n
    back = list(read_jsonl(tmp_path / name))
    assert back == evs
    for ev in back[:200]:
        parse_event(ev, ev["stream"])


def test_simulate_command_writes_events_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "sim.jsonl.gz"
    res = CliRunner().invoke(command, [
        "--users", "300", "--days", "6", "--seed", "3", "--out", str(out), "--quiet",
        "--inject", "lead_drop:channel=douyin,start=2d,duration=1d",
        "--set", "lead.window_days=3"])
    assert res.exit_code == 0, res.output
    evs = list(read_jsonl(out))
    truth = read_json(tmp_path / "sim.truth.json")
    assert truth["seed"] == 3 and truth["events"] == len(evs)
    assert truth["injections"][0]["channel"] == "douyin"
    assert {e["user_id"] for e in evs} <= set(truth["users"])
    assert any(e["type"] == "outcome" and e["props"]["value"] == 0 for e in evs)  # 3-day window
    same = CliRunner().invoke(command, ["--users", "300", "--days", "6", "--seed", "3",
                                        "--out", str(tmp_path / "b.jsonl"), "--quiet",
                                        "--inject", "lead_drop:channel=douyin,start=2d,"
                                        "duration=1d", "--set", "lead.window_days=3"])
    assert same.exit_code == 0 and list(read_jsonl(tmp_path / "b.jsonl")) == evs


def test_simulate_command_tenants(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    res = CliRunner().invoke(command, ["--users", "200", "--days", "3", "--out", str(out),
                                       "--quiet", "--tenants", "acme, globex"])
    assert res.exit_code == 0, res.output
    assert {e["tenant"] for e in read_jsonl(out)} == {"acme", "globex"}


def test_simulate_command_reports_bad_input(tmp_path: Path) -> None:
    for args in (["--inject", "meteor:start=1d"], ["--set", "users"], ["--set", "users=-3"],
                 ["--inject", "lead_drop:channel=tiktok,start=1d"]):
        res = CliRunner().invoke(command, [*args, "--out", str(tmp_path / "x.jsonl"), "--quiet"])
        assert res.exit_code != 0
        assert not (tmp_path / "x.jsonl").exists()
