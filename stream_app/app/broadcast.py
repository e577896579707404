"""Broadcast topics every worker reads in full: model snapshots and rule versions.

A consumer group would give each record to one worker only; these topics must reach every
worker, so a background thread reads them by assignment (no group) from the beginning and
hands the records to the event loop, which applies them between events (no locking of the
engine or the models needed).

Two waits keep a (re)started worker from using what it holds locally while a published
version exists: the processing agent's first record waits for the rule sets and the model
snapshots published before the reader started (:func:`before_first_event`), and the trainer
waits, at each (re)assignment of its partition, for the snapshots published up to that moment
(:func:`snapshots_applied`, QA41 F2).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from stream_app import metrics
from stream_app.app.context import runtime
from stream_app.app.main import app, settings
from stream_app.errors import UnreachableError
from stream_app.kafka_io import end_offsets, read_assigned, require_broker
from stream_app.rules_bundle import bundle_families, compile_bundle, decode, topic_problem

log = logging.getLogger(__name__)
MODELS = "models.snapshots"
TOPICS = (MODELS, "rules.versions")
inbox: queue.Queue[tuple[str, str, bytes]] = queue.Queue(maxsize=1000)
_stop = threading.Event()


#: set once the reader has read each topic up to its end offset at the reader's start
caught_up = threading.Event()
#: set once it has read ``rules.versions`` so far (or there is nothing to read there)
rules_caught_up = threading.Event()
#: how long a first partition assignment waits for both before applying what it has
CATCH_UP_S = 15.0
#: how long the processing agent's first record waits for the published rule sets
#: (:func:`before_first_event`): a worker must not tag with its local rules while a
#: published set exists (QA29 F6: after a kill -9 the models' snapshots took longer than
#: 15 s to read, and ~600 events were tagged with the local rules); the rules topic is
#: small, the model snapshots may lag (older scores for a moment)
RULES_CATCH_UP_S = 120.0
#: how long it waits, from the same start, for the model snapshots published before the
#: reader started: scoring with a fresh model after a restart put the rule points in place of
#: an open gate's model (intent tags, hot-lead alerts) until the snapshots were applied,
#: then back (QA41 F2); past it the first scores may come from an older model
MODELS_CATCH_UP_S = 120.0
#: the reader's position in each topic (the next offset it reads), after each fetch
read_to: dict[str, int] = {}


def current_end(topic: str) -> int | None:
    """The end offset of ``topic`` now: 0 when the broker's metadata has no such topic
    (nothing was ever published), None when the broker did not answer (unknown: not
    "nothing")."""
    from confluent_kafka import KafkaException  # noqa: PLC0415

    try:
        return end_offsets(settings.kafka_bootstrap, topic, 1)[0]
    except KafkaException as exc:
        log.info("broadcast topic %s: no end offset (%s)", topic, exc)
    try:
        topics = require_broker(settings.kafka_bootstrap).topics
    except UnreachableError as exc:
        log.warning("broadcast topic %s: no end offset (%s)", topic, exc)
        return None
    return 0 if topic not in topics else None


def _position(consumer: Any, topic: str) -> int:
    from confluent_kafka import TopicPartition  # noqa: PLC0415

    return consumer.position([TopicPartition(topic, 0)])[0].offset


def readable(topic: str) -> bool:
    """False (logged as an error saying how to fix it) for a ``rules.versions`` of several
    partitions: its reader reads partition 0 only, so a rule set published to another one is
    never seen; the worker keeps the rules it has rather than follow part of the topic."""
    if topic != "rules.versions":
        return True
    try:
        problem = topic_problem(settings.kafka_bootstrap, topic)
    except Exception as exc:  # noqa: BLE001 - the consumer reports an unreachable broker
        log.info("broadcast topic %s: partitions not checked (%s)", topic, exc)
        return True
    if problem:
        log.error("published rule sets are not followed: %s", problem)
    return problem is None


def _reader() -> None:
    consumers = {t: read_assigned(settings.kafka_bootstrap, t, 1) for t in TOPICS
                 if readable(t)}
    # the end offsets at the start; None: the broker did not answer, asked again below
    ends: dict[str, int | None] = {t: current_end(t) for t in consumers}
    behind = {t for t, end in ends.items() if end != 0}
    if "rules.versions" not in behind:
        rules_caught_up.set()
    if not behind:
        caught_up.set()
    try:
        while not _stop.is_set():
            for topic, c in consumers.items():
                # no wait on a topic while another one is still read up to its end
                wait = 0.0 if behind - {topic} else 0.25
                for msg in c.consume(num_messages=100, timeout=wait):
                    if msg.error() or msg.value() is None:
                        continue
                    key = (msg.key() or b"").decode("utf-8", "replace")
                    inbox.put((topic, key, msg.value()))
                read_to[topic] = _position(c, topic)   # every record before it is handed over
                if topic in behind and ends[topic] is None:
                    ends[topic] = current_end(topic)
                end = ends[topic]
                if topic in behind and end is not None and read_to[topic] >= end:
                    # (the position, not the last record's offset: compaction or a
                    # tombstone at the end would leave that short of the end offset)
                    behind.discard(topic)
                    if topic == "rules.versions":
                        rules_caught_up.set()
                    if not behind:
                        caught_up.set()
    finally:
        for c in consumers.values():
            c.close()


def apply_record(topic: str, key: str, value: bytes) -> None:
    """Apply one broadcast record to this worker's runtime."""
    if topic == "models.snapshots":
        runtime.registry.load(key, value)
        gate = runtime.registry.gate(key)
        metrics.set_model(key, runtime.registry.version(key), {
            "precision": gate.precision, "recall": gate.recall}, gate.open)
    elif topic == "rules.versions":
        ruleset = compile_bundle(decode(value))
        if ruleset.version != runtime.engine.ruleset.version:
            runtime.engine.ruleset = ruleset
            # backfill: every user this worker holds is re-evaluated under the new rules from
            # the retained state (the sweep sends the ticks in chunks; live events go on)
            from stream_app.app.tables import users  # noqa: PLC0415

            runtime.backfill = list(users.data.keys())
            runtime.backfill_total = len(runtime.backfill)
            runtime.backfill_done = 0
            metrics.BACKFILL_PROGRESS.set(0.0 if runtime.backfill_total else 1.0)
            log.warning("rule set %s loaded (hot reload); backfilling %d users",
                        ruleset.version, runtime.backfill_total)


