"""``stream-app compile``: build the compiled hot modules (Cython), show or remove them.

Example:
    >>> from click.testing import CliRunner
    >>> "--status" in CliRunner().invoke(command, ["--help"]).output
    True
"""

from __future__ import annotations

import click

from stream_app import compiled


@click.command("compile")
@click.option("--status", "show", is_flag=True, help="list each module: compiled, stale, source")
@click.option("--force", is_flag=True, help="compile every module again")
@click.option("--clean", is_flag=True, help="remove the compiled modules (run from source)")
@click.option("--jobs", default=2, show_default=True, help="parallel C compilations")
def command(show: bool, force: bool, clean: bool, jobs: int) -> None:
    """Compile the worker's hot modules with Cython (sources unchanged; only modules whose
    source changed are compiled again). A module whose source changed after its build is
    loaded from source until it is compiled again; STREAM_APP_PURE_PYTHON=1 runs them all
    from source."""
    if clean:
        click.echo(f"removed {compiled.clean()} compiled module(s)")
        return
    if not show:
        try:
            done = compiled.build(force=force, jobs=jobs, echo=click.echo)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"compiled {len(done)} module(s)" if done else "compiled modules up to date")
    states = compiled.status()
    if show:
        for name, state in states.items():
            click.echo(f"{state:9s} {name}")
    counts = {s: list(states.values()).count(s) for s in ("compiled", "stale", "source")}
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items()))
