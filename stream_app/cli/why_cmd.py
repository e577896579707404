"""``stream-app why USER_ID TAG_ID`` — why a user holds a tag, and the tag's history.

Prints the why record stored with the tag's current value (rule and version, the case and
the values that satisfied it; the triggering event when the record has one: Redis's packed
records leave it to ``tags.changes``) and the tag's timeline (newest first), both read from
Redis. The record is written when the tag's value changes: its values are those of that
change, not of now (a learner who turned ``activity = high`` with 4 active days shows 4 while
the tag stays high, however many days follow). The Redis timeline is opt-in
(``STREAM_APP_REDIS_TIMELINE=5``); without it the command says where the history is.

Example (pure part: the lines of a why record):
    >>> why_lines({"rule": "activity", "rule_version": 1, "case": "active_days(30d) > 3",
    ...            "values": {"active_days(30d)": 4}, "trigger": "e9",
    ...            "recent_events": ["e7", "e8", "e9"], "ruleset": "2024-05-01.1+ab"})
    ['rule        activity (version 1, rule set 2024-05-01.1+ab)', \
'matched     active_days(30d) > 3', 'value of    active_days(30d) = 4', \
'trigger     event e9', 'recent      e7, e8, e9']
"""

from __future__ import annotations

from typing import Any

import click

from stream_app.config import get_settings


def why_lines(why: dict[str, Any]) -> list[str]:
    """Readable lines of a why record: a non-integral value to 2 places, the milliseconds
    of ``since()``/``since_first()`` also as a duration (``show_value`` of
    :mod:`stream_app.rules.explain`; the record and ``--json`` keep the exact values).

    >>> why_lines({"rule": "a", "rule_version": 1,
    ...            "values": {"since(lesson_attended)": 85585413, "attendance_rate": 2 / 3}})[1:]
    ['value of    since(lesson_attended) = 85585413 ms (23.8 h)', \
'value of    attendance_rate = 0.67']
    """
    from stream_app.rules.explain import show_value  # noqa: PLC0415 - the rules load slowly

    lines = [f"rule        {why.get('rule')} (version {why.get('rule_version')}"
             + (f", rule set {why['ruleset']})" if why.get("ruleset") else ")")]
    if why.get("case"):
        lines.append(f"matched     {why['case']}")
    for name, value in (why.get("values") or {}).items():
        lines.append(f"value of    {name} = {show_value(str(name), value, 'en')}")
    if "trigger" in why:   # not kept in Redis's packed why records (it is on tags.changes)
        trig = why["trigger"]
        lines.append("trigger     " + (f"event {trig}" if trig
                                       else "clock (time-based re-evaluation)"))
    if why.get("recent_events"):
        lines.append(f"recent      {', '.join(map(str, why['recent_events']))}")
    return lines


def no_why(value: object) -> str:
    """What ``why`` says when Redis holds no why record of the tag.

    Example:
        >>> no_why(None)
        'no why record (the user does not hold the tag)'
        >>> no_why("high")[:56]
        'no why record in Redis (the workers run with STREAM_APP_'
    """
    if value is None:
        return "no why record (the user does not hold the tag)"
    return ("no why record in Redis (the workers run with STREAM_APP_REDIS_WHY=off, or the "
            "tag was written before it was on): each change's rule and values are on the "
            "tags.changes topic (evidence)")


def not_found(user_id: str, tenant: str, tag_id: str, known_user: bool) -> str:
    """What ``why`` says when Redis holds nothing of the tag: an unknown user (a typo, or a
    user of another tenant asked without ``--tenant``) apart from a user without the tag.

    Example:
        >>> not_found("u9", "default", "intent", known_user=False)
        "no profile for user 'u9' in tenant 'default' (a user of another tenant: --tenant)"
        >>> not_found("u1", "acme", "intent", known_user=True)
        "user 'u1' (tenant 'acme') has no record of tag 'intent'"
    """
    if not known_user:
        return (f"no profile for user {user_id!r} in tenant {tenant!r} (a user of another "
                "tenant: --tenant)")
    return f"user {user_id!r} (tenant {tenant!r}) has no record of tag {tag_id!r}"


