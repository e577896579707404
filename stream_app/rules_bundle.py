"""Rule bundles: a rule set's YAML files as one message, for publishing and hot reload.

``stream-app rules apply`` validates a file or directory of rule YAML and publishes it as a
bundle on the compacted topic ``rules.versions``; every worker reads the topic and swaps its
engine's rule set without a restart.

Example:
    >>> from stream_app.rules.engine import DEFAULT_RULES
    >>> b = read_bundle(DEFAULT_RULES)
    >>> sorted(b["files"])[:2]
    ['activity.yaml', 'channel.yaml']
    >>> compile_bundle(decode(encode(b))).version == compile_bundle(b).version
    True
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

from stream_app.errors import RuleError
from stream_app.rules import loader
from stream_app.rules.model import RuleSet

BUNDLE_KEY = "default"


def read_bundle(path: Path | str) -> dict[str, Any]:
    """The YAML files of ``path`` (a file or a directory) as a bundle dict: ``files`` (name ->
    text), ``source`` (the absolute path of ``path``: a relative one means nothing on another
    machine), ``published_at`` (epoch ms) and ``published_by`` (``user@host``).

    >>> from stream_app.rules.engine import DEFAULT_RULES
    >>> Path(read_bundle(DEFAULT_RULES)["source"]).is_absolute()
    True
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    elif path.exists():
        files = [path]
    else:
        raise RuleError(f"{path}: no such rule file or directory")
    if not files:
        raise RuleError(f"{path}: no *.yaml rule files")
    return {"files": {f.name: f.read_text(encoding="utf-8") for f in files},
            "published_at": int(time.time() * 1000), "source": os.path.abspath(path),
            "published_by": _who()}


def _who() -> str:
    """``user@host`` of this process (``?`` for a user the system cannot name)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()}"


def shown_path(path: Path | str) -> str:
    """``path`` as messages show it: relative to the working directory when inside it (as
    typed in the repository: ``config/rules``), else absolute.

    >>> shown_path(Path.cwd() / "config" / "rules") == str(Path("config", "rules"))
    True
    >>> shown_path("/elsewhere/rules")
    '/elsewhere/rules'
    """
    full = Path(os.path.abspath(path))
    try:
        return str(full.relative_to(Path.cwd())) or "."
    except ValueError:
        return str(full)


def rules_root(source: Path | str) -> Path:
    """The directory of a bundle's files: ``source`` itself, or its parent for one file."""
    source = Path(source)
    return source.parent if source.suffix in (".yaml", ".yml") else source


def compile_bundle(bundle: dict[str, Any], root: Path | str | None = None) -> RuleSet:
    """Validate and compile a bundle (raises RuleError naming file, line and rule). Errors
    name each file under ``root``, by default the directory of the bundle's ``source``
    (e.g. ``config/rules/activity.yaml:23: rule 'activity': ...``)."""
    if root is None and bundle.get("source"):
        root = rules_root(bundle["source"])
    return loader.ruleset_from_files(bundle["files"], root=root)


def bundle_families(bundle: dict[str, Any]) -> dict[str, str]:
    """Tag id -> family of a bundle's tags, read from its YAML without compiling it (all a
    worker needs of a rule set it skips); a file or tag it cannot read is left out.

    >>> bundle_families({"files": {"a.yaml": "tags:\\n  - {id: x, family: f}\\n",
    ...                            "b.yaml": "tags: [{id: y}]", "c.yaml": "{"}})
    {'x': 'f'}
    """
    out: dict[str, str] = {}
    for text in (bundle.get("files") or {}).values():
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        tags = doc.get("tags") if isinstance(doc, dict) else None
        for tag in tags if isinstance(tags, list) else ():
            if isinstance(tag, dict) and isinstance(tag.get("id"), str) \
                    and isinstance(tag.get("family"), str):
                out[tag["id"]] = tag["family"]
    return out


#: the topic rule sets are published on (one partition, compacted: topics/topics.yaml)
TOPIC = "rules.versions"
#: seconds ``rules show/apply/diff`` wait to read the topic to its end by default
READ_TIMEOUT_S = 30.0


