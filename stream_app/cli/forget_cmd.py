"""``stream-app forget USER_ID`` — request the deletion of a user (PIPL).

Produces a ``deletion_requested`` profile event keyed by the user. The worker that owns the
user's partition then publishes tag removals (reason ``deleted``), replaces the table record
by a deletion marker (a tombstone after ``STREAM_APP_DELETION_MARKER_DAYS``) and removes the
user from Redis: user hash, why record, timeline, segment sets, numeric zsets and the
tenant's user set. Records that name the user on the topics are not rewritten: they age out
with their retention (``topics/topics.yaml``; the table's changelog when the broker compacts
it), docs/GUARANTEES.md section 8. The command says how long, from the contract.

Example (pure part):
    >>> ev = deletion_event("u1", "t1", now_ms=1714528800000, event_id="del-1")
    >>> ev["type"], ev["user_id"], ev["tenant"], ev["ts"]
    ('deletion_requested', 'u1', 't1', 1714528800000)
    >>> retention_note()
    'input events, tags.changes, alerts, scoring.training: 7 days; events.dlq: 30 days'
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import click

from stream_app.config import get_settings

#: the topics whose records name a user and stay after a deletion, as the note groups them
#: (None: every input topic of the contract)
USER_RECORDS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("input events", None),
    ("tags.changes", ("tags.changes",)),
    ("alerts", ("alerts.hot_lead", "alerts.at_risk")),
    ("scoring.training", ("scoring.training",)),
    ("events.dlq", ("events.dlq",)),
)


def retention_note(contract: Any = None) -> str:
    """How long the topics keep records that name a deleted user (``retention.ms`` of
    ``topics/topics.yaml``, the longest of a group), grouped by that time."""
    from stream_app.contract import load_contract  # noqa: PLC0415

    contract = contract or load_contract()
    by_time: dict[str, list[str]] = {}
    for label, names in USER_RECORDS:
        ms = [int(contract.topic(n).config.get("retention.ms", "-1"))
              for n in (names or contract.input_topics())]
        kept = "no time limit" if min(ms) < 0 else f"{max(ms) / 86_400_000:g} days"
        by_time.setdefault(kept, []).append(label)
    return "; ".join(f"{', '.join(labels)}: {kept}" for kept, labels in by_time.items())


def refusal(ev: dict[str, Any], max_bytes: int, max_future_ms: int,
            now_ms: int | None = None) -> str | None:
    """Why the workers would dead-letter the deletion request ``ev`` (their own checks:
    :func:`~stream_app.events.parse_event` and the far-future cap), or None.

    Example:
        >>> now = 1714528800000
        >>> refusal(deletion_event("u1", "t1", now_ms=now), 65536, 86_400_000, now) is None
        True
        >>> refusal(deletion_event("u1", "acme corp", now_ms=now), 65536, 86_400_000, now)
        'schema: data.tenant must match pattern ^[A-Za-z0-9_-]+$'
        >>> refusal(deletion_event("u1", now_ms=0), 65536, 86_400_000, now)
        'ts_out_of_range: ts 0 is outside 2000..2100'
        >>> refusal(deletion_event("u1", now_ms=now + 2 * 86_400_000), 65536, 86_400_000, now)
        'ts_in_future: more than 86400000 ms after now (STREAM_APP_MAX_FUTURE_MS)'
    """
    import orjson  # noqa: PLC0415

    from stream_app.errors import EventError  # noqa: PLC0415
    from stream_app.events import parse_event  # noqa: PLC0415

    try:
        parsed = parse_event(orjson.dumps(ev), "profile", max_bytes=max_bytes)
    except EventError as exc:
        return str(exc)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if max_future_ms and parsed.ts > now + max_future_ms:
        return (f"ts_in_future: more than {max_future_ms} ms after now "
                "(STREAM_APP_MAX_FUTURE_MS)")
    return None


#: exit status of a deletion request that was sent while Redis served no profile of the user
#: (a mistyped id looks like success otherwise: QA38 F8)
NO_PROFILE_EXIT = 3


def has_profile(redis_url: str, tenant: str, user_id: str) -> bool | str:
    """True if Redis serves a profile of ``user_id`` in ``tenant`` (its user hash, what
    ``stream-app tags`` and the API read), False if not; the error's text if Redis cannot be
    read (the deletion does not need Redis: the request is sent all the same)."""
    import redis  # noqa: PLC0415

    from stream_app.serving.store import ProfileStore  # noqa: PLC0415

    try:
        store = ProfileStore(redis_url)
        try:
            return store.exists(tenant, user_id)
        finally:
            store.r.close()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"


def no_profile_note(user_id: str, tenant: str) -> str:
    """What ``forget`` says when Redis had no profile of the user.

    >>> print(no_profile_note("u9", "default"))
    warning: no profile of 'u9' in tenant 'default' in Redis before this request: a \
