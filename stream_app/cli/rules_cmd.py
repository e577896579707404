"""``stream-app rules validate|apply|show`` — tag rules as configuration, hot-reloaded."""

from __future__ import annotations

from pathlib import Path

import click

from stream_app.config import get_settings


@click.group("rules")
def command() -> None:
    """Validate, publish (hot reload) and inspect tag rule sets."""


def _compile(path: Path):  # noqa: ANN202
    from stream_app.errors import RuleError  # noqa: PLC0415
    from stream_app.rules_bundle import compile_bundle, read_bundle  # noqa: PLC0415

    try:
        bundle = read_bundle(path)
        return bundle, compile_bundle(bundle)
    except RuleError as exc:
        raise click.ClickException(f"rules refused: {exc}") from exc


@command.command("validate")
@click.argument("path", type=click.Path(path_type=Path), default=None, required=False)
def validate(path: Path | None) -> None:
    """Check a rule file or directory (default: settings.rules_path); print its tags."""
    path = path or get_settings().rules_path
    _, rs = _compile(path)
    fams: dict[str, int] = {}
    for t in rs.tags:
        fams[t.family] = fams.get(t.family, 0) + 1
    click.echo(f"ok: {len(rs.tags)} tags in {len(fams)} families, version {rs.version}")
    for fam, n in sorted(fams.items()):
        click.echo(f"  {fam:16} {n} tags")


@command.command("apply")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--bootstrap", default=None)
def apply(path: Path, bootstrap: str | None) -> None:
    """Validate PATH and publish it to rules.versions: running workers switch to it."""
    from stream_app.kafka_io import make_producer  # noqa: PLC0415
    from stream_app.rules_bundle import BUNDLE_KEY, encode  # noqa: PLC0415

    bundle, rs = _compile(path)
    bundle["version"] = rs.version
    producer = make_producer(bootstrap or get_settings().kafka_bootstrap,
                             **{"message.max.bytes": 16 * 1024 * 1024})
    producer.produce("rules.versions", key=BUNDLE_KEY, value=encode(bundle))
    if producer.flush(30):
        raise click.ClickException("the rule set was not delivered (broker unreachable?)")
    click.echo(f"published rule set {rs.version} ({len(rs.tags)} tags); "
               "workers load it within seconds")


@command.command("show")
@click.option("--bootstrap", default=None)
def show(bootstrap: str | None) -> None:
    """Print the newest published rule set version (if any)."""
    from stream_app.kafka_io import read_assigned  # noqa: PLC0415
    from stream_app.rules_bundle import decode  # noqa: PLC0415

    c = read_assigned(bootstrap or get_settings().kafka_bootstrap, "rules.versions", 1)
    last = None
    while True:
        msgs = c.consume(num_messages=100, timeout=1.0)
        if not msgs:
            break
        for m in msgs:
            if not m.error() and m.value():
                last = decode(m.value())
    c.close()
    if last is None:
        click.echo("no rule set published: workers use their local rules directory")
    else:
        click.echo(f"version {last.get('version')} from {last.get('source')}: "
                   f"{', '.join(sorted(last['files']))}")
