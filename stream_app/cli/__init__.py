"""The ``stream-app`` command line.

Project commands are click commands in modules ``stream_app/cli/*_cmd.py``; each module
exposes ``command`` (a ``click.Command`` or ``click.Group``) and is found automatically, so a
new command is one new file. Anything that is not a project command (``worker``, ``tables``,
``send TOPIC``, ...) goes to Faust's own command line for the stream-app Faust app;
``agents`` is a project command (Faust's fails on an agent that reads several topics).

Example:
    >>> "dev" in project_commands() or True   # commands are discovered from *_cmd.py modules
    True
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from stream_app.errors import StreamAppError

if TYPE_CHECKING:
    from faust import App
    from pydantic import ValidationError


def project_commands() -> dict[str, click.Command]:
    """Discover ``command`` objects in ``stream_app.cli.*_cmd`` modules."""
    found: dict[str, click.Command] = {}
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.endswith("_cmd"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        cmd = getattr(module, "command", None)
        if isinstance(cmd, click.Command):
            found[cmd.name or mod.name[:-4]] = cmd
    return found


@click.group(help="stream-app: real-time learner tagging on Kafka. "
             "Faust's commands worker, tables and send TOPIC are available too "
             "(`stream-app worker --help`).")
def cli() -> None:
    """Root group of the project commands."""


#: set to 1 to see the traceback behind an ``Error:`` line
TRACEBACK_ENV = "STREAM_APP_TRACEBACK"


def _error(message: str, hint: bool = True) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    if hint and os.environ.get(TRACEBACK_ENV) != "1":
        click.echo(f"(set {TRACEBACK_ENV}=1 to see where it came from)", err=True)
    sys.exit(1)


def _failure_message(exc: BaseException) -> str | None:
    """The ``Error:`` line of a failure that is not the project's own; None for an abort
    (Ctrl-C) that is not an input ending early.

    >>> _failure_message(FileNotFoundError(2, "No such file or directory"))
    'FileNotFoundError: [Errno 2] No such file or directory'
    >>> _failure_message(click.exceptions.Abort()) is None
    True
    """
    from pydantic import ValidationError  # noqa: PLC0415

    if isinstance(exc, click.exceptions.Abort):
        if isinstance(exc.__cause__, EOFError):   # click takes an EOFError for Ctrl-D
            return f"an input ended early: {exc.__cause__} (a truncated .gz file?)"
        return None
    if isinstance(exc, ValidationError):   # before ValueError: it is one
        return f"invalid settings (STREAM_APP_* variables): {_settings_problems(exc)}"
    return f"{type(exc).__name__}: {exc}"


def _settings_problems(exc: ValidationError) -> str:
    """What pydantic refused, on one line: each variable of the settings (another model's
    field by its name), the value given and why.

    >>> from stream_app.config import Settings
    >>> try:
    ...     Settings(web_port="99999", producer="foo")
    ... except ValueError as exc:
    ...     print(_settings_problems(exc))
    STREAM_APP_WEB_PORT='99999': Input should be less than or equal to 65535; \
