"""Which partitions ``stream_app_consumer_lag`` reports, and how far behind each one is.

A worker's consumer is assigned more than what its agents consume: the tables' changelog
partitions (active and standby, read only to restore a table, never committed by the group)
and Faust's internal topics. Their "lag" against an absent committed offset is the partition's
size, not a backlog (QA31 F1: 14,833 "lag" on ``stream-app-users-changelog`` on an idle group,
and the page StreamAppConsumerLagGrowing after a failover). So the gauge covers only the
agents' source topics (the input topics, ``internal.ticks``, ``metrics.partials``,
``scoring.training``), and of those only the partitions the group has a committed offset for:
a partition appears at the group's first commit on it.

Example:
    >>> from collections import namedtuple
    >>> TP = namedtuple("TP", "topic partition")
    >>> assigned = {TP("events.click", 0), TP("stream-app-users-changelog", 0),
    ...             TP("events.click", 1)}
    >>> ends = {TP("events.click", 0): 120, TP("stream-app-users-changelog", 0): 7357,
    ...         TP("events.click", 1): 40}
    >>> partition_lags(assigned, {"events.click"}, ends.get, {TP("events.click", 0): 100})
    {('events.click', 0): 20}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["partition_lags", "source_topics"]


def source_topics(agents: Iterable[Any]) -> frozenset[str]:
    """The topic names the ``agents`` (Faust agents: ``get_topic_names()``) consume.

    >>> class Agent:
    ...     def __init__(self, *names): self.names = names
    ...     def get_topic_names(self): return self.names
    >>> sorted(source_topics([Agent("events.click", "internal.ticks"), Agent("metrics.partials")]))
    ['events.click', 'internal.ticks', 'metrics.partials']
    """
    return frozenset(name for agent in agents for name in agent.get_topic_names())


def partition_lags(assigned: Iterable[Any], sources: Iterable[str],
                   highwater: Callable[[Any], int | None],
                   committed: Mapping[Any, int | None]) -> dict[tuple[str, int], int]:
    """``{(topic, partition): end offset - committed offset}`` of the ``assigned`` partitions
    (objects with ``topic`` and ``partition``) whose topic is in ``sources`` and that have a
    committed offset in ``committed``; a partition whose end offset ``highwater`` does not know
    yet (None, or it raises) is left out. Never negative.

    >>> from collections import namedtuple
    >>> TP = namedtuple("TP", "topic partition")
    >>> a, b = TP("internal.ticks", 0), TP("internal.ticks", 1)
    >>> partition_lags([a, b], ["internal.ticks"], {a: 5, b: 9}.get, {a: 7, b: None})
    {('internal.ticks', 0): 0}
    """
    wanted = frozenset(sources)
    lags: dict[tuple[str, int], int] = {}
    for tp in assigned:
        done = committed.get(tp)
        if tp.topic not in wanted or done is None:
            continue
        end = _end_offset(highwater, tp)
        if end is not None:
            lags[(tp.topic, tp.partition)] = max(0, int(end) - int(done))
    return lags


def _end_offset(highwater: Callable[[Any], int | None], tp: Any) -> int | None:
    """The partition's end offset as the consumer last saw it, None if not known yet.

    >>> _end_offset({}.__getitem__, "t") is None
    True
    """
    try:
        return highwater(tp)
    except Exception:  # noqa: BLE001 - not fetched yet: no end offset to compare with
        return None
