"""``stream-app tags USER_ID`` — the user's current tags, from Redis.

``--wait SECONDS`` polls Redis until the user's profile appears (an event just produced is
in Redis once a worker has processed it, which takes longer while the workers work through
a backlog, e.g. ``make run``'s warm-up history), and fails with a clear message when it does
not within that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from stream_app.config import get_settings

#: seconds between two reads of Redis while ``--wait`` polls
POLL_INTERVAL_S = 0.5


def poll_profile(read: Callable[[], dict[str, Any]], wait_s: float,
                 interval_s: float = POLL_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """``read()`` until it returns a non-empty profile or ``wait_s`` seconds have passed
    (``wait_s`` 0: one read); the last (empty) read when none came.

    Example:
        >>> answers = iter([{}, {}, {"tag:activity": "low"}])
        >>> poll_profile(lambda: next(answers), 10, sleep=lambda s: None)
        {'tag:activity': 'low'}
        >>> poll_profile(dict, 0)
        {}
    """
    deadline = clock() + wait_s
    while True:
        profile = read()
        left = deadline - clock()
        if profile or left <= 0:
            return profile
        sleep(min(interval_s, left))


def no_profile(user_id: str, tenant: str, waited_s: float) -> str:
    """The error when Redis holds no profile of the user (after ``--wait``, if given).

    Example:
        >>> no_profile("u1", "default", 0)
        "no profile for user 'u1' in tenant 'default'"
        >>> no_profile("u1", "default", 30)[:70]
        "no profile for user 'u1' in tenant 'default' after waiting 30 s: the w"
    """
    msg = f"no profile for user {user_id!r} in tenant {tenant!r}"
    if waited_s <= 0:
        return msg
    return (f"{msg} after waiting {waited_s:g} s: the workers have not processed an event of "
            "the user yet (a backlog they are still working through, e.g. `make run`'s "
            "warm-up history, shows as its summary's backlog: wait longer with a larger "
            "--wait) or the user id or --tenant is not the one the events carry")


@click.command("tags")
@click.argument("user_id")
@click.option("--tenant", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option("--wait", "wait_s", type=click.FloatRange(0, 3600), default=0, show_default=True,
              metavar="SECONDS",
              help="poll Redis up to SECONDS (0..3600) until the user's profile appears, "
                   "e.g. right after producing the user's first event; 0 = read once")
def command(user_id: str, tenant: str, as_json: bool, wait_s: float) -> None:
    """Print USER_ID's current tags (and scores) as served from Redis."""
    import orjson  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    from stream_app.serving.store import ProfileStore  # noqa: PLC0415

    store = ProfileStore(get_settings().redis_url)
    try:
        profile = poll_profile(lambda: store.profile(tenant, user_id), wait_s)
    except Exception as exc:  # noqa: BLE001
        raise click.ClickException(
            f"cannot read Redis at {get_settings().redis_url}: {exc}") from exc
    if not profile:
        raise click.ClickException(no_profile(user_id, tenant, wait_s))
    if as_json:
        click.echo(orjson.dumps(profile, option=orjson.OPT_INDENT_2).decode())
        return
    # the user id and the values are data (text tags come from event props): rich Text,
    # never read as console markup ("[/]" in a value would crash the command)
    table = Table(title=Text(f"{user_id} ({tenant})", style="table.title"))
    table.add_column("field")
    table.add_column("value")
    for k in sorted(profile):
        table.add_row(Text(k), Text(shown(k, profile[k])))
    Console().print(table)


def shown(field: str, value: object) -> str:
    """A profile field's value for the table: text as it is, a model target's
    ``[score, layer, source]`` in words, anything else as JSON (``true``, ``["a","b"]``: the
    spelling of the API and ``--json``, not Python's).

    Example:
        >>> shown("tag:goal", "career_switch"), shown("tag:at_risk", True)
        ('career_switch', 'true')
        >>> shown("tag:categories_bought", ["java", "pmp"])
        '["java","pmp"]'
        >>> shown("score:convert", [0.37, "medium", "model"])
        '0.37 (layer medium, from the model)'
    """
    import orjson  # noqa: PLC0415

    if isinstance(value, str):
        return value
    if field.startswith("score:") and isinstance(value, list) and len(value) == 3:
        score, layer, source = value
        return f"{score} (layer {layer}, from the {source})"
    return orjson.dumps(value).decode()