@app.task
async def broadcast_applier() -> None:
    """Start the reader thread; apply what it reads inside the event loop."""
    thread = threading.Thread(target=_reader, name="broadcast-reader", daemon=True)
    thread.start()
    try:
        while True:
            apply_pending()
            await asyncio.sleep(0.5)
    finally:
        _stop.set()


def apply_pending() -> None:
    """Apply every record the reader has handed over so far; of several records of one
    topic and key (a restart reading every published rule set and model snapshot), only the
    newest: each older one would be compiled or loaded, and a rule set backfilled, for
    nothing. When the newest cannot be applied (a record another release or a hand-made
    producer wrote), the newest older one of the batch that can is, so a restarted worker
    runs the last good published rule set, not its local files. The tag families of the
    older rule sets are kept (:func:`remember_families`)."""
    pending: dict[tuple[str, str], list[bytes]] = {}
    while True:
        try:
            topic, key, value = inbox.get_nowait()
        except queue.Empty:
            break
        values = pending.pop((topic, key), [])   # re-inserted: keys in reading order
        values.append(value)
        pending[(topic, key)] = values
    skipped: list[bytes] = []
    for (topic, key), values in pending.items():
        for i in range(len(values) - 1, -1, -1):   # the newest first
            try:
                apply_record(topic, key, values[i])
            except Exception as exc:  # noqa: BLE001 - a bad record must not stop the worker
                log.error("cannot apply %s record %r%s: %s", topic, key,
                          f" (and {i} older of this batch to try)" if i else "", exc)
                continue
            if i < len(values) - 1:
                log.warning("%s %r: applied the newest record that could be, %d older than "
                            "the newest read", topic, key, len(values) - 1 - i)
            break
        if topic == "rules.versions":
            skipped += values[:-1]
    if skipped:
        remember_families(skipped)


