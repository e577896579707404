"""``stream-app tags USER_ID`` — the user's current tags, from Redis."""

from __future__ import annotations

import click

from stream_app.config import get_settings


@click.command("tags")
@click.argument("user_id")
@click.option("--tenant", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def command(user_id: str, tenant: str, as_json: bool) -> None:
    """Print USER_ID's current tags (and scores) as served from Redis."""
    import orjson  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    from stream_app.serving.store import ProfileStore  # noqa: PLC0415

    store = ProfileStore(get_settings().redis_url)
    try:
        profile = store.profile(tenant, user_id)
    except Exception as exc:  # noqa: BLE001
        raise click.ClickException(
            f"cannot read Redis at {get_settings().redis_url}: {exc}") from exc
    if not profile:
        raise click.ClickException(f"no profile for user {user_id!r} in tenant {tenant!r}")
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
