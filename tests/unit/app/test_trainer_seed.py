"""The trainer never learns before it holds the newest published model snapshots, and the
processing agent's first record waits for them (``app/training.py``, ``app/broadcast.py``).

QA41 F2: a restarted trainer with training pairs waiting copied the serving registry at its
first batch, before the broadcast reader had read and applied ``models.snapshots``: it learned
on a fresh model and published it (``logreg@300``, gate closed) over the learned one
(``logreg@3827``, gate open) on every worker. Here the trainer agent's function runs on a fake
stream, the reader thread is played by a thread that hands the published snapshot over
0.3 s after the first batch came, and the agent's publications are captured.

Run in a subprocess: importing the app builds the Faust app, and the scenarios change the
broadcast module's state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CODE = r"""
import asyncio, json, pickle, threading, time
from faust.types import TP
from stream_app.app import main                      # registers agents and signals
from stream_app.app import broadcast as bc, training
from stream_app.app.context import runtime
from stream_app.scoring.registry import ModelRegistry

cfg = runtime.scoring_config
MODELS = "models.snapshots"
REAL_END = getattr(bc, "current_end", None)   # (replaced by the scenarios up to 6)

def learned_blob(n, start=0):
    reg = ModelRegistry(cfg)
    for i in range(start, start + n):
        reg.learn("convert", {"qa|f": float(i % 2)}, i % 2, True)
    return reg, reg.snapshot("convert")

def pairs(n):
    return [{"target": "convert", "x": {"qa|f": float(i % 2)}, "y": i % 2, "gate": True}
            for i in range(n)]

class Sent:
    def __init__(self): self.blobs = []
    async def send(self, key, value): self.blobs.append((key, pickle.loads(value)))

class Stream:   # stream.take: each step runs its hook (awaited), then yields its batch
    def __init__(self, steps): self.steps = steps
    async def take(self, n, within):
        for hook, batch in self.steps:
            await hook()
            yield batch

threads = []

def reader_later(blob, offset, delay=0.3):
    # the broadcast reader: hands one snapshot over ``delay`` s from now, then its position
    def run():
        time.sleep(delay)
        bc.inbox.put((MODELS, "convert", blob))
        bc.read_to[MODELS] = offset
    threads.append(threading.Thread(target=run))
    threads[-1].start()

def fresh_serving():   # (a scenario's reader is done, what it handed over is not carried on)
    for t in threads:
        t.join()
    while not bc.inbox.empty():
        bc.inbox.get_nowait()
    runtime.registry = ModelRegistry(cfg)
    if hasattr(training, "seed"):   # (the trainer before QA41 F2 had no seed to reset)
        training.seed.reg = None
    bc.read_to = {}

async def nothing(): pass

def run_trainer(steps):
    sent = Sent()
    training.snapshots_topic = sent
    asyncio.run(training.trainer.fun(Stream(steps)))
    return [(b["learned"], b["gate_open"]) for _, b in sent.blobs]

out = {}

# 1. a restart with pairs waiting: the published model (200 learned, gate open) is read
# 0.3 s after the first batch came
fresh_serving()
_, published = learned_blob(200)
bc.current_end = lambda topic: 1
reader_later(published, 1)
out["restart"] = run_trainer([(nothing, pairs(50))])

# 2. nothing ever published (no record): a first start learns at once from a fresh model
fresh_serving()
bc.current_end = lambda topic: 0
out["first_start"] = run_trainer([(nothing, pairs(50))])

# 3. the partition moves to another worker and comes back: that worker's trainer published
# 400 learned meanwhile; this trainer continues from it, not from its own copy (250)
fresh_serving()
bc.current_end = lambda topic: 1
reader_later(published, 1, delay=0)
_, theirs = learned_blob(400)

async def moved_and_back():
    await main.app.on_partitions_revoked.send({TP("scoring.training", 0)})
    bc.current_end = lambda topic: 2
    reader_later(theirs, 2)

out["moved"] = run_trainer([(nothing, pairs(50)), (moved_and_back, pairs(10))])

