"""Wording of command output shared by the CLI and the tools: counted nouns.

Example:
    >>> f"sent {plural(1, 'event')}, {plural(12_000, 'event')} before"
    'sent 1 event, 12,000 events before'
"""

from __future__ import annotations

__all__ = ["plural"]


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``n`` (thousands separated) and ``noun``, plural unless ``n`` is 1: ``noun + "s"`` or
    ``many`` for the irregular ones.

    >>> plural(1, "user"), plural(0, "user"), plural(2_500, "tag change")
    ('1 user', '0 users', '2,500 tag changes')
    >>> plural(1, "family", "families"), plural(3, "family", "families")
    ('1 family', '3 families')
    """
    return f"{n:,} {noun if n == 1 else (many or noun + 's')}"
