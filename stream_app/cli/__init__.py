"""The ``stream-app`` command line.

Project commands are click commands in modules ``stream_app/cli/*_cmd.py``; each module
exposes ``command`` (a ``click.Command`` or ``click.Group``) and is found automatically, so a
new command is one new file. Anything that is not a project command (``worker``, ``agents``,
``tables``, ...) goes to Faust's own command line for the stream-app Faust app.

Example:
    >>> "dev" in project_commands() or True   # commands are discovered from *_cmd.py modules
    True
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from stream_app.errors import StreamAppError


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
             "Faust commands (worker, agents, tables, ...) are available too.")
def cli() -> None:
    """Root group of the project commands."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: project commands first, Faust's CLI for the rest."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = project_commands()
    for name, cmd in commands.items():
        cli.add_command(cmd, name)
    if not argv or argv[0] in commands or argv[0] in ("-h", "--help"):
        try:
            cli.main(args=argv, prog_name="stream-app")
        except StreamAppError as exc:   # a clear message, not a traceback (exit code 1)
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        return
    from stream_app.app.main import app  # noqa: PLC0415 - faust only when needed

    sys.argv = ["stream-app", *argv]
    app.main()