# 4. the worker stops while the trainer waits: it gives up, learns and publishes nothing
fresh_serving()
bc.current_end = lambda topic: 1

async def stop_soon():   # the app's stop sets its should_stop
    asyncio.get_running_loop().call_later(0.3, main.app._stopped.set)

out["stop"] = run_trainer([(stop_soon, pairs(50))])
main.app._stopped.clear()

# 5. the broker gives no end offset: the trainer waits (retries), then the snapshot comes
fresh_serving()
ends = iter([None, None, 1])
bc.current_end = lambda topic: next(ends, 1)
training.SEED_RETRY_S = 0.05
reader_later(published, 1)
out["no_end"] = run_trainer([(nothing, pairs(50))])

# 6. the processing agent's first record: the rule sets are read, the model snapshots 0.3 s
# later; the first event is scored with the published model, not a fresh one
fresh_serving()
bc.rules_caught_up.set(); bc.caught_up.clear()
def models_later():
    time.sleep(0.3)
    bc.inbox.put((MODELS, "convert", published))
    bc.caught_up.set()
threads.append(threading.Thread(target=models_later))
threads[-1].start()
asyncio.run(bc.before_first_event())
out["first_event"] = [runtime.registry.version("convert"),
                      runtime.registry.gate("convert").open]

# 7. the reader's start: the broker gives no end offset of models.snapshots at first; the
# snapshots are not taken as caught up (nothing to wait for) until it does
from confluent_kafka import KafkaError, KafkaException

class Consumer:   # has read 3 records of each topic (handed over elsewhere)
    def consume(self, num_messages, timeout):
        time.sleep(0.01)
        return []
    def position(self, tps):
        return [type("TP", (), {"offset": 3})()]
    def close(self): pass

asked = []
def end_offsets(bootstrap, topic, partitions):
    if topic != MODELS:
        return {0: 0}
    asked.append(bc.caught_up.is_set())
    if len(asked) == 1:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
    return {0: 3}

class Metadata:
    topics = {MODELS: object(), "rules.versions": object()}

if REAL_END is not None:
    bc.current_end = REAL_END
bc.read_assigned = lambda bootstrap, topic, partitions: Consumer()
bc.end_offsets = end_offsets
bc.require_broker = lambda bootstrap, timeout=None: Metadata()
bc.topic_problem = lambda bootstrap, topic: None
bc.caught_up.clear(); bc.rules_caught_up.clear()
reader = threading.Thread(target=bc._reader)
reader.start()
bc.caught_up.wait(10)
bc._stop.set(); reader.join(10)
out["reader_start"] = [asked[:2], bc.caught_up.is_set()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    env = {**os.environ, "STREAM_APP_DATADIR": str(tmp_path_factory.mktemp("seed"))}
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_restarted_trainer_continues_from_the_published_model(results) -> None:
    # (learned, gate_open) of each publication: 200 published + 50 waiting, gate still open
    # (the old trainer published (50, False): a fresh model over the learned one)
    assert results["restart"] == [[250, True]]


def test_a_first_start_with_nothing_published_does_not_wait(results) -> None:
    # (it returned: no hang waiting for a snapshot that does not exist)
    assert results["first_start"] == [[50, False]]


def test_a_partition_that_comes_back_continues_from_the_other_workers_publication(
        results) -> None:
    assert results["moved"] == [[250, True], [410, True]]


def test_a_trainer_stopping_while_it_waits_learns_and_publishes_nothing(results) -> None:
    assert results["stop"] == []


def test_the_trainer_waits_while_the_broker_gives_no_end_offset(results) -> None:
    assert results["no_end"] == [[250, True]]


def test_the_first_event_waits_for_the_model_snapshots(results) -> None:
    assert results["first_event"] == ["logreg@200", True]


def test_the_reader_does_not_take_an_unknown_end_offset_for_nothing_to_read(results) -> None:
    # asked twice before the snapshots were taken as caught up (before: a broker that gave
    # no end offset at the reader's start meant "nothing published": caught up at once)
    assert results["reader_start"] == [[False, False], True]
