"""``stream-app agents`` — the Faust agents of the app and the topics each one reads.

It replaces Faust's own ``agents`` command for this app: that one prints one topic per agent
(``Topic.get_topic_name()``) and fails with ``ValueError: Topic with multiple topic names
cannot be identified`` on the ``process`` agent, which reads every input stream and the
ticks from one subscription. This one lists every topic an agent reads, needs no broker and
starts nothing. Faust's other commands (``worker``, ``tables``, ``send TOPIC``, ...) still go
to Faust (``stream_app.cli.main``).

Example (pure part):
    >>> class Ch:
    ...     topics, pattern = ("events.click", "events.order"), None
    >>> class Agent:
    ...     name, channel, help = "process", Ch(), "Consume the inputs."
    >>> agent_row(Agent())
    ('process', 'events.click, events.order', 'Consume the inputs.')
"""

from __future__ import annotations

from typing import Any

import click


def agent_topics(agent: Any) -> str | None:
    """The topics an agent reads (comma-separated; a pattern as ``pattern:<re>``), None for a
    local channel (no topic)."""
    channel = agent.channel
    topics = getattr(channel, "topics", None)
    if topics:
        return ", ".join(topics)
    pattern = getattr(channel, "pattern", None)
    if pattern:
        return f"pattern:{getattr(pattern, 'pattern', pattern)}"
    return None


def agent_row(agent: Any) -> tuple[str, str, str]:
    """(name, topics, help) of one agent, as listed."""
    return (agent.name, agent_topics(agent) or "<LOCAL>",
            (agent.help or "").strip() or "-")


@click.command("agents")
@click.option("--local/--no-local", default=False, show_default=True,
              help="also list agents that read a local channel (no topic)")
def command(local: bool) -> None:
    """List the Faust agents of the app and the topics each one reads."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    from stream_app.app.main import app  # noqa: PLC0415 - registers the agents

    table = Table(title="Agents")
    for col in ("name", "topics", "help"):
        table.add_column(col)
    for agent in sorted(app.agents.values(), key=lambda a: a.name):
        if local or agent_topics(agent) is not None:
            table.add_row(*map(Text, agent_row(agent)))   # literal text, never markup
    Console().print(table)
