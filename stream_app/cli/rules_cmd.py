"""``stream-app rules validate|apply|show`` — tag rules as configuration, hot-reloaded."""

from __future__ import annotations

from pathlib import Path

import click

from stream_app.cli.option_types import FiniteFloatRange
from stream_app.config import get_settings
from stream_app.text import plural

#: default --timeout of reading rules.versions (``rules_bundle.READ_TIMEOUT_S``; not imported
#: here: the rules compiler is loaded only by the commands that need it)
READ_TIMEOUT_S = 30.0


@click.group("rules")
def command() -> None:
    """Validate, publish (hot reload) and inspect tag rule sets."""


def _compile(path: Path):  # noqa: ANN202
    from stream_app.errors import RuleError  # noqa: PLC0415
    from stream_app.rules_bundle import (  # noqa: PLC0415
        compile_bundle,
        read_bundle,
        rules_root,
        shown_path,
    )

    try:   # errors name the file as rules/dir/file.yaml:LINE (relative to the cwd, else absolute)
        bundle = read_bundle(path)
        return bundle, compile_bundle(bundle, root=shown_path(rules_root(bundle["source"])))
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
    click.echo(f"ok: {plural(len(rs.tags), 'tag')} in {plural(len(fams), 'family', 'families')}, "
               f"version {rs.version}")
    for fam, n in sorted(fams.items()):
        click.echo(f"  {fam:16} {plural(n, 'tag')}")


@command.command("apply")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--bootstrap", default=None, help="Kafka bootstrap (default: from settings)")
@click.option("--allow-removal", is_flag=True,
              help="publish even if PATH lacks tags of the rule set the workers run (they are "
                   "removed from every user)")
@click.option("--timeout", type=FiniteFloatRange(min=0, min_open=True), default=READ_TIMEOUT_S,
              show_default=True,
              help="seconds to read the published rule set (rules.versions) to its end")
def apply(path: Path, bootstrap: str | None, allow_removal: bool, timeout: float) -> None:
    """Validate PATH and publish it to rules.versions: running workers switch to it.

    The rule set the workers run is read first (to the topic's end offset): PATH may not drop
    its tags without --allow-removal, and nothing is published when it cannot be read."""
    from stream_app.errors import StreamAppError  # noqa: PLC0415
    from stream_app.kafka_io import make_producer  # noqa: PLC0415
    from stream_app.rules_bundle import BUNDLE_KEY, encode, live_ruleset  # noqa: PLC0415
    from stream_app.services.topics_admin import ensure_topic  # noqa: PLC0415

    bundle, rs = _compile(path)
    bundle["version"] = rs.version
    settings = get_settings()
    bootstrap = bootstrap or settings.kafka_bootstrap
    try:   # checks the broker; a published set not read to its end is an error, not "none"
        # the topic as the contract declares it (1 partition, compacted), not auto-created
        # by the producer with the broker's defaults
        ensure_topic(bootstrap, "rules.versions", settings.partitions, settings.replication)
        running, source = live_ruleset(bootstrap, settings.rules_path, timeout, "--timeout")
    except StreamAppError as exc:
        raise click.ClickException(f"{exc}. Nothing was published") from exc
    gone = sorted({t.id for t in running.tags} - {t.id for t in rs.tags})
    if gone and not allow_removal:
        # e.g. one file of a directory given alone: every other tag would go from every user
        raise click.ClickException(
            f"{path} lacks {len(gone)} of the {plural(len(running.tags), 'tag')} the workers run "
            f"({source}): {', '.join(gone[:8])}{', ...' if len(gone) > 8 else ''}. Publishing "
            f"it removes them from every user; `stream-app rules diff {path}` shows the "
            "effect, --allow-removal publishes anyway. Nothing was published")
    producer = make_producer(bootstrap, **{"message.max.bytes": 16 * 1024 * 1024})
    producer.produce("rules.versions", key=BUNDLE_KEY, value=encode(bundle))
    if producer.flush(30):
        raise click.ClickException("the rule set was not delivered (broker unreachable?)")
    click.echo(f"published rule set {rs.version} ({plural(len(rs.tags), 'tag')}); "
               "workers load it within seconds")


