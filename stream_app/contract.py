"""The topic contract (``topics/topics.yaml`` + JSON Schemas), loaded once.

Example:
    >>> c = load_contract()
    >>> c.topic("events.click").stream
    'click'
    >>> sorted(c.topic("events.profile").derived_types)[:1]
    ['invitee_bought']
    >>> sorted(c.input_topics())[:2]
    ['alerts.feedback', 'events.click']
    >>> c.topic("events.dlq").config["retention.ms"]
    '2592000000'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import yaml

from stream_app.config import get_settings
from stream_app.errors import ContractError


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the contract."""

    name: str
    role: str  # input | output | internal
    key: str
    zh: str = ""
    en: str = ""
    stream: str | None = None
    types: tuple[str, ...] = ()
    #: event types the workers themselves write to this input topic (type -> description),
    #: e.g. the referral events derived for an inviter (:mod:`stream_app.rules.derive`)
    derived_types: dict[str, str] = field(default_factory=dict)
    value_schema: str | None = None
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Contract:
    """All topics, by name, and the directory their schemas live in."""

    topics: dict[str, TopicSpec]
    root: Path

    def topic(self, name: str) -> TopicSpec:
        try:
            return self.topics[name]
        except KeyError:
            raise ContractError(f"topic {name!r} is not in {self.root / 'topics.yaml'}") from None

    def input_topics(self) -> list[str]:
        return [t.name for t in self.topics.values() if t.role == "input"]

    def stream_topic(self, stream: str) -> str:
        """Topic name of an input stream (``click`` -> ``events.click``)."""
        for t in self.topics.values():
            if t.stream == stream:
                return t.name
        raise ContractError(f"no input topic for stream {stream!r}")

    def known_types(self) -> frozenset[str]:
        """Every event type the contract declares on an input topic: the producers' ``types``
        and the workers' own ``derived_types``. Any other type is accepted and counted as
        unknown (``stream_app_events_unknown_type_total``).

        >>> known = load_contract().known_types()
        >>> "course_view" in known, "invitee_registered" in known, "brand_new_action" in known
        (True, True, False)
        """
        return frozenset(t for spec in self.topics.values()
                         for t in (*spec.types, *spec.derived_types))

    def stream_of(self, topic: str) -> str:
        return self.topic(topic).stream or topic

    def schema(self, name: str) -> dict[str, Any]:
        """Parsed JSON Schema of topic ``name``'s values."""
        spec = self.topic(name)
        if not spec.value_schema:
            raise ContractError(f"topic {name!r} has no value schema")
        return load_schema(self.root / spec.value_schema)


@lru_cache(maxsize=16)
def load_schema(path: Path) -> dict[str, Any]:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ContractError(f"cannot read schema {path}: {exc}") from exc


@lru_cache(maxsize=4)
def load_contract(root: Path | None = None) -> Contract:
    """Read ``topics.yaml`` under ``root`` (default: settings.topics_dir)."""
    root = Path(root or get_settings().topics_dir)
    path = root / "topics.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ContractError(f"cannot read topic contract {path}: {exc}") from exc
    defaults = {k: str(v) for k, v in (doc.get("defaults") or {}).items()}
    topics: dict[str, TopicSpec] = {}
    for raw in doc.get("topics") or []:
        try:
            cfg = dict(defaults)
            cfg.update({k: str(v) for k, v in (raw.get("config") or {}).items()})
            spec = TopicSpec(
                name=raw["name"],
                role=raw["role"],
                key=raw["key"],
                zh=raw.get("zh", ""),
                en=raw.get("en", ""),
                stream=raw.get("stream"),
                types=tuple(raw.get("types") or ()),
                derived_types=_derived_types(path, raw),
                value_schema=raw.get("value_schema"),
                config=cfg,
            )
        except KeyError as exc:
            raise ContractError(f"{path}: topic entry {raw!r} lacks {exc}") from None
        if spec.name in topics:
            raise ContractError(f"{path}: topic {spec.name!r} is defined twice")
        topics[spec.name] = spec
    return Contract(topics=topics, root=root)


def _derived_types(path: Path, raw: dict[str, Any]) -> dict[str, str]:
    """A topic entry's ``derived_types``: a mapping of event type to its description.

    >>> _derived_types(Path("t.yaml"), {"derived_types": {"invitee_bought": "an invitee paid"}})
    {'invitee_bought': 'an invitee paid'}
    >>> _derived_types(Path("t.yaml"), {"name": "x", "derived_types": ["invitee_bought"]})
    Traceback (most recent call last):
    ...
    stream_app.errors.ContractError: t.yaml: topic 'x': derived_types must map each type ...
    """
    value = raw.get("derived_types") or {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ContractError(f"{path}: topic {raw.get('name')!r}: derived_types must map each "
                            "type to a description")
    return dict(value)
