"""QA40 F2: ``redis-rebuild`` wrote each user's tags and why records but not its score fields
(``score:<target>`` = ``[score, layer, source]``), so after a rebuild every user was served
with empty ``scores``, ``layers`` and ``sources``; and ``--check-only`` compared the tags
only, so it said "0 differences". Now the rebuild scores each user as of its state's clock
and ``check`` compares the score fields: a missing field or a layer other than the tags'
is a difference, a score from another time or model version a note.

The users here are built as the worker builds them (the rule engine and the scorer, event
by event, and a clock tick), their live projection written as the worker writes it; then
checked, damaged, rebuilt and checked again against a real redis-server."""

from __future__ import annotations

import orjson
import pytest
import redis

from stream_app.cli.rebuild_cmd import check, rebuild, stored_scores
from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset
from stream_app.scoring.config import load_scoring_config
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from stream_app.scoring.with_tags import layer_moved, score_with_tags
from stream_app.serving import keys
from stream_app.serving.full_state import state_ops, state_scores
from stream_app.serving.projection import _apply
from tests.unit.serving.conftest import _DBS

DAY = 86_400_000
T0 = 1_714_528_800_000
USERS = {   # user -> its events: (stream, type, days after T0)
    "lead": [("click", "course_view", 0), ("click", "trial_booked", 0.1),
             ("click", "course_view", 1), ("click", "cart_add", 1.1)],
    "learner": [("study", "lesson_attended", 0), ("click", "course_view", 0.2)],
    "browser": [("click", "course_view", 0), ("click", "course_view", 0.5)],
    "quiet": [("click", "page_view", 3)],
}


class Served(ModelRegistry):
    """A registry whose convert model has passed its gate since (a model published)."""

    def source(self, target: str) -> str:
        return "logreg@812" if target == "convert" else super().source(target)

    def predict(self, target: str, x: dict[str, float]) -> float:
        return 0.61 if target == "convert" else super().predict(target, x)


@pytest.fixture(scope="module")
def world():
    """``(engine, scorer, states, live)``: the users' table records, and the score fields
    the worker last wrote for each (after each event, and after a clock tick that moved a
    layer tag: the learner's 14-day stall, at_risk true)."""
    cfg = load_scoring_config()
    engine, scorer = TagEngine(load_ruleset(DEFAULT_RULES)), Scorer(cfg, ModelRegistry(cfg),
                                                                     alert_policy=None)
    states, live = {}, {}
    for uid, events in USERS.items():
        st, fields = None, {}
        for i, (stream, etype, days) in enumerate(events):
            ev = Event(f"{uid}-{i}", uid, T0 + int(days * DAY), etype, stream)
            res = engine.on_event(st, ev)
            st = res.state
            step, rounded = score_with_tags(scorer, engine, st, res.changes, res.why, ev)
            fields.update(keys.score_fields(rounded, step.layers, step.source))
        res = engine.on_tick(st, T0 + 16 * DAY)
        st = res.state
        if layer_moved(scorer, res.changes):      # as the worker's tick writes them
            fields.update(state_scores(scorer, st, at=T0 + 16 * DAY))
        states[uid], live[uid] = st, fields
    assert states["learner"]["tags"]["at_risk"] is True      # the tick moved a layer tag
    assert live["learner"]["score:at_risk"][1] == "high"
    return engine, scorer, states, live


@pytest.fixture()
def r(redis_url):
    client = redis.Redis.from_url(f"{redis_url}/{next(_DBS)}")
    client.flushdb()
    yield client
    client.close()


def write_live(r, states, live) -> None:
    """The projection as the worker leaves it: the tags, and the score fields it wrote."""
    pipe = r.pipeline(transaction=False)
    for uid, st in states.items():
        for op in state_ops(st, None, 0):
            _apply(pipe, op)
        pipe.hset(keys.user_key("default", uid),
                  mapping={f: orjson.dumps(v) for f, v in live[uid].items()})
    pipe.execute()