@command.command("show")
@click.option("--bootstrap", default=None)
@click.option("--timeout", type=FiniteFloatRange(min=0, min_open=True), default=READ_TIMEOUT_S,
              show_default=True,
              help="seconds to read the published rule set (rules.versions) to its end")
def show(bootstrap: str | None, timeout: float) -> None:
    """Print the newest published rule set version (if any)."""
    from stream_app.rules_bundle import latest_bundle  # noqa: PLC0415

    last = latest_bundle(bootstrap or get_settings().kafka_bootstrap, timeout, "--timeout")
    if last is None:
        click.echo("no rule set published: workers use their local rules directory")
    else:
        click.echo(describe_bundle(last))


def describe_bundle(bundle: dict) -> str:
    """One line about a published bundle: version, source path (absolute since it is stored
    so at apply time), when and by whom, files.

    >>> describe_bundle({"version": "v1+ab", "source": "/srv/rules", "published_at": 0,
    ...                  "published_by": "ops@h1", "files": {"b.yaml": "", "a.yaml": ""}})
    'version v1+ab from /srv/rules (published 1970-01-01 00:00:00 UTC by ops@h1): a.yaml, b.yaml'
    """
    from datetime import UTC, datetime  # noqa: PLC0415

    when = []
    if isinstance(bundle.get("published_at"), int):
        at = datetime.fromtimestamp(bundle["published_at"] / 1000, UTC)
        when.append(f"published {at:%Y-%m-%d %H:%M:%S} UTC")
    if bundle.get("published_by"):
        when.append(f"by {bundle['published_by']}")
    extra = f" ({' '.join(when)})" if when else ""
    return (f"version {bundle.get('version')} from {bundle.get('source')}{extra}: "
            f"{', '.join(sorted(bundle['files']))}")


@command.command("diff")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--bootstrap", default=None)
@click.option("--json", "as_json", is_flag=True, help="print the full diff as JSON")
@click.option("--timeout", type=FiniteFloatRange(min=0, min_open=True), default=120.0,
              show_default=True,
              help="seconds without progress before giving up reading the state (the "
                   "users table's changelog: a large one is read at its own pace); also "
                   "the limit for reading the rule set the workers run")
def diff(path: Path, bootstrap: str | None, as_json: bool, timeout: float) -> None:
    """Shadow-run the rule set at PATH over the retained state: who would gain or lose which
    tag, before it goes live. The state is read from the users table's changelog; PATH is
    compared with the rule set the workers run (the newest published with ``rules apply``,
    else the local rules directory)."""
    import time  # noqa: PLC0415

    import orjson  # noqa: PLC0415

    from stream_app.cli.rebuild_cmd import (  # noqa: PLC0415
        TableReader,
        changelog_topic,
        read_table,
    )
    from stream_app.rules.diff import diff_rulesets  # noqa: PLC0415
    from stream_app.rules_bundle import live_ruleset  # noqa: PLC0415

    s = get_settings()
    bootstrap = bootstrap or s.kafka_bootstrap
    _, new = _compile(path)
    reader = TableReader(bootstrap, changelog_topic(s.app_id), s.partitions)   # checks it
    try:
        old, where = live_ruleset(bootstrap, s.rules_path, timeout, "--timeout")
        states = read_table(reader, timeout)
    finally:
        reader.close()
    now = max((st.get("now") or 0 for st in states.values() if st), default=0) or int(
        time.time() * 1000)
    result = diff_rulesets(old, new, states.values(), now, day_offset_ms=s.day_offset_ms)
    doc = result.to_dict()
    doc["old_source"] = where
    if as_json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"{doc['old_version']} (live, {where}) -> {doc['new_version']}: "
               f"{plural(doc['users'], 'user')}, {doc['changed_users']:,} would change")
    for tid, d in doc["tags"].items():
        moves = sorted(d["transitions"].items(), key=lambda kv: (-kv[1], kv[0]))
        click.echo(f"  {tid:20} " + ", ".join(f"{m} {n:,}" for m, n in moves))
    for name in doc["missing_history"]:
        click.echo(f"  note: no history yet for {name} (fills from new events)")
