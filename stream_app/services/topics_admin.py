"""Create the contract's topics on a broker (idempotent).

Example (needs a broker)::

    create_topics("127.0.0.1:9092", partitions=4)
"""

from __future__ import annotations

from stream_app.contract import Contract, load_contract
from stream_app.errors import ServiceError


def create_topics(bootstrap: str, partitions: int, replication: int = 1,
                  contract: Contract | None = None, timeout: float = 30.0,
                  extra: dict[str, int] | None = None) -> list[str]:
    """Create every topic of the contract that does not exist yet; return the created names.

    ``extra`` maps additional topic names (e.g. Faust changelogs) to partition counts.
    """
    from confluent_kafka.admin import AdminClient, NewTopic  # noqa: PLC0415

    from stream_app.kafka_io import BROKER_CHECK_S, require_broker  # noqa: PLC0415

    contract = contract or load_contract()
    # the metadata, or a clear error naming the address (not a client's traceback)
    existing = set(require_broker(bootstrap, min(timeout, BROKER_CHECK_S)).topics)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted: list[NewTopic] = []
    for spec in contract.topics.values():
        if spec.name in existing:
            continue
        parts = 1 if spec.role == "internal" and spec.key != "user_id" else partitions
        wanted.append(NewTopic(spec.name, num_partitions=parts, replication_factor=replication,
                               config=dict(spec.config)))
    for name, parts in (extra or {}).items():
        if name not in existing:
            wanted.append(NewTopic(name, num_partitions=parts, replication_factor=replication,
                                   config={"retention.ms": "604800000", "retention.bytes": "-1"}))
    if not wanted:
        return []
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
