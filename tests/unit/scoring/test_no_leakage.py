"""No information from after a prediction's time may reach it."""

from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from tests.unit.scoring.fixtures import config, lead_stream


def _checkpoint_scores(events):
    cfg = config()
    reg = ModelRegistry(cfg)
    sc = Scorer(cfg, reg, alert_policy=None, score_events=False)
    states, recorded = {}, {}
    for e in events:
        s = sc.on_event(states.get(e.user_id), e)
        states[e.user_id] = s.sc_state
        if e.type == "checkpoint":
            cp = s.sc_state["cp"][-1]
            recorded[(e.user_id, cp[0])] = cp[4]
        for c in s.checkpoints:
            # the score reported at resolution is the one recorded at checkpoint time
            assert c["score"] == recorded[(c["user_id"], c["ts"])]
        for t in s.training:
            reg.learn(t.target, t.x, t.y, t.gate)
    return recorded


def test_a_label_never_changes_the_score_recorded_before_it():
    events = lead_stream(300, seed=3)
    full = _checkpoint_scores(events)
    assert len(full) == 300
    # every checkpoint scored from the prefix that ends at it gets exactly the same score
    cps = [i for i, e in enumerate(events) if e.type == "checkpoint"]
    for i in cps[::75]:
        prefix = _checkpoint_scores(events[: i + 1])
        key = (events[i].user_id, events[i].ts)
        assert prefix[key] == full[key]


def test_learning_happens_and_changes_later_scores():
    # guard for the test above: the model does learn, so equality is not trivial
    scores = _checkpoint_scores(lead_stream(300, seed=3))
    assert len(set(scores.values())) > 10
