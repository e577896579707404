"""The trainer: one agent (the single partition of ``scoring.training``) learns from the
(snapshot, label) pairs the workers send and publishes model snapshots to the compacted
``models.snapshots`` topic, which every worker loads (``broadcast.py``).

The trainer's registry starts from the newest published snapshots, so a restarted or moved
trainer continues where the last one stopped.
"""

from __future__ import annotations

import logging
from typing import Any

from stream_app import metrics
from stream_app.app.context import runtime
from stream_app.app.main import app
from stream_app.app.topics import snapshots_topic, training_topic
from stream_app.scoring.registry import ModelRegistry, SnapshotError

log = logging.getLogger(__name__)
PUBLISH_EVERY = 200      # labels
PUBLISH_WITHIN_S = 5.0   # seconds


def trainer_registry() -> ModelRegistry:
    """A learning registry seeded from the serving registry (the newest snapshots); a
    target whose snapshot cannot be loaded (a model with non-finite numbers, which the
    serving registry refuses too) starts from a fresh model."""
    reg = ModelRegistry(runtime.scoring_config)
    for target in reg.targets:
        try:
            reg.load(target, runtime.registry.snapshot(target))
        except SnapshotError as exc:
            log.error("trainer: %s starts from a fresh model: %s", target, exc)
    return reg


def publish_blobs(reg: ModelRegistry, targets: set[str]) -> dict[str, bytes]:
    """The snapshots to publish of ``targets``: only of finite models (a model with a NaN
    or inf goes back to its last published snapshot and is not published, QA33 F1)."""
    out = {}
    for target in sorted(targets):
        blob = reg.publishable_snapshot(target)
        if blob is not None:
            out[target] = blob
    return out


@app.agent(training_topic, name="trainer")
async def trainer(stream: Any) -> None:
    reg: ModelRegistry | None = None
    async for batch in stream.take(PUBLISH_EVERY, within=PUBLISH_WITHIN_S):
        if reg is None:
            reg = trainer_registry()
        touched: set[str] = set()
        for ex in batch:
            try:
                # only pairs scored before their label was learned count in the gate
                # (None: refused, a non-finite feature or score; counted in the registry)
                if reg.learn(ex["target"], ex["x"], int(ex["y"]),
                             bool(ex.get("gate", False))) is not None:
                    touched.add(ex["target"])
            except Exception as exc:  # noqa: BLE001 - a bad pair must not stop learning
                log.warning("training pair rejected: %s", exc)
        for target, blob in publish_blobs(reg, touched).items():
            await snapshots_topic.send(key=target, value=blob)
            gate = reg.gate(target)
            metrics.set_model(target, reg.version(target),
                              {"precision": gate.precision, "recall": gate.recall}, gate.open)
