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
@click.option("--history", is_flag=True,
              help="every rule set still on rules.versions, oldest first, with its tag "
                   "families: the versions to roll back to (`rules export`). The topic is "
                   "compacted: once the broker compacts it, only the newest is left")
def show(bootstrap: str | None, timeout: float, history: bool) -> None:
    """Print the newest published rule set version (if any), or with --history every one
    the topic still holds."""
    from stream_app.rules_bundle import latest_bundle, published_bundles  # noqa: PLC0415

    bootstrap = bootstrap or get_settings().kafka_bootstrap
    if history:
        for line in history_lines(published_bundles(bootstrap, timeout, "--timeout")):
            click.echo(line)
        return
    last = latest_bundle(bootstrap, timeout, "--timeout")
    if last is None:
        click.echo("no rule set published: workers use their local rules directory")
    else:
        click.echo(describe_bundle(last))


def _published(bundle: dict) -> str:
    """`` (published <UTC time> by <who>)`` of a bundle, or ``''`` when it says neither."""
    from datetime import UTC, datetime  # noqa: PLC0415

    when = []
    if isinstance(bundle.get("published_at"), int):
        at = datetime.fromtimestamp(bundle["published_at"] / 1000, UTC)
        when.append(f"published {at:%Y-%m-%d %H:%M:%S} UTC")
    if bundle.get("published_by"):
        when.append(f"by {bundle['published_by']}")
    return f" ({' '.join(when)})" if when else ""


def describe_bundle(bundle: dict) -> str:
    """One line about a published bundle: version, source path (absolute since it is stored
    so at apply time), when and by whom, files.

    >>> describe_bundle({"version": "v1+ab", "source": "/srv/rules", "published_at": 0,
    ...                  "published_by": "ops@h1", "files": {"b.yaml": "", "a.yaml": ""}})
    'version v1+ab from /srv/rules (published 1970-01-01 00:00:00 UTC by ops@h1): a.yaml, b.yaml'
    """
    return (f"version {bundle.get('version')} from {bundle.get('source')}{_published(bundle)}: "
            f"{', '.join(sorted(bundle['files']))}")


def history_lines(bundles: list[tuple[int, dict]]) -> list[str]:
    """What ``rules show --history`` prints of the bundles on ``rules.versions`` (offset,
    bundle; oldest first): one line per set (offset, version, source, when, by whom, its tags
    and families), the newest marked as the one the workers run, then how to roll back (QA40
    F5.1: only the newest could be seen).

    >>> tag = "{id: %s, family: %s, zh: a, en: b, kind: bool, value: 'count(page_view) > 0'}"
    >>> files = {"a.yaml": f"tags: [{tag % ('x', 'activity')}, {tag % ('y', 'rfm')}]"}
    >>> for line in history_lines([  # doctest: +ELLIPSIS
    ...         (0, {"version": "1+aa", "source": "/srv/r", "files": files}),
    ...         (1, {"version": "1+bb", "source": "/srv/r", "published_at": 0,
    ...              "files": {"a.yaml": "tags: []"}})]):
    ...     print(line)
    2 rule sets on rules.versions, oldest first:
      offset 0: version 1+aa from /srv/r: 2 tags in 2 families (activity, rfm)
      offset 1: version 1+bb from /srv/r (published 1970-01-01 00:00:00 UTC): 0 tags in 0 ...
    roll back: `stream-app rules export VERSION DIR` writes an earlier set's files, ...
    >>> history_lines([])
    ['no rule set published: workers use their local rules directory']
    """
    if not bundles:
        return ["no rule set published: workers use their local rules directory"]
    out = [f"{plural(len(bundles), 'rule set')} on rules.versions, oldest first:"]
    for i, (offset, bundle) in enumerate(bundles):
        fams, note = _tag_families(bundle)
        names = sorted(set(fams.values()))
        newest = "; newest: the workers run it" if i == len(bundles) - 1 else ""
        out.append(f"  offset {offset}: version {bundle.get('version')} from "
                   f"{bundle.get('source')}{_published(bundle)}: {plural(len(fams), 'tag')} in "
                   f"{plural(len(names), 'family', 'families')}"
                   + (f" ({', '.join(names)})" if names else "") + note + newest)
    if len(bundles) > 1:
        out.append("roll back: `stream-app rules export VERSION DIR` writes an earlier set's "
                   "files, `stream-app rules diff DIR` shows what it changes, `stream-app rules "
                   "apply DIR` publishes it again (docs/RULES.md \"Tools around rules\")")
    return out


