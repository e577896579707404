"""``stream-app dev``'s live simulator and ``stream-app simulate`` use ids of their own
(QA38 F1: both defaulted to seed 42 and built ``u{index:07d}`` / ``s{seed}-{index}-{n}``, so a
simulate file replayed into ``make run``'s stack was half dropped as duplicates of live events
and the rest merged into unrelated live users); and the plain summary's events per second are
over the interval a line covers (QA38 F4)."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from rich.console import Console

from stream_app.cli import main
from stream_app.cli.dev_cmd import LIVE_ID_PREFIX, PlainFeed, build_simulator
from stream_app.services.stack import Stack
from stream_app.sim import Simulator, load_sim_config

EVENTS = 3000


def _live_ids(sim: Simulator) -> tuple[set[str], set[str]]:
    live = sim.live(sleep=None, clock=lambda: 1_772_380_800.0, keep_finished=False)
    evs = [ev for _, ev in itertools.islice(live, EVENTS)]
    return {e["user_id"] for e in evs}, {e["event_id"] for e in evs}


def _simulate_ids() -> tuple[set[str], set[str]]:
    """The ids of `stream-app simulate`'s defaults (seed 42, no prefix)."""
    sim = Simulator(load_sim_config(overrides={"users": 400}), seed=42)
    evs = list(itertools.islice(sim.events(), EVENTS))
    return {e["user_id"] for e in evs}, {e["event_id"] for e in evs}


def test_dev_ids_and_simulate_ids_are_disjoint() -> None:
    users, events = _live_ids(build_simulator(None, 42, ()))
    sim_users, sim_events = _simulate_ids()
    assert len(users) > 50 and len(sim_users) > 50
    assert not users & sim_users, sorted(users & sim_users)[:5]
    assert not events & sim_events, sorted(events & sim_events)[:5]
    assert all(u.startswith(LIVE_ID_PREFIX) for u in users)
    assert "u0000000" in sim_users and "s42-0-0" in sim_events   # simulate's ids unchanged


def test_without_the_prefix_they_would_collide() -> None:
    """What the test above guards against: the same seed without a prefix gives the same ids."""
    users, events = _live_ids(build_simulator(None, 42, (), id_prefix=""))
    sim_users, sim_events = _simulate_ids()
    assert users & sim_users and events & sim_events


def test_simulate_writes_unprefixed_ids_by_default(tmp_path) -> None:
    from click.testing import CliRunner

    from stream_app.cli import simulate_cmd
    from stream_app.sim import read_jsonl

    out = tmp_path / "sim.jsonl"
    res = CliRunner().invoke(simulate_cmd.command, ["--users", "20", "--days", "2", "--out",
                                                    str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    first = next(iter(read_jsonl(out)))
    assert first["user_id"] == "u0000000" and first["event_id"] == "s42-0-0"


def test_a_dev_id_prefix_too_long_for_the_schema_is_refused_before_anything(
        tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(Stack, "__init__", lambda self, **kw: pytest.fail("stack built"))
    with pytest.raises(SystemExit) as stop:
        main(["dev", "--duration", "1", "--workdir", str(tmp_path / "dev"),
              "--id-prefix", "x" * 200])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Invalid value for --id-prefix" in err, err


def test_the_summary_rate_is_over_the_interval_of_the_line() -> None:
    """Lines every 10 s; the rate of the last second passed in (57/s, 1,211/s) is not shown:
    each line has the events since the line before over the 10 s it covers."""
    console = Console(width=300, record=True)
    feed = PlainFeed(console, started=0.0, every_s=10.0)
    for now, events, last_second in [(10.0, 87_965, 105.0), (20.0, 94_194, 978.0),
                                     (25.0, 99_000, 5.0),   # before 10 s: no line
                                     (30.0, 105_825, 1_211.0), (40.0, 115_070, 57.0),
                                     (51.0, 120_872, 886.0)]:
        feed.update(Counter(events=events), rate=last_second, now=now)
    rates = [line.split("(")[1].split(")")[0] for line in console.export_text().splitlines()]
    assert rates == ["8,796/s", "623/s", "1,163/s", "924/s", "527/s"]
