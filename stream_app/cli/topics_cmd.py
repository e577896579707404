"""``stream-app topics create|list`` — the topic contract on a broker."""

from __future__ import annotations

import click

from stream_app.config import get_settings
from stream_app.text import plural


@click.group("topics")
def command() -> None:
    """Create or list the topics of the contract (topics/topics.yaml)."""


@command.command("create")
@click.option("--bootstrap", default=None)
def create(bootstrap: str | None) -> None:
    """Create every missing topic (idempotent); warn about an existing topic whose partition
    count differs from the contract's."""
    from stream_app.services.topics_admin import create_topics  # noqa: PLC0415

    s = get_settings()
    created = create_topics(bootstrap or s.kafka_bootstrap, s.partitions, s.replication,
                            warn=lambda msg: click.echo(f"warning: {msg}", err=True))
    click.echo(f"created {plural(len(created), 'topic')}: {', '.join(created) or '-'}")


@command.command("list")
def list_() -> None:
    """Print the contract: name, role, key, description."""
    from stream_app.contract import load_contract  # noqa: PLC0415

    for t in load_contract().topics.values():
        click.echo(f"{t.name:24} {t.role:8} key={t.key:12} {t.en} / {t.zh}")