def _tag_families(bundle: dict) -> tuple[dict[str, str], str]:
    """Tag id -> family of the tags a bundle publishes (as ``rules apply`` counts them: the
    hidden ones left out), and a note: a set this release cannot compile (written by another
    one) is read from its YAML as it stands, hidden tags included.

    >>> _tag_families({"files": {"a.yaml": "tags: [{id: x, family: f}]"}})
    ({'x': 'f'}, ' (its YAML: it does not compile here)')
    """
    from stream_app.errors import RuleError  # noqa: PLC0415
    from stream_app.rules_bundle import bundle_families, compile_bundle  # noqa: PLC0415

    try:
        return {t.id: t.family for t in compile_bundle(bundle).tags}, ""
    except RuleError:
        return bundle_families(bundle), " (its YAML: it does not compile here)"


@command.command("export")
@click.argument("version")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--bootstrap", default=None)
@click.option("--timeout", type=FiniteFloatRange(min=0, min_open=True), default=READ_TIMEOUT_S,
              show_default=True,
              help="seconds to read the published rule sets (rules.versions) to their end")
def export(version: str, directory: Path, bootstrap: str | None, timeout: float) -> None:
    """Write the files of the published rule set VERSION into DIRECTORY (new or empty), to
    roll back to it: `stream-app rules apply DIRECTORY` publishes it again. VERSION is one
    that `rules show --history` lists (the whole version or its hash after the last "+"; the
    newest such record). The set is read from rules.versions, which keeps older sets only
    until the broker compacts the topic."""
    from stream_app.errors import RuleError  # noqa: PLC0415
    from stream_app.rules_bundle import compile_bundle, published_bundles  # noqa: PLC0415

    bundles = published_bundles(bootstrap or get_settings().kafka_bootstrap, timeout,
                                "--timeout")
    bundle = find_version(bundles, version)
    if directory.exists() and any(directory.iterdir()):
        raise click.ClickException(f"{directory} is not empty: give a new or empty directory "
                                   "(nothing was written)")
    files = bundle["files"]
    bad = [name for name in files if Path(name).name != name
           or Path(name).suffix not in (".yaml", ".yml")]
    if bad:
        raise click.ClickException(f"rule set {version} names files that are no rule file "
                                   f"names: {', '.join(sorted(bad))} (nothing was written)")
    try:   # the set as `rules apply DIRECTORY` will read it: its version is the same
        written = compile_bundle({"files": files}, root=directory).version
    except RuleError as exc:
        raise click.ClickException(f"rule set {version} on rules.versions does not compile "
                                   f"here: {exc} (nothing was written)") from exc
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(files.items()):
        (directory / name).write_text(text, encoding="utf-8", newline="")
    click.echo(f"wrote {plural(len(files), 'file')} of rule set {written}"
               f"{_published(bundle)} to {directory}: `stream-app rules diff {directory}` "
               f"shows what publishing it changes, `stream-app rules apply {directory}` "
               "publishes it (the workers backfill every user under it)")


def find_version(bundles: list[tuple[int, dict]], version: str) -> dict:
    """The newest of ``bundles`` (offset, bundle; oldest first) whose version is ``version``
    or ends with ``+version`` (its hash); a ClickException listing the versions held if none.

    >>> held = [(0, {"version": "1+aa"}), (1, {"version": "1+bb"}), (2, {"version": "1+aa",
    ...         "source": "again"})]
    >>> find_version(held, "aa")["source"], find_version(held, "1+bb")["version"]
    ('again', '1+bb')
    >>> find_version(held, "cc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    click.exceptions.ClickException: no rule set cc on rules.versions; it holds 1+aa, 1+bb ...
    """
    for _, bundle in reversed(bundles):
        held = str(bundle.get("version"))
        if held == version or held.endswith(f"+{version}"):
            return bundle
    names = list(dict.fromkeys(str(b.get("version")) for _, b in bundles))
    raise click.ClickException(
        f"no rule set {version} on rules.versions; "
        + (f"it holds {', '.join(names)}" if names else "none was published")
        + " (`stream-app rules show --history`)")


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
