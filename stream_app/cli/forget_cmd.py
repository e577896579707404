"""``stream-app forget USER_ID`` — request the deletion of a user (PIPL).

Produces a ``deletion_requested`` profile event keyed by the user. The worker that owns the
user's partition then publishes tag removals (reason ``deleted``), deletes the table record
(a changelog tombstone) and removes the user from Redis: user hash, why record, timeline,
segment sets, numeric zsets and the tenant's user set.

Example (pure part):
    >>> ev = deletion_event("u1", "t1", now_ms=1714528800000, event_id="del-1")
    >>> ev["type"], ev["user_id"], ev["tenant"], ev["ts"]
    ('deletion_requested', 'u1', 't1', 1714528800000)
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import click

from stream_app.config import get_settings


def deletion_event(user_id: str, tenant: str = "default", now_ms: int | None = None,
                   event_id: str | None = None, reason: str = "user_request") -> dict[str, Any]:
    """The profile event that asks the workers to forget ``user_id``."""
    return {"event_id": event_id or f"del-{uuid.uuid4().hex}", "user_id": user_id,
            "ts": int(time.time() * 1000) if now_ms is None else now_ms,
            "type": "deletion_requested", "tenant": tenant, "props": {"reason": reason}}


@click.command("forget")
@click.argument("user_id")
@click.option("--tenant", default="default", show_default=True)
@click.option("--ts", "ts_ms", type=int, default=None,
              help="event time in epoch ms (default: now)")
@click.option("--bootstrap", default=None, help="Kafka bootstrap (default: from settings)")
def command(user_id: str, tenant: str, ts_ms: int | None, bootstrap: str | None) -> None:
    """Ask the workers to delete every trace of USER_ID (state, tags, segments)."""
    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.kafka_io import connected_producer, produce  # noqa: PLC0415
    from stream_app.security.kafka_auth import client_security_config  # noqa: PLC0415

    if not user_id.strip():
        raise click.ClickException("USER_ID must not be empty")
    settings = get_settings()
    ev = deletion_event(user_id, tenant, ts_ms)
    producer = connected_producer(bootstrap or settings.kafka_bootstrap,
                                  **client_security_config())
    produce(producer, load_contract().stream_topic("profile"), user_id, ev)
    if producer.flush(30):
        raise click.ClickException("the deletion request was not delivered (broker down?)")
    click.echo(f"deletion requested for {user_id!r} (tenant {tenant!r}): event {ev['event_id']}"
               "\nthe workers apply it in a few seconds: `stream-app tags USER_ID --tenant "
               "TENANT` then finds no profile; a refused request (e.g. the user belongs to "
               "another tenant) is on events.dlq with the reason")