mistyped user id or tenant, a user already deleted, or one whose events the workers have not \
processed yet. The request was sent all the same (it also drops the user's events older \
than it that are still to be processed); check the id (exit status 3)
    """
    return (f"warning: no profile of {user_id!r} in tenant {tenant!r} in Redis before this "
            "request: a mistyped user id or tenant, a user already deleted, or one whose "
            "events the workers have not processed yet. The request was sent all the same "
            "(it also drops the user's events older than it that are still to be "
            f"processed); check the id (exit status {NO_PROFILE_EXIT})")


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
              help="event time of the request in epoch ms (default: now). Whatever it is, "
                   "everything the workers hold of the user goes when they read the request; "
                   "it decides the user's events read afterwards: those dated at or before it "
                   "are dropped, those after it start a new user. An earlier --ts lets the "
                   "user's events newer than it that are still to be processed (or sent "
                   "again) bring the user back")
@click.option("--bootstrap", default=None, help="Kafka bootstrap (default: from settings)")
def command(user_id: str, tenant: str, ts_ms: int | None, bootstrap: str | None) -> None:
    """Ask the workers to delete USER_ID's state, tags and Redis entries at once.

    Records naming the user on the topics are not rewritten: they age out with their
    retention (topics/topics.yaml; the command prints it; docs/GUARANTEES.md section 8).

    The request is always sent (it also covers the user's events not processed yet that are
    dated up to its time, --ts, by default now). Redis
    is looked up first: with no profile of USER_ID in TENANT (a mistyped id or tenant, a user
    already deleted, or events not processed yet) a warning says so.

    \b
    Exit status:
      0  request delivered; Redis had a profile of the user (or could not be read: noted)
      1  nothing delivered (refused before sending, or the broker did not take it)
      3  request delivered, but Redis had no profile of the user: check the id"""
    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.kafka_io import connected_producer, produce  # noqa: PLC0415
    from stream_app.security.kafka_auth import client_security_config  # noqa: PLC0415

    if not user_id.strip():
        raise click.ClickException("USER_ID must not be empty")
    settings = get_settings()
    ev = deletion_event(user_id, tenant, ts_ms)
    why_not = refusal(ev, settings.max_event_bytes, settings.max_future_ms)
    if why_not:
        raise click.ClickException(f"the workers would refuse this deletion request "
                                   f"({why_not}); nothing was sent")
    producer = connected_producer(bootstrap or settings.kafka_bootstrap,
                                  **client_security_config())
    # looked up before the request is sent: afterwards the workers may have deleted it
    found = has_profile(settings.redis_url, tenant, user_id)
    produce(producer, load_contract().stream_topic("profile"), user_id, ev)
    if producer.flush(30):
        raise click.ClickException("the deletion request was not delivered (broker down?)")
    click.echo(f"deletion requested for {user_id!r} (tenant {tenant!r}): event {ev['event_id']}"
               "\nthe workers apply it in a few seconds: `stream-app tags USER_ID --tenant "
               "TENANT` then finds no profile; a refused request (e.g. the user belongs to "
               "another tenant) is on events.dlq with the reason.\nrecords naming the user on "
               f"the topics age out with their retention: {retention_note()}")
    if isinstance(found, str):
        click.echo(f"note: could not look the user up in Redis at {settings.redis_url} "
                   f"({found}): whether it had a profile is not known", err=True)
    elif not found:
        click.echo(no_profile_note(user_id, tenant), err=True)
        raise SystemExit(NO_PROFILE_EXIT)