def read_to_end(consumer: Any, end: int, timeout: float, topic: str = TOPIC,
                low: int = 0, timeout_option: str | None = None,
                history: list[tuple[int, dict[str, Any]]] | None = None
                ) -> dict[str, Any] | None:
    """The last bundle of partition 0 of ``topic`` read with ``consumer`` (assigned from the
    beginning) up to the end offset ``end``; None when the partition holds no record below
    ``end`` (``low >= end``, e.g. empty). Every bundle read is also appended to ``history``
    (when given) with its offset, oldest first. Reading stops when the consumer's position reaches
    ``end``, not when a poll comes back empty: a slow first fetch is waited for. A partition
    not read to ``end`` within ``timeout`` seconds raises
    :class:`~stream_app.errors.UnreachableError` naming the topic, the offset reached and
    ``timeout_option`` (the command's option that gives more time), never "none published".

    Example (a consumer whose record comes on the third poll)::

        >>> class Late:
        ...     def __init__(self): self.polls, self.pos = 0, 0
        ...     def consume(self, num_messages, timeout):
        ...         self.polls += 1
        ...         if self.polls < 3:
        ...             return []
        ...         self.pos = 1
        ...         return [Msg()]
        ...     def position(self, tps): return [type("TP", (), {"offset": self.pos})]
        >>> class Msg:
        ...     def error(self): return None
        ...     def value(self): return encode({"files": {"a.yaml": ""}, "version": "v1"})
        ...     def offset(self): return 0
        >>> read_to_end(Late(), end=1, timeout=5)["version"]
        'v1'
    """
    from stream_app.errors import UnreachableError  # noqa: PLC0415

    if low >= end:
        return None
    last: dict[str, Any] | None = None
    reached = low
    deadline = time.monotonic() + timeout
    while True:
        msgs = consumer.consume(num_messages=100,
                                timeout=max(0.0, min(0.5, deadline - time.monotonic())))
        for m in msgs:
            if m.error():
                continue
            reached = max(reached, m.offset() + 1)
            if m.value():
                last = decode(m.value())
                if history is not None:
                    history.append((m.offset(), last))
        if msgs:
            # the position, not the last record's offset: compaction or a tombstone at the
            # end leaves that short of the end offset
            pos = _position(consumer, topic)
            reached = max(reached, pos)
            if reached >= end:
                return last
        if time.monotonic() >= deadline:
            more = f"; give it more time with {timeout_option}" if timeout_option else ""
            raise UnreachableError(
                f"topic {topic} not read to its end offset {end} within {timeout:g} s "
                f"(reached offset {reached}): cannot tell which rule set the workers "
                f"run{more}")


def _position(consumer: Any, topic: str) -> int:
    """The next offset ``consumer`` reads on partition 0 of ``topic`` (-1 when unknown)."""
    from confluent_kafka import TopicPartition  # noqa: PLC0415

    got = consumer.position([TopicPartition(topic, 0)])
    return got[0].offset if got and got[0].offset is not None else -1


def topic_partitions(metadata: Any, topic: str = TOPIC) -> int:
    """Partitions of ``topic`` in the cluster ``metadata`` (0 when it does not exist).

    >>> md = type("MD", (), {"topics": {"rules.versions": type("T", (), {"partitions": {0: 0}})}})
    >>> topic_partitions(md), topic_partitions(md, "other")
    (1, 0)
    """
    found = metadata.topics.get(topic)
    return len(found.partitions) if found is not None else 0


def partitions_problem(partitions: int, topic: str = TOPIC) -> str | None:
    """Why a rule-set topic of ``partitions`` partitions cannot be read (None when it can):
    every reader (workers, API, ``rules show/apply/diff``) reads partition 0, and a bundle
    produced to a topic of several lands on its key's partition.

    >>> partitions_problem(1) is None, partitions_problem(0) is None
    (True, True)
    >>> print(partitions_problem(4))  # doctest: +ELLIPSIS
    topic rules.versions has 4 partitions, the contract (topics/topics.yaml) declares 1: ...
    """
    if partitions <= 1:
        return None
    return (f"topic {topic} has {partitions} partitions, the contract (topics/topics.yaml) "
            "declares 1: it was probably auto-created by a producer before `stream-app topics "
            f"create`. Readers see partition 0 only. Delete it (e.g. `kafka-topics --delete "
            f"--topic {topic}`), run `stream-app topics create`, then `stream-app rules apply` "
            "the rule set again")


