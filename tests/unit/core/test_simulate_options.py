"""A value the simulator refuses is blamed on the option that gave it, not on
config/simulator.yaml (QA L9: ``--users -5`` said ``simulator config: users: ... (/path/
config/simulator.yaml)``)."""

from __future__ import annotations

import pytest

from stream_app.cli import main


@pytest.mark.parametrize("args, says", [
    (["--users", "-5"], "Invalid value for '--users': -5 is not in the range x>=0"),
    (["--days", "0"], "Invalid value for '--days': 0.0 is not in the range x>0"),
    (["--set", "users=-5"], "Error: simulator config: users: Input should be greater than or "
                            "equal to 0 (--set users=-5)"),
    (["--set", "live.speed=-1"], "(--set live.speed=-1)"),
    (["--tenants", ","], "(the --tenants option)"),
    (["--start", "yesterday"], "Error: the --start option: bad_ts:"),
])
def test_the_error_names_the_option(args, says, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["simulate", "--quiet", "--out", str(tmp_path / "sim.jsonl"), *args])
    err = capsys.readouterr().err
    assert stop.value.code in (1, 2)
    assert says in err
    assert "simulator.yaml" not in err and "Traceback" not in err
    assert not (tmp_path / "sim.jsonl").exists()