def remember_families(bundles: list[bytes]) -> None:
    """Tell the engine the tag families of rule sets read but not applied (older ones of a
    batch, in reading order), after the newest was: a tag only a skipped set defined (v2
    added it, v3 removed it, v3 alone applied) goes out as ``rule_removed`` with its family,
    not ``family: ""``."""
    for blob in bundles:
        try:
            runtime.engine.remember_families(bundle_families(decode(blob)))
        except Exception as exc:  # noqa: BLE001 - a bad record must not stop the worker
            log.error("cannot read the tag families of a rules.versions record: %s", exc)


async def before_first_event() -> None:
    """Awaited by the processing agent before its first record: the published rule sets are
    read (at most ``RULES_CATCH_UP_S``), then the model snapshots published before the reader
    started (at most ``MODELS_CATCH_UP_S`` from the same start), and applied. So a worker
    started after ``rules apply`` never tags with its local rules, and a restarted one does
    not score with fresh models where the published ones passed their gate (QA41 F2: the
    rule points, not the model, made the intent tags and hot-lead alerts, then the model
    again once its snapshot was applied). The first record comes after the table recovery,
    so the rule set's backfill covers every user held. (Faust resumes the partitions when
    the recovery ends, whether the ``on_partitions_assigned`` receivers below have returned
    or not, and starts the reader's task only then: QA29 F6 on a live broker, every event
    waiting at a restart was tagged with the local rules first.)"""
    loop = asyncio.get_running_loop()
    start = loop.time()
    took = []
    for event, limit, what in (
            (rules_caught_up, RULES_CATCH_UP_S, "published rule sets not read within %.0f s: "
             "the first events may use the local rules"),
            (caught_up, MODELS_CATCH_UP_S, "published model snapshots not read within %.0f "
             "s: the first scores may come from older models")):
        left = max(0.0, start + limit - loop.time())
        if not event.is_set() and not await loop.run_in_executor(None, event.wait, left):
            log.error(what, limit)
        took.append(loop.time() - start)
    apply_pending()
    log.info("first event: published rule sets read after %.1f s, model snapshots after "
             "%.1f s, applied after %.1f s", *took, loop.time() - start)


async def snapshots_applied(timeout: float,
                            give_up: Callable[[], bool] = lambda: False) -> bool:
    """True once the reader has read ``models.snapshots`` up to its end offset *now* and
    every record read is applied (:func:`apply_pending`): the serving registry then holds
    the newest published snapshot of every target, also one another worker's trainer
    published a moment ago. True at once when nothing was published (no records, no topic:
    a first start does not wait). False after ``timeout`` seconds, when the broker gives no
    end offset, or as soon as ``give_up()`` is true (checked every 0.1 s).

    The trainer awaits it before it learns (QA41 F2): its registry is a copy of the serving
    one, and a copy made before the snapshots were applied was a fresh model, whose
    publication replaced the learned one on every worker."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    end = await loop.run_in_executor(None, current_end, MODELS)
    if end is None:
        return False
    while end and read_to.get(MODELS, 0) < end:
        if give_up() or loop.time() >= deadline:
            return False
        await asyncio.sleep(0.1)
    apply_pending()
    return True


@app.on_partitions_assigned.connect
async def broadcasts_before_events(sender: Any, assigned: Any, **kwargs: Any) -> None:
    """At a (first) assignment: the published rule set and model snapshots read so far are
    applied. Faust does not hold the records until this returns: the waits that do hold them
    are the processing agent's first record's (:func:`before_first_event`) and the trainer's
    (:func:`snapshots_applied`)."""
    if not caught_up.is_set():
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, caught_up.wait, CATCH_UP_S):
            log.warning("broadcast topics not read to their end within %.0f s: the first "
                        "scores may come from an older model (the first event waits for the "
                        "rule sets up to %.0f s, the models up to %.0f s)", CATCH_UP_S,
                        RULES_CATCH_UP_S, MODELS_CATCH_UP_S)
    apply_pending()


def pending() -> Any:
    return inbox.qsize()