def topic_problem(bootstrap: str, topic: str = TOPIC) -> str | None:
    """:func:`partitions_problem` of ``topic`` on the broker at ``bootstrap`` (None when it
    has one partition or does not exist yet). For readers that follow the topic (workers, the
    API): they refuse a topic of several partitions, whose records they would partly miss.

    Example (needs a broker)::

        topic_problem("127.0.0.1:9092")   # None, or 'topic rules.versions has 4 partitions...'
    """
    from stream_app.kafka_io import require_broker  # noqa: PLC0415

    return partitions_problem(topic_partitions(require_broker(bootstrap), topic), topic)


def latest_bundle(bootstrap: str, timeout: float = READ_TIMEOUT_S,
                  timeout_option: str | None = None) -> dict[str, Any] | None:
    """The newest bundle published on ``rules.versions`` (what running workers use), or None
    if none was published (the topic does not exist or is empty at its end offset: workers
    use their local rules directory).

    The topic is read to its end offset (checked with
    :func:`~stream_app.kafka_io.true_end_offsets`), so a slow broker is waited for, up to
    ``timeout`` seconds, then :class:`~stream_app.errors.UnreachableError` (see
    :func:`read_to_end`). No broker answering is an ``UnreachableError`` too, and a topic of
    several partitions a :class:`~stream_app.errors.RuleError` saying how to fix it: neither
    is "none published".

    Example (needs a broker)::

        latest_bundle("127.0.0.1:9092", timeout=30)["version"]   # e.g. '2024-05-01.1+ba9b8001'
    """
    return _read_published(bootstrap, timeout, timeout_option)


def published_bundles(bootstrap: str, timeout: float = READ_TIMEOUT_S,
                      timeout_option: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """Every bundle still on ``rules.versions``, oldest first, with its offset (empty when
    none was published); the last one is the newest (:func:`latest_bundle`). The topic is
    compacted under one key, so the broker keeps the newest alone once it compacts it (Kafka:
    segments rolled after ``segment.ms``): the older ones are there until then, not for
    good. Read as :func:`latest_bundle` reads it (same errors).

    Example (needs a broker)::

        [b["version"] for _, b in published_bundles("127.0.0.1:9092")]   # oldest first
    """
    history: list[tuple[int, dict[str, Any]]] = []
    _read_published(bootstrap, timeout, timeout_option, history)
    return history


def _read_published(bootstrap: str, timeout: float, timeout_option: str | None,
                    history: list[tuple[int, dict[str, Any]]] | None = None
                    ) -> dict[str, Any] | None:
    """:func:`latest_bundle`, every bundle read appended to ``history`` (when given)."""
    from confluent_kafka import TopicPartition  # noqa: PLC0415

    from stream_app import kafka_io  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    metadata = kafka_io.require_broker(bootstrap)
    parts = topic_partitions(metadata)
    problem = partitions_problem(parts)
    if problem:
        raise RuleError(problem)
    if parts == 0:
        return None
    c = kafka_io.read_assigned(bootstrap, TOPIC, 1)
    try:
        low, high = c.get_watermark_offsets(TopicPartition(TOPIC, 0),
                                            timeout=max(1.0, min(10.0, timeout)))
        # tansu reports the first offset of the last record batch: read past it to be sure
        ends = kafka_io.true_end_offsets(bootstrap, {(TOPIC, 0): high},
                                         timeout_s=max(1.0, min(10.0, timeout)))
        end = max(high, ends.get((TOPIC, 0)) or 0)
        return read_to_end(c, end, max(0.5, deadline - time.monotonic()), low=max(low, 0),
                           timeout_option=timeout_option, history=history)
    finally:
        c.close()


def live_ruleset(bootstrap: str, local: Path | str, timeout: float = READ_TIMEOUT_S,
                 timeout_option: str | None = None) -> tuple[RuleSet, str]:
    """The rule set the workers run, and where it comes from: the newest published one, else
    the local rules directory ``local`` (only when none was published: a topic not read to
    its end raises, see :func:`latest_bundle`).

    Example (needs a broker)::

        rs, where = live_ruleset("127.0.0.1:9092", "config/rules")   # where: 'local ...'
    """
    bundle = latest_bundle(bootstrap, timeout, timeout_option)
    if bundle is None:
        return loader.load_ruleset(local), f"local {local}"
    return compile_bundle(bundle), f"published from {bundle.get('source')}"


def encode(bundle: dict[str, Any]) -> bytes:
    return orjson.dumps(bundle)


def decode(blob: bytes) -> dict[str, Any]:
    doc = orjson.loads(blob)
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        raise RuleError("rule bundle has no 'files' mapping")
    return doc
