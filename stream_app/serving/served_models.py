"""The models the workers serve, for a command that scores users outside a worker
(``redis-rebuild`` and its ``--check-only``): the newest snapshot of each target on the
compacted ``models.snapshots`` topic, loaded as every worker loads it
(:func:`stream_app.app.broadcast.apply_pending`: of several records of a target the newest
that loads; a target with none scores with its rule points, source ``rules``).

Example (pure part: the records of the topic in order, the newest kept per target):
    >>> newest_blobs([("convert", b"a"), ("at_risk", b"b"), ("convert", b"c"),
    ...               ("convert", None)], keep=2)
    {'convert': [b'a', b'c'], 'at_risk': [b'b']}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from stream_app.scoring.registry import ModelRegistry

log = logging.getLogger(__name__)

TOPIC = "models.snapshots"
#: records kept per target while the topic is read (a compacted topic may still hold many
#: of one target): the newest, and older ones to fall back on if it cannot be loaded
KEEP = 3

__all__ = ["KEEP", "TOPIC", "load_newest", "newest_blobs", "read_snapshots", "served_scorer"]


def newest_blobs(records: Iterable[tuple[str, bytes | None]], keep: int = KEEP
                 ) -> dict[str, list[bytes]]:
    """The newest ``keep`` values of each key of ``records`` (in the topic's order), oldest
    first; an empty value (a tombstone) is skipped, as the workers skip it."""
    out: dict[str, list[bytes]] = {}
    for key, value in records:
        _keep(out, key, value, keep)
    return out


def _keep(kept: dict[str, list[bytes]], key: str, value: bytes | None, keep: int) -> None:
    """Add one record to :func:`newest_blobs`'s ``kept``."""
    if not value:
        return
    values = kept.setdefault(key, [])
    values.append(value)
    if len(values) > keep:
        del values[0]


def load_newest(registry: ModelRegistry, blobs: dict[str, list[bytes]]) -> dict[str, str]:
    """Load into ``registry`` the newest blob of each of its targets that loads; returns
    target -> what it serves now (``registry.source``: a model version whose gate is open,
    else ``rules``), with a note when a newer blob could not be loaded.

    >>> from stream_app.scoring.config import load_scoring_config
    >>> cfg = load_scoring_config()
    >>> trainer, reg = ModelRegistry(cfg), ModelRegistry(cfg)
    >>> _ = trainer.learn("convert", {"a": 1.0}, 1)
    >>> load_newest(reg, {"convert": [trainer.snapshot("convert"), b"junk"], "x": [b"?"]})
    {'convert': 'rules (newest snapshot not loaded)', 'at_risk': 'rules'}
    >>> reg.version("convert")
    'logreg@1'
    """
    out = {}
    for target in registry.targets:
        values = blobs.get(target) or []
        note = ""
        for i in range(len(values) - 1, -1, -1):
            try:
                registry.load(target, values[i])
            except Exception as exc:  # noqa: BLE001 - as a worker: the next older one
                log.warning("model snapshot of %s not loaded: %s", target, exc)
                note = " (newest snapshot not loaded)"
                continue
            break
        out[target] = registry.source(target) + note
    return out


def read_snapshots(bootstrap: str, timeout: float = 60.0) -> dict[str, list[bytes]]:
    """:func:`newest_blobs` of ``models.snapshots`` read from its beginning to its end
    offset (partition 0, as the workers read it: :func:`kafka_io.read_to_end`); empty when
    the topic does not exist. ``timeout``: seconds without progress toward the end before
    :class:`~stream_app.errors.UnreachableError` (the models the workers serve cannot be
    told then).

    Example (needs a broker)::

        read_snapshots("127.0.0.1:9092")   # {'convert': [b'...'], ...} or {}
    """
    from stream_app import kafka_io  # noqa: PLC0415

    kept: dict[str, list[bytes]] = {}
    for m in kafka_io.read_to_end(bootstrap, TOPIC, idle_s=timeout, partitions=1):
        _keep(kept, (m.key() or b"").decode("utf-8", "replace"), m.value(), KEEP)
    return kept


def served_scorer(bootstrap: str, config: Any, timeout: float = 60.0) -> tuple[Any, str]:
    """A :class:`~stream_app.scoring.scorer.Scorer` (no alerts) with the models the workers
    serve, and a line saying what each target is scored with, e.g. ``convert: logreg@812,
    at_risk: rules``."""
    from stream_app.scoring.scorer import Scorer  # noqa: PLC0415

    registry = ModelRegistry(config)
    served = load_newest(registry, read_snapshots(bootstrap, timeout))
    return (Scorer(config, registry, alert_policy=None),
            ", ".join(f"{t}: {s}" for t, s in served.items()))
