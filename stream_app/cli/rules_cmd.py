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
    from stream_app.kafka_io import connected_producer  # noqa: PLC0415
    from stream_app.rules_bundle import BUNDLE_KEY, encode  # noqa: PLC0415

    bundle, rs = _compile(path)
    bundle["version"] = rs.version
    producer = connected_producer(bootstrap or get_settings().kafka_bootstrap,
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


@command.command("diff")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--bootstrap", default=None)
@click.option("--json", "as_json", is_flag=True, help="print the full diff as JSON")
@click.option("--timeout", default=120.0, show_default=True, help="seconds to read the state")
def diff(path: Path, bootstrap: str | None, as_json: bool, timeout: float) -> None:
    """Shadow-run the rule set at PATH over the retained state: who would gain or lose which
    tag, before it goes live. The state is read from the users table's changelog."""
    import time  # noqa: PLC0415

    import orjson  # noqa: PLC0415

    from stream_app.cli.rebuild_cmd import TableReader, changelog_topic  # noqa: PLC0415
    from stream_app.rules.diff import diff_rulesets  # noqa: PLC0415
    from stream_app.rules.loader import load_ruleset  # noqa: PLC0415

    s = get_settings()
    _, new = _compile(path)
    old = load_ruleset(s.rules_path)
    reader = TableReader(bootstrap or s.kafka_bootstrap, changelog_topic(s.app_id),
                         s.partitions)
    try:
        states = reader.read_all(timeout)
    finally:
        reader.close()
    now = max((st.get("now") or 0 for st in states.values() if st), default=0) or int(
        time.time() * 1000)
    result = diff_rulesets(old, new, states.values(), now, day_offset_ms=s.day_offset_ms)
    doc = result.to_dict()
    if as_json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"{doc['old_version']} -> {doc['new_version']}: {doc['users']:,} users, "
               f"{doc['changed_users']:,} would change")
    for tid, d in sorted(doc["tags"].items()):
        click.echo(f"  {tid:20} +{d['gained']:,} gain  -{d['lost']:,} lose")
    for name in doc["missing_history"]:
        click.echo(f"  note: no history yet for {name} (fills from new events)")
