"""``stream-app api`` checks its options before uvicorn sees them (QA pass 28 F8: ``--port
70000``/``-1`` and ``--log-level bogus`` ended in Python tracebacks from uvicorn) and an
explicit ``--port 0`` is passed through (a free port the system picks), not turned into the
default port."""

from __future__ import annotations

import pytest
import uvicorn
import uvicorn.config
from click.testing import CliRunner

from stream_app.cli.api_cmd import LOG_LEVELS
from stream_app.cli.api_cmd import command as api
from stream_app.config import get_settings


@pytest.fixture
def runs(monkeypatch) -> list[dict]:
    from stream_app.serving.api import FOLLOW_ENV, TOKENS_ENV

    for name in (FOLLOW_ENV, TOKENS_ENV):      # the command sets them: restored after the test
        monkeypatch.delenv(name, raising=False)
    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: calls.append(k))
    return calls


@pytest.mark.parametrize("args, says", [
    (["--port", "70000"], "Invalid value for '--port': 70000 is not in the range 0<=x<=65535"),
    (["--port", "-1"], "Invalid value for '--port': -1 is not in the range 0<=x<=65535"),
    (["--log-level", "bogus"], "Invalid value for '--log-level': 'bogus' is not one of"),
    (["--workers", "0"], "Invalid value for '--workers': 0 is not in the range x>=1"),
])
def test_a_bad_option_is_refused_before_uvicorn_runs(args, says, runs) -> None:
    res = CliRunner().invoke(api, [*args, "--no-follow-rules"])
    assert res.exit_code == 2, res.output
    assert says in res.output
    assert runs == []


def test_port_0_is_passed_through_and_no_port_is_the_setting(runs) -> None:
    assert CliRunner().invoke(api, ["--port", "0", "--no-follow-rules"]).exit_code == 0
    assert CliRunner().invoke(api, ["--no-follow-rules", "--log-level", "DEBUG"]).exit_code == 0
    assert runs[0]["port"] == 0
    assert runs[1]["port"] == get_settings().api_port
    assert runs[1]["log_level"] == "debug"


def test_the_levels_are_uvicorns() -> None:
    assert list(LOG_LEVELS) == list(uvicorn.config.LOG_LEVELS)
