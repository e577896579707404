"""A restarted trainer with training pairs waiting continues from the published model.

QA41 F2: the trainer copied the serving registry at its first batch without waiting for the
broadcast reader to read and apply ``models.snapshots``; with pairs waiting on
``scoring.training`` that batch came before the snapshots were applied, so the trainer learned
on a fresh model and published it (the newest record of the compacted topic): ``convert`` went
from ``logreg@3827`` with its gate open to ``logreg@300`` with its gate closed, on every
worker. The processing agent's first events were scored with the fresh model too (the rule
points, not the open gate's model).

On a live stack (small size): pairs a separable feature decides open ``convert``'s gate
(``logreg@200``); the worker is stopped; 50 more pairs and a new lead's click wait on the
broker; the worker is restarted. Every ``convert`` snapshot published after the restart
continues from the 200 learned (the last: 250, gate open), and the waiting click is scored by
the published model, not by the rule points of a fresh one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stream_app.kafka_io import end_offsets, make_producer, produce, read_assigned
from stream_app.scoring.config import load_scoring_config
from stream_app.scoring.registry import describe_blob
from stream_app.serving import keys
from stream_app.serving.reader import split_profile
from tests.helpers import TIMELESS_ENV, Harness, event, running_stack, uid, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
LEARNED = 200    # pairs learned before the stop (the gate opens on them)
WAITING = 50     # pairs waiting on scoring.training while the worker is down


@pytest.fixture(scope="module")
def trainer_stack():
    yield from running_stack(ROOT / "var" / f"test-trainer-restart-{os.getpid()}",
                             partitions=2, worker_timeout=240,
                             env={**TIMELESS_ENV, "STREAM_APP_SWEEP_INTERVAL_S": "1"})


def send_pairs(bootstrap: str, n: int, start: int) -> None:
    """``n`` training pairs of ``convert`` as workers send them: the feature ``qa|f`` is the
    label (alternating), so the model's gate opens after about 100."""
    producer = make_producer(bootstrap)
    for i in range(start, start + n):
        produce(producer, "scoring.training", "convert", {
            "target": "convert", "x": {"qa|f": float(i % 2)}, "y": i % 2,
            "ts": 1_780_000_000_000 + i, "user_id": f"pair-{i}", "gate": True})
    producer.flush(30)


def published(bootstrap: str) -> list[tuple[int, bool]]:
    """(learned, gate open) of every ``convert`` snapshot on ``models.snapshots``, in order."""
    from confluent_kafka import TopicPartition  # noqa: PLC0415

    cfg = load_scoring_config()
    end = end_offsets(bootstrap, "models.snapshots", 1)[0]
    consumer = read_assigned(bootstrap, "models.snapshots", 1)
    out: list[tuple[int, bool]] = []

    def read_all() -> bool:
        for msg in consumer.consume(num_messages=500, timeout=0.5):
            if not msg.error() and msg.value() is not None and msg.key() == b"convert":
                d = describe_blob(msg.value(), cfg)
                out.append((d["learned"], d["open"]))
        return consumer.position([TopicPartition("models.snapshots", 0)])[0].offset >= end

    try:
        wait_until(read_all, 60, interval=0, what="models.snapshots read to its end")
    finally:
        consumer.close()
    return out


def newest_at(bootstrap: str, learned: int) -> list[tuple[int, bool]] | None:
    """The publications once the newest has learned at least ``learned`` pairs."""
    got = published(bootstrap)
    return got if got and got[-1][0] >= learned else None


def convert_source(h: Harness, user: str) -> str | None:
    raw = h.store.r.hgetall(keys.user_key("default", user))
    return split_profile(raw)["sources"].get("convert") if raw else None


def test_a_restarted_trainer_with_pairs_waiting_continues_from_the_published_model(
        trainer_stack):
    bootstrap = trainer_stack.bootstrap
    worker = trainer_stack.workers[0]
    h = Harness(trainer_stack)
    try:
        send_pairs(bootstrap, LEARNED, 0)
        before = wait_until(lambda: newest_at(bootstrap, LEARNED), 120, interval=1,
                            what=f"convert published at {LEARNED}")
        assert before[-1] == (LEARNED, True), before

        worker.stop()
        send_pairs(bootstrap, WAITING, LEARNED)
        lead = uid("tr-lead")
        h.send("click", event(lead, "page_view", h.base_ts()))
        trainer_stack.restart_worker(worker)
        worker.wait_ready(240)

        total = LEARNED + WAITING

        def after_restart() -> list[tuple[int, bool]] | None:
            got = published(bootstrap)[len(before):]
            return got if got and (got[-1][0] >= total or got[0][0] <= LEARNED) else None

        after = wait_until(after_restart, 120, interval=1,
                           what=f"convert published after the restart, at {total}")
        # every publication continues from the learned model, the gate stays open (before:
        # (50, False), a fresh model over the learned one)
        assert all(learned > LEARNED for learned, _ in after), after
        assert after[-1] == (total, True), after
        # the click that waited was scored by the published model (before: by the rule
        # points, a fresh model's gate being closed)
        source = wait_until(lambda: convert_source(h, lead), 60,
                            what="the waiting lead's convert score in Redis")
        assert source.startswith("logreg@") and int(source.split("@")[1]) >= LEARNED, source
    finally:
        h.close()
