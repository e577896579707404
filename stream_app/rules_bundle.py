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

import time
from pathlib import Path
from typing import Any

import orjson

from stream_app.errors import RuleError
from stream_app.rules import loader
from stream_app.rules.model import RuleSet

BUNDLE_KEY = "default"


def read_bundle(path: Path | str) -> dict[str, Any]:
    """The YAML files of ``path`` (a file or a directory) as a bundle dict."""
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
            "published_at": int(time.time() * 1000), "source": str(path)}


def compile_bundle(bundle: dict[str, Any]) -> RuleSet:
    """Validate and compile a bundle (raises RuleError naming file, line and rule)."""
    return loader.ruleset_from_files(bundle["files"])


def latest_bundle(bootstrap: str) -> dict[str, Any] | None:
    """The newest bundle published on ``rules.versions`` (what running workers use), or None
    if none was published (they use their local rules directory). No broker answering is an
    error (:class:`~stream_app.errors.UnreachableError`), not "none published"."""
    from stream_app.kafka_io import read_assigned, require_broker  # noqa: PLC0415

    require_broker(bootstrap)
    c = read_assigned(bootstrap, "rules.versions", 1)
    last = None
    try:
        while True:
            msgs = c.consume(num_messages=100, timeout=1.0)
            if not msgs:
                return last
            for m in msgs:
                if not m.error() and m.value():
                    last = decode(m.value())
    finally:
        c.close()


def live_ruleset(bootstrap: str, local: Path | str) -> tuple[RuleSet, str]:
    """The rule set the workers run, and where it comes from: the newest published one, else
    the local rules directory ``local``."""
    bundle = latest_bundle(bootstrap)
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
