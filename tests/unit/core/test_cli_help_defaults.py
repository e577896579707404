"""What ``--help`` says of options an operator met only through trial (QA40 F5.3): ``dev``'s
``--seed`` and ``--partitions`` had no words, ``replay --speed`` showed no default, and
``forget --ts`` did not say what an earlier time does to the user's newer events."""

from __future__ import annotations

import re

from click.testing import CliRunner

from stream_app.cli import dev_cmd, forget_cmd, replay_cmd


def _help(command) -> str:   # noqa: ANN001
    out = CliRunner().invoke(command, ["--help"], terminal_width=200)
    assert out.exit_code == 0, out.output
    return re.sub(r"\s+", " ", out.output)


def test_dev_says_what_seed_and_partitions_are() -> None:
    text = _help(dev_cmd.command)
    assert "--seed INTEGER seed of the live simulator" in text
    assert "--partitions INTEGER RANGE partitions of the topics the stack creates" in text
    # the first live user is live-u0000000 (QA40 F5.7)
    assert "(live-u0000000, ...)" in text


def test_replay_shows_the_default_speed() -> None:
    assert "0 = as fast as possible [default: 0; x>=0]" in _help(replay_cmd.command)


def test_forget_says_what_ts_decides() -> None:
    text = _help(forget_cmd.command)
    assert "event time of the request in epoch ms (default: now)" in text
    assert "those dated at or before it are dropped, those after it start a new user" in text
    assert "An earlier --ts lets the user's events newer than it" in text
