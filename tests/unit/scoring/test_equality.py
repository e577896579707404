"""Offline evaluation and streaming operation give the same scores.

Streaming here means what the Faust agent does: the user state goes through a JSON table
record between events, and workers score with a registry that is a replica loaded from the
trainer's published snapshots (``models.snapshots``), not with the trainer's own object.
"""

import gzip

import orjson

from stream_app.scoring.evaluate import evaluate_file
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from tests.unit.scoring.fixtures import config, lead_stream


def _write(tmp_path, events):
    path = tmp_path / "ev.jsonl.gz"
    with gzip.open(path, "wb") as f:
        for e in events:
            f.write(orjson.dumps(e.to_dict()) + b"\n")
    return path


def _streaming(events, cfg):
    trainer, worker = ModelRegistry(cfg), ModelRegistry(cfg)
    sc = Scorer(cfg, worker, alert_policy=None, score_events=True)
    table: dict[str, bytes] = {}
    out = {}
    for e in events:
        raw = table.get(e.user_id)
        s = sc.on_event(orjson.loads(raw) if raw else None, e)
        table[e.user_id] = orjson.dumps(s.sc_state)
        for c in s.checkpoints:
            out[(c["user_id"], c["group"])] = c["score"]
        if s.training:
            for t in s.training:      # sent to the trainer through a topic ...
                trainer.learn(t.target, t.x, t.y, t.gate)
            for target in {t.target for t in s.training}:   # ... which publishes
                worker.load(target, trainer.snapshot(target))
    return out


def test_evaluate_equals_streaming_scores(tmp_path):
    events = lead_stream(250, seed=11)
    cfg = config()      # the agent scores every target; evaluate only the one asked for
    res = evaluate_file(_write(tmp_path, events), "convert", config=cfg, keep_records=True)
    offline = {(c["user_id"], c["group"]): c["score"] for c in res["records"]}
    streamed = _streaming(events, cfg)
    assert len(offline) == 250
    assert streamed == offline


def test_scoring_every_event_does_not_change_checkpoint_scores(tmp_path):
    path = _write(tmp_path, lead_stream(150, seed=2))
    a = evaluate_file(path, "convert", score_events=False, keep_records=True)["records"]
    b = evaluate_file(path, "convert", score_events=True, keep_records=True)["records"]
    assert [c["score"] for c in a] == [c["score"] for c in b]
    assert len({c["score"] for c in a}) > 5