STREAM_APP_PRODUCER='foo': Input should be 'librdkafka' or 'aiokafka'
    """
    env = exc.title == "Settings"
    parts = []
    for err in exc.errors(include_url=False):
        name = ".".join(str(p) for p in err["loc"])
        name = f"STREAM_APP_{name.upper()}" if env else name
        parts.append(f"{name}={err.get('input')!r}: {err['msg']}")
    return "; ".join(parts) or str(exc)


def run_project_command(argv: list[str]) -> None:
    """Run a project command; every error is one ``Error:`` line and exit code 1, never a
    traceback (``STREAM_APP_TRACEBACK=1`` shows it): the project's own errors, files that
    cannot be read or written (a truncated or false ``.gz`` too), settings that do not parse,
    values a library refuses.

    >>> run_project_command(["--help"])   # doctest: +ELLIPSIS
    Usage: stream-app [OPTIONS] COMMAND [ARGS]...
    ...
    """
    from pydantic import ValidationError  # noqa: PLC0415

    debug = os.environ.get(TRACEBACK_ENV) == "1"
    try:
        code = cli.main(args=argv, prog_name="stream-app", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except StreamAppError as exc:   # a clear message of the project's own
        _error(str(exc), hint=False)
    except (click.exceptions.Abort, ValidationError, OSError, ValueError, EOFError) as exc:
        message = _failure_message(exc)
        if message is None:   # Ctrl-C
            click.echo("Aborted!", err=True)
            sys.exit(1)
        if debug:
            raise
        _error(message)
    if isinstance(code, int) and code:
        sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: project commands first, Faust's CLI for the rest."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = project_commands()
    for name, cmd in commands.items():
        cli.add_command(cmd, name)
    if not argv or argv[0] in commands or argv[0] in ("-h", "--help"):
        run_project_command(argv)
        return
    _check_settings()   # a bad STREAM_APP_* variable: one line, not Faust's traceback
    if argv[0] == "send" and not {"-h", "--help"} & set(argv):
        _check_broker()   # Faust's send would print two tracebacks
    app = _import_app()
    from stream_app.config import get_settings  # noqa: PLC0415

    sys.argv = ["stream-app", *with_log_level(argv, get_settings().log_level)]
    app.main()


#: the worker's log level options (Faust's ``-l LEVEL``, ``-lLEVEL``, ``--loglevel[=LEVEL]``)
_LOGLEVEL_FLAGS = ("-l", "--loglevel")


def with_log_level(argv: list[str], level: str) -> list[str]:
    """The Faust command line ``argv`` with ``-l level`` after ``worker`` when it gives no
    log level of its own (``STREAM_APP_LOG_LEVEL``: the command line wins); other commands
    as they are.

    >>> with_log_level(["worker", "--web-port", "6067"], "info")
    ['worker', '-l', 'info', '--web-port', '6067']
    >>> with_log_level(["worker", "--loglevel=debug"], "info"), with_log_level(["tables"], "info")
    (['worker', '--loglevel=debug'], ['tables'])
    """
    if not argv or argv[0] != "worker" or any(_is_loglevel(a) for a in argv):
        return list(argv)
    return [argv[0], "-l", level, *argv[1:]]


def _is_loglevel(arg: str) -> bool:
    """Whether a command-line word gives the log level.

    >>> [_is_loglevel(a) for a in ("-l", "-linfo", "--loglevel=info", "--logfile", "-f")]
    [True, True, True, False, False]
    """
    return arg in _LOGLEVEL_FLAGS or arg.startswith("--loglevel=") or (
        arg.startswith("-l") and not arg.startswith("--"))


def _import_app() -> App:
    """The Faust app, imported (with its agents); a setting the app refuses as it is built
    (``STREAM_APP_PRODUCER=aiokafka`` for a worker, a value Faust's own settings refuse)
    stops with one ``Error:`` line (exit 1), as in :func:`_check_settings`."""
    from faust.exceptions import ImproperlyConfigured  # noqa: PLC0415

    try:
        from stream_app.app.main import app  # noqa: PLC0415 - faust only when needed
    except (StreamAppError, ImproperlyConfigured) as exc:
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        if isinstance(exc, StreamAppError):
            _error(str(exc), hint=False)
        _error(f"{type(exc).__name__}: {exc}")
    return app


def _check_settings() -> None:
    """Stop with one ``Error:`` line (exit 1) when the settings or the scoring config (read
    with the settings' business day, which it may not contradict) do not load, before a Faust
    command (``worker``, ``send``, ``tables``) imports the app, as the project's commands
    do."""
    from pydantic import ValidationError  # noqa: PLC0415

    from stream_app.config import get_settings  # noqa: PLC0415
    from stream_app.scoring.config import load_scoring_config  # noqa: PLC0415

    try:
        load_scoring_config(day_offset_minutes=get_settings().day_offset_minutes)
    except (ValidationError, StreamAppError, ValueError) as exc:
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        if isinstance(exc, StreamAppError):
            _error(str(exc), hint=False)
        _error(_failure_message(exc) or str(exc))


def _check_broker() -> None:
    """Stop with the project's error (exit 1) unless the settings' broker answers, as the
    project's own commands that need one do."""
    from stream_app.config import get_settings  # noqa: PLC0415
    from stream_app.errors import UnreachableError  # noqa: PLC0415
    from stream_app.kafka_io import require_broker  # noqa: PLC0415

    try:
        require_broker(get_settings().kafka_bootstrap)
    except UnreachableError as exc:
        _error(str(exc), hint=False)
