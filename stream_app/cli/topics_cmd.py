"""``stream-app topics create|list`` — the topic contract on a broker."""

from __future__ import annotations

import click

from stream_app.config import get_settings
from stream_app.errors import ConfigError
from stream_app.text import plural


@click.group("topics")
def command() -> None:
    """Create or list the topics of the contract (topics/topics.yaml)."""


@command.command("create")
@click.option("--bootstrap", default=None)
@click.option("--strict", is_flag=True,
              help="exit 1 (one Error: line) when an existing topic's partition count "
                   "differs from the contract's, after creating the missing ones (a worker "
                   "pod's init container: the worker does not start on such topics)")
def create(bootstrap: str | None, strict: bool) -> None:
    """Create every missing topic (idempotent); warn about an existing topic whose partition
    count differs from the contract's (with --strict: an error)."""
    from stream_app.services.topics_admin import create_topics  # noqa: PLC0415

    s = get_settings()
    mismatches: list[str] = []
    created = create_topics(bootstrap or s.kafka_bootstrap, s.partitions, s.replication,
                            warn=mismatches.append if strict else
                            lambda msg: click.echo(f"warning: {msg}", err=True))
    click.echo(f"created {plural(len(created), 'topic')}: {', '.join(created) or '-'}")
    if mismatches:
        raise ConfigError(strict_error(mismatches))


def strict_error(mismatches: list[str]) -> str:
    """The one error line of ``topics create --strict`` for the partition mismatches found
    (:func:`~stream_app.services.topics_admin.partition_mismatch` texts).

    Example:
        >>> from stream_app.services.topics_admin import partition_mismatch
        >>> print(strict_error([partition_mismatch("metrics.partials", 4, 1)]))
        ... # doctest: +ELLIPSIS
        topic metrics.partials exists with 4 partitions, the contract declares 1 (created ...
        >>> print(strict_error([partition_mismatch("metrics.partials", 4, 1),
        ...                     partition_mismatch("scoring.training", 4, 1)]))
        ... # doctest: +ELLIPSIS
        2 topics differ from the contract: topic metrics.partials exists with 4 partitions, \
the contract declares 1; topic scoring.training exists with 4 partitions, the contract \
declares 1 (created otherwise, ...
    """
    if len(mismatches) == 1:
        return mismatches[0]
    heads = "; ".join(m.split(" (", 1)[0] for m in mismatches)
    return (f"{len(mismatches)} topics differ from the contract: {heads} (created otherwise, "
            "e.g. auto-created by a producer, or with another STREAM_APP_PARTITIONS); to fix "
            "them, delete them and run `stream-app topics create` again (their records are "
            "lost)")


@command.command("list")
def list_() -> None:
    """Print the contract: name, role, key, description."""
    from stream_app.contract import load_contract  # noqa: PLC0415

    for t in load_contract().topics.values():
        click.echo(f"{t.name:24} {t.role:8} key={t.key:12} {t.en} / {t.zh}")
