"""The trainer: one agent (the single partition of ``scoring.training``) learns from the
(snapshot, label) pairs the workers send and publishes model snapshots to the compacted
``models.snapshots`` topic, which every worker loads (``broadcast.py``).

The trainer's registry starts from the newest published snapshots, so a restarted or moved
trainer continues where the last one stopped: before it learns the first pairs of an
assignment of its partition it waits until this worker's broadcast reader has read
``models.snapshots`` up to its end offset at that moment and applied it
(:func:`broadcast.snapshots_applied`), and it seeds its registry from the serving one only
then. QA41 F2: it copied the serving registry at its first batch without waiting, which
after a restart with pairs waiting was still a fresh model; its publication (the newest
record of a compacted topic) replaced the learned model, and its open gate, on every worker.
A revocation of the partition drops the registry, so a partition that comes back after
another worker's trainer published continues from that publication, not from this worker's
older copy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from stream_app import metrics
from stream_app.app import broadcast
from stream_app.app.context import runtime
from stream_app.app.main import app
from stream_app.app.topics import snapshots_topic, training_topic
from stream_app.scoring.registry import ModelRegistry, SnapshotError

log = logging.getLogger(__name__)
PUBLISH_EVERY = 200      # labels
PUBLISH_WITHIN_S = 5.0   # seconds
#: how often the trainer reports (an error) that it still waits for the published
#: snapshots, and how long one wait for them lasts before the end offset is read again
SEED_REPORT_S = 30.0
#: pause between two waits for the snapshots that ended without them (an unreachable broker)
SEED_RETRY_S = 1.0
TRAINING = training_topic.get_topic_name()


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


async def newest_snapshots(waiting: int, stopping: Callable[[], bool]) -> bool:
    """Wait until the serving registry holds the newest published snapshot of every target
    (:func:`broadcast.snapshots_applied`), however long it takes: learning on an older
    model would publish it over the newer one. An error every ``SEED_REPORT_S`` while it
    waits; False only when the worker stops first (the ``waiting`` pairs are then not
    learned, logged)."""
    loop = asyncio.get_running_loop()
    start = reported = loop.time()
    while not await broadcast.snapshots_applied(SEED_REPORT_S, give_up=stopping):
        if stopping():
            log.error("trainer: stopping before the published model snapshots were read; "
                      "%d training pairs not learned", waiting)
            return False
        if loop.time() - reported >= SEED_REPORT_S:
            reported = loop.time()
            log.error("trainer: the published model snapshots are not read after %.0f s; "
                      "%d training pairs wait (not learned on an older model)",
                      reported - start, waiting)
        await asyncio.sleep(SEED_RETRY_S)
    return True


class Seed:
    """The trainer's learning registry: none until the first batch of an assignment, then
    one seeded from the newest published snapshots (:func:`newest_snapshots`,
    :func:`trainer_registry`), kept until the training partition is revoked.

    Example (nothing to wait for, the worker not stopping):
        >>> import asyncio
        >>> seed = Seed(lambda: False, wait=lambda n, stop: asyncio.sleep(0, True))
        >>> reg = asyncio.run(seed.registry(10))
        >>> asyncio.run(seed.registry(10)) is reg
        True
        >>> seed.revoked([("scoring.training", 0)]); seed.reg is None
        True
    """

    def __init__(self, stopping: Callable[[], bool], wait: Any = newest_snapshots) -> None:
        self.stopping = stopping
        self.wait = wait
        self.reg: ModelRegistry | None = None

    async def registry(self, waiting: int) -> ModelRegistry | None:
        """The registry to learn ``waiting`` pairs on; None: the worker stops first."""
        if self.reg is None and await self.wait(waiting, self.stopping):
            self.reg = trainer_registry()
        return self.reg

    def revoked(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop the registry when the training partition is among ``partitions`` (Faust's
        topic partitions: ``(topic, partition)`` tuples)."""
        if any(tp[0] == TRAINING for tp in partitions):
            self.reg = None


seed = Seed(lambda: bool(app.should_stop))


@app.on_partitions_revoked.connect
async def trainer_partition_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    """The training partition may go to another worker, whose trainer then publishes: if it
    comes back, this trainer starts again from the newest published snapshots."""
    seed.revoked(revoked)


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
    async for batch in stream.take(PUBLISH_EVERY, within=PUBLISH_WITHIN_S):
        reg = await seed.registry(len(batch))
        if reg is None:   # the worker stops before the published snapshots were read
            continue
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
