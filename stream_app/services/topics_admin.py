"""Create the contract's topics on a broker (idempotent).

Example (needs a broker)::

    create_topics("127.0.0.1:9092", partitions=4)
    ensure_topic("127.0.0.1:9092", "rules.versions", partitions=4)   # 1 partition, compacted
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from stream_app.contract import Contract, TopicSpec, load_contract
from stream_app.errors import ServiceError

log = logging.getLogger(__name__)


def declared_partitions(spec: TopicSpec, partitions: int) -> int:
    """Partitions the contract gives ``spec``: one for an internal topic not keyed by user
    (broadcasts such as ``rules.versions``, read whole by every worker), else ``partitions``.

    >>> from stream_app.contract import load_contract
    >>> c = load_contract()
    >>> declared_partitions(c.topic("rules.versions"), 4), declared_partitions(
    ...     c.topic("events.click"), 4)
    (1, 4)
    """
    return 1 if spec.role == "internal" and spec.key != "user_id" else partitions


def partition_mismatch(name: str, found: int, declared: int) -> str:
    """The warning for an existing topic whose partition count differs from the contract's.

    >>> print(partition_mismatch("rules.versions", 4, 1))  # doctest: +ELLIPSIS
    topic rules.versions exists with 4 partitions, the contract declares 1 ...
    """
    return (f"topic {name} exists with {found} partitions, the contract declares {declared} "
            "(created otherwise, e.g. auto-created by a producer, or with another "
            "STREAM_APP_PARTITIONS): left as is; to fix it, delete the topic and run "
            "`stream-app topics create` again (its records are lost)")


def create_topics(bootstrap: str, partitions: int, replication: int = 1,
                  contract: Contract | None = None, timeout: float = 30.0,
                  extra: dict[str, int] | None = None,
                  only: set[str] | None = None,
                  warn: Callable[[str], None] | None = None) -> list[str]:
    """Create every topic of the contract that does not exist yet; return the created names.

    ``extra`` maps additional topic names (e.g. Faust changelogs) to partition counts;
    ``only`` limits the contract's topics to these names. An existing topic whose partition
    count differs from the declared one is left as is and reported with ``warn`` (default: a
    log warning) naming both numbers (:func:`partition_mismatch`).
    """
    from confluent_kafka.admin import AdminClient, NewTopic  # noqa: PLC0415

    from stream_app.kafka_io import BROKER_CHECK_S, require_broker  # noqa: PLC0415

    contract = contract or load_contract()
    warn = warn or log.warning
    # the metadata, or a clear error naming the address (not a client's traceback)
    metadata = require_broker(bootstrap, min(timeout, BROKER_CHECK_S))
    existing: dict[str, Any] = dict(metadata.topics)
    wanted: list[NewTopic] = []
    declared: dict[str, int] = {}
    for spec in contract.topics.values():
        if only is None or spec.name in only:
            declared[spec.name] = declared_partitions(spec, partitions)
    if only is None:
        declared.update(extra or {})
    for name, parts in declared.items():
        if name in existing:
            found = len(existing[name].partitions)
            if found != parts:
                warn(partition_mismatch(name, found, parts))
            continue
        spec = contract.topics.get(name)
        config = dict(spec.config) if spec is not None else {
            "retention.ms": "604800000", "retention.bytes": "-1"}
        wanted.append(NewTopic(name, num_partitions=parts, replication_factor=replication,
                               config=config))
    if not wanted:
        return []
    admin = AdminClient({"bootstrap.servers": bootstrap})
    created = []
    for name, fut in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            fut.result(timeout)
            created.append(name)
        except Exception as exc:  # noqa: BLE001
            if "TOPIC_ALREADY_EXISTS" in str(exc) or "already exists" in str(exc):
                continue
            raise ServiceError(f"cannot create topic {name}: {exc}") from exc
    return created


def ensure_topic(bootstrap: str, name: str, partitions: int, replication: int = 1,
                 contract: Contract | None = None, timeout: float = 30.0) -> bool:
    """Create the contract's topic ``name`` as declared (partitions, config) unless it exists,
    e.g. ``rules.versions`` before ``rules apply`` produces to it (a producer would have the
    broker auto-create it with its default partitions and no compaction). True when created.
    """
    contract = contract or load_contract()
    contract.topic(name)   # a ContractError for a name the contract lacks
    return name in create_topics(bootstrap, partitions, replication, contract, timeout,
                                 only={name}, warn=lambda _msg: None)