def unknown_tag(tag_id: str, known: list[str]) -> str | None:
    """The error for a tag id the rule set does not define (a typo), with the closest ids;
    None when it is a tag of the rule set (the user just does not hold it). QA38 F7.

    Example:
        >>> unknown_tag("intnet", ["activity", "intent", "at_risk"])[:58]
        "tag 'intnet' is not defined by the rules (did you mean 'in"
        >>> unknown_tag("intent", ["activity", "intent"]) is None
        True
    """
    if tag_id in known:
        return None
    import difflib  # noqa: PLC0415

    close = difflib.get_close_matches(tag_id, known, n=3)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return (f"tag {tag_id!r} is not defined by the rules{hint}: tags are "
            f"{', '.join(sorted(known))}")


def rule_tag_ids() -> list[str]:
    """The tag ids of the local rule set (``STREAM_APP_RULES_PATH``), hidden ones included;
    empty when it cannot be read (then no typo check)."""
    try:
        from stream_app.rules.loader import load_ruleset  # noqa: PLC0415

        return [t.id for t in load_ruleset(get_settings().rules_path).order]
    except Exception:  # noqa: BLE001 - no rules to check against: say what Redis says
        return []


@click.command("why")
@click.argument("user_id")
@click.argument("tag_id")
@click.option("--tenant", default="default", show_default=True)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True,
              help="timeline entries shown, 1..100 (as the API's limit)")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
def command(user_id: str, tag_id: str, tenant: str, limit: int, as_json: bool) -> None:
    """Why USER_ID holds TAG_ID (rule, version, matched case and values) and its timeline.

    The values are those of the tag's last change, not of now: the record is written when
    the tag's value changes."""
    import orjson  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    from stream_app.serving.store import ProfileStore  # noqa: PLC0415

    url = get_settings().redis_url
    store = ProfileStore(url)
    try:
        why = store.why(tenant, user_id, tag_id)
        value = store.tags(tenant, user_id).get(tag_id)
        timeline = [c for c in store.timeline(tenant, user_id, 100)
                    if c.get("tag_id") == tag_id][:limit]
        nothing = why is None and not timeline and value is None
        known_user = not nothing or store.exists(tenant, user_id)
    except Exception as exc:  # noqa: BLE001
        raise click.ClickException(f"cannot read Redis at {url}: {exc}") from exc
    if nothing:
        typo = unknown_tag(tag_id, known) if known_user and (known := rule_tag_ids()) else None
        raise click.ClickException(typo or not_found(user_id, tenant, tag_id, known_user))
    if as_json:
        out = {"tenant": tenant, "user_id": user_id, "tag_id": tag_id, "value": value,
               "why": why, "timeline": timeline}
        click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return
    # user ids, tag ids, values and the why record are data (text tags come from event
    # props): printed as rich Text, never read as console markup ("[/]" would crash it)
    console = Console()
    console.print(Text.assemble((user_id, "bold"), f" ({tenant}) ", (tag_id, "bold"),
                                f" = {orjson.dumps(value).decode()}"))
    for line in why_lines(why) if why else [no_why(value)]:
        console.print(Text("  " + line))
    if why and why.get("values"):
        console.print(Text("  (values as of the tag's last change, not now: see its ts and "
                           "trigger on tags.changes)", style="dim"))
    table = Table(title=Text(f"timeline of {tag_id} (newest first)", style="table.title"))
    for col in ("time (UTC)", "old", "new", "reason", "trigger", "rule set"):
        table.add_column(col)
    import datetime as dt  # noqa: PLC0415

    for c in timeline:
        ts = dt.datetime.fromtimestamp(c.get("ts", 0) / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(*(Text(cell) for cell in (
            ts, orjson.dumps(c.get("old")).decode(), orjson.dumps(c.get("new")).decode(),
            str(c.get("reason", "")),
            str(c.get("trigger") or "clock"), str(c.get("rule_version", "")))))
    if timeline:
        console.print(table)
    elif get_settings().redis_timeline == 0:
        console.print("  no timeline in Redis (STREAM_APP_REDIS_TIMELINE=0, the default): the "
                      "full history of tag changes is the tags.changes topic", markup=False,
                      highlight=False)
    else:
        console.print(table)
