"""The scorer's checkpoints and snapshots through the real worker: kept in the users table's
record as a cold block (stream_app/state/codec.py), parsed only when the scorer needs them,
and joined with the label that arrives days later into the training pairs the scorer gives
offline on the same events."""

from __future__ import annotations

import orjson
import pytest

from stream_app.events import parse_event
from stream_app.scoring.config import load_scoring_config
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from stream_app.state.codec import merged
from tests.helpers import DAY, TopicReader, event, uid, wait_until

pytestmark = pytest.mark.integration
HOUR = 3_600_000


def offline_training(docs: list[tuple[str, dict]]) -> list[tuple]:
    """The training pairs the scorer makes on the whole state, offline."""
    cfg = load_scoring_config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    st, out = None, []
    for stream, doc in docs:
        step = sc.on_event(st, parse_event(doc, stream))
        st = step.sc_state
        out += [(t.target, t.y, t.ts, t.gate, t.x) for t in step.training]
    return out


def test_checkpoints_and_snapshots_wait_in_the_block_for_their_label(stack, harness):
    u, t = uid("cold"), harness.base_ts()
    changelog = TopicReader(stack.bootstrap, "stream-app-users-changelog", stack.partitions)
    training = TopicReader(stack.bootstrap, "scoring.training", stack.partitions)
    docs: list[tuple[str, dict]] = []

    def send(stream: str, doc: dict) -> None:
        """One event, then wait until the worker wrote the user's state for it (the input
        topics are consumed side by side: this keeps the order the offline run sees)."""
        before = len(changelog.where(uid=u))
        docs.append((stream, doc))
        harness.send(stream, doc)
        wait_until(lambda: len(changelog.where(uid=u)) > before, 90,
                   what=f"the state written after {doc['type']}")

    send("profile", event(u, "registered", t, {"channel": "douyin"}))
    for d in range(5):   # snapshots at ages 1 and 3 days; a checkpoint on day 2
        send("click", event(u, "course_view", t + d * DAY + 2 * HOUR, {"course_id": "py"}))
        if d == 2:
            send("label", event(u, "checkpoint", t + d * DAY + 3 * HOUR,
                                {"target": "convert", "group": "d2"}))
    held = changelog.where(uid=u)[-1]
    # the record: hot members as before, the block in front of them, packed (its feature
    # dicts' names once: cold_pack); read whole, it is the scorer's layout
    assert held["~c"] > 0 and "~x" in held and "~pc" in held
    assert "cp" not in held["sc"] and "sn" not in held["sc"]
    whole = merged(orjson.loads(orjson.dumps(held)))["sc"]
    assert whole["cp"][0][2] == "d2" and whole["sn"]["convert"]
    send("label", event(u, "outcome", t + 6 * DAY, {"target": "convert", "value": 1}))
    want = offline_training(docs)
    got = training.wait_for(timeout=90, count=len(want), user_id=u)
    assert len(want) >= 3          # the checkpoint, two scheduled snapshots, the last state
    assert sorted((g["target"], g["y"], g["ts"], g["gate"], g["x"]) for g in got) == \
        sorted(want)
    # resolved: the checkpoint and the used snapshots are gone from the block
    last = merged(changelog.where(uid=u)[-1])["sc"]
    assert not last.get("cp") and not (last.get("sn") or {}).get("convert")
    changelog.close()
    training.close()