def scores_of(r, uid):
    return {keys.score_field(t): list(v)
            for t, v in stored_scores(r.hgetall(keys.user_key("default", uid))).items()}


def test_state_ops_write_the_score_fields_as_the_worker_does(world):
    _, scorer, states, live = world
    st = states["lead"]
    fields = state_scores(scorer, st)
    assert set(fields) == {"score:convert", "score:at_risk"}
    assert fields["score:convert"][1:] == (st["tags"]["intent"], "rules")
    ops = state_ops(st, None, 0, fields)
    assert ops[-1] == ("hsetmap", keys.user_key("default", "lead"),
                       {f: orjson.dumps(v) for f, v in fields.items()})
    # no clock tick moved the lead's clock past its last event: what the worker wrote
    assert state_scores(scorer, states["learner"]) == live["learner"]
    assert state_ops(st, None, 0)[-1][0] != "hsetmap"          # no scorer: tags only


def test_check_compares_the_score_fields(world, r):
    _, scorer, states, live = world
    write_live(r, states, live)
    notes: list[str] = []
    assert check(r, states, scorer=scorer, notes=notes) == []
    assert notes == []
    # what QA40 F2 found after a rebuild: every score field gone, and no difference said
    for uid in states:
        r.hdel(keys.user_key("default", uid), "score:convert", "score:at_risk")
    problems = check(r, states, scorer=scorer)
    assert len(problems) == 2 * len(states)
    assert all("missing (the table's state gives" in p for p in problems), problems
    # a layer other than the layer tag's is a difference too
    write_live(r, states, live)
    wrong = [live["learner"]["score:at_risk"][0], "low", "rules"]
    r.hset(keys.user_key("default", "learner"), "score:at_risk", orjson.dumps(wrong))
    assert check(r, states, scorer=scorer) == [
        "learner: layers.at_risk is 'low', the table's tags give 'high'"]


def test_a_rebuild_restores_the_scores_and_layers(world, r):
    engine, scorer, states, live = world
    rebuild(r, states, engine, scorer=scorer, timeline=0)
    for uid, st in states.items():
        got = scores_of(r, uid)
        assert got == {f: list(v) for f, v in state_scores(scorer, st).items()}
        assert {f: v[1:] for f, v in got.items()} == {f: list(v[1:])
                                                     for f, v in live[uid].items()}
    # the browser: scored as of its clock (the tick's, which moved no layer tag: the worker
    # wrote nothing then), its points decayed since the last event the worker scored it at:
    # the same layers, a lower score
    assert scores_of(r, "browser")["score:convert"][0] < live["browser"]["score:convert"][0]
    # the lead and the learner: a tick moved a layer tag, the worker scored them then
    for uid in ("lead", "learner"):
        assert scores_of(r, uid) == {f: list(v) for f, v in live[uid].items()}
    notes: list[str] = []
    assert check(r, states, scorer=scorer, notes=notes) == [] and notes == []


def test_scores_of_another_model_or_time_are_notes_not_differences(world, r):
    engine, scorer, states, live = world
    write_live(r, states, live)
    served = Scorer(scorer.config, Served(scorer.config), alert_policy=None)
    notes: list[str] = []
    assert check(r, states, scorer=served, notes=notes) == []
    assert sorted(notes) == [f"{u}: score:convert by rules, the served models give logreg@812 "
                             "(models changed since)" for u in sorted(states)]
    rebuild(r, states, engine, scorer=served, timeline=0)
    intent = states["lead"]["tags"]["intent"]        # the layer: the tag's, whatever the model
    assert scores_of(r, "lead")["score:convert"] == [0.61, intent, "logreg@812"]
    # a score written in between (neither as of the clock nor the last scored event)
    r.hset(keys.user_key("default", "lead"), "score:at_risk", orjson.dumps([0.5, "low", "rules"]))
    notes.clear()
    assert check(r, states, scorer=served, notes=notes) == []
    assert notes == ["lead: score:at_risk is 0.5, 0.0 as of the state's clock, 0.0 as of its "
                     "last scored event"]
