"""How ``run_project_command`` reports each kind of failure, with and without
``STREAM_APP_TRACEBACK=1``: one ``Error:`` line (exit 1), or the exception itself when the
traceback is asked for (the project's own errors stay one line: they say all there is)."""

from __future__ import annotations

import click
import pytest
from pydantic import BaseModel

from stream_app.cli import TRACEBACK_ENV, cli, run_project_command
from stream_app.errors import ConfigError


class _Settings(BaseModel):
    n: int


def _validation_error() -> Exception:
    try:
        _Settings(n="abc")   # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError
        return exc
    raise AssertionError("pydantic accepted 'abc'")


def _eof_abort() -> Exception:
    try:
        raise click.exceptions.Abort() from EOFError("Compressed file ended early")
    except click.exceptions.Abort as exc:
        return exc


FAILURES = {
    "oserror": (lambda: FileNotFoundError(2, "No such file"), "Error: FileNotFoundError: "),
    "valueerror": (lambda: ValueError("Redis URL must specify"),
                   "Error: ValueError: Redis URL must specify"),
    # click turns an EOFError of a command into an Abort (it takes it for Ctrl-D)
    "eoferror": (lambda: EOFError("short"), "Error: an input ended early: short"),
    "settings": (_validation_error, "Error: invalid settings (STREAM_APP_* variables): "),
    "eof_abort": (_eof_abort, "Error: an input ended early: Compressed file ended early"),
}


@pytest.fixture
def failing(request: pytest.FixtureRequest):  # noqa: ANN201
    """A project command ``fail-now KIND`` that raises the failure of that kind."""
    @click.command("fail-now")
    @click.argument("kind")
    def fail_now(kind: str) -> None:
        if kind == "own":
            raise ConfigError("rules_path config/nope does not exist")
        if kind == "ctrl_c":
            raise click.exceptions.Abort()
        raise FAILURES[kind][0]()

    cli.add_command(fail_now)
    yield
    cli.commands.pop("fail-now", None)


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_one_error_line_or_the_exception_with_the_traceback_asked(kind, failing, monkeypatch,
                                                                  capsys) -> None:
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    with pytest.raises(SystemExit) as stop:
        run_project_command(["fail-now", kind])
    err = capsys.readouterr().err
    assert stop.value.code == 1
    assert err.lstrip("\n").startswith(FAILURES[kind][1]), err
    assert f"(set {TRACEBACK_ENV}=1 to see where it came from)" in err
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    with pytest.raises(Exception) as raised:   # noqa: PT011 - each kind its own
        run_project_command(["fail-now", kind])
    assert not isinstance(raised.value, SystemExit)
    assert "Error:" not in capsys.readouterr().err


@pytest.mark.parametrize("debug", ["0", "1"])
def test_own_errors_and_ctrl_c_never_raise(debug, failing, monkeypatch, capsys) -> None:
    monkeypatch.setenv(TRACEBACK_ENV, debug)
    with pytest.raises(SystemExit) as stop:
        run_project_command(["fail-now", "own"])
    assert stop.value.code == 1
    assert capsys.readouterr().err == "Error: rules_path config/nope does not exist\n"
    with pytest.raises(SystemExit) as stop:
        run_project_command(["fail-now", "ctrl_c"])
    assert stop.value.code == 1
    assert capsys.readouterr().err == "Aborted!\n"
