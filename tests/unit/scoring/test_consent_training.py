"""PIPL: a user who refused profiling (``profiling_consent`` false) contributes nothing to
training while the refusal holds: no training example (so nothing for the
``scoring.training`` topic, the trainer or the rehearsal reservoir), no snapshot and no
checkpoint kept, on the live path (rule tags) and in ``stream-app evaluate``; what was
pending when the refusal is seen is dropped, and a later consent learns only from what
follows it."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset
from stream_app.scoring.evaluate import evaluate_file
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer, ScoreStep
from stream_app.scoring.with_tags import score_with_tags
from tests.unit.scoring.fixtures import DAY, HOUR, config

T = 1_800_000_000_000


def _lead(uid: str, consent: object, start: int = T) -> list[Event]:
    """A lead who registers (with ``consent`` to profiling unless None), clicks for 10 days
    (snapshots at 1, 3 and 7 days), gets a checkpoint, and pays."""
    props = {} if consent is None else {"consent_profiling": consent}
    evs = [Event(f"{uid}-r", uid, start, "registered", "profile", props=props)]
    for d in range(10):
        evs.append(Event(f"{uid}-v{d}", uid, start + d * DAY + HOUR, "course_view", "click"))
    evs.append(Event(f"{uid}-cp", uid, start + 5 * DAY, "checkpoint", "label",
                     props={"target": "convert", "group": "d5"}))
    evs.append(Event(f"{uid}-o", uid, start + 10 * DAY, "order_paid", "order"))
    return sorted(evs, key=lambda e: e.ts)


def _live(events: list[Event]) -> tuple[list[ScoreStep], dict]:
    """The worker's path: the rule engine, then the scorer beside it."""
    cfg = config()
    eng = TagEngine(load_ruleset(DEFAULT_RULES))
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    st, steps = None, []
    for e in events:
        r = eng.on_event(st, e)
        st = r.state
        step, _ = score_with_tags(sc, eng, st, r.changes, r.why, e, prior=r.prior)
        steps.append(step)
    return steps, st


def _examples(steps: list[ScoreStep]) -> list:
    return [t for s in steps for t in s.training]


def test_a_user_who_refused_profiling_gives_no_training_example() -> None:
    steps, st = _live(_lead("u1", False))
    assert st["tags"]["profiling_consent"] is False
    assert _examples(steps) == []
    assert [c for s in steps for c in s.checkpoints] == []
    assert not st["sc"].get("sn") and not st["sc"].get("cp")
    for answer in (True, None):          # consent, or not told: learned as before
        steps, _ = _live(_lead("u1", answer))
        assert len(_examples(steps)) >= 4  # the checkpoint, 3 schedule snapshots, last state


def test_pending_examples_are_dropped_when_the_refusal_is_seen() -> None:
    evs = _lead("u1", True)
    # on day 8 (snapshots of days 1, 3, 7 and the checkpoint pending) the user refuses
    refuse = Event("u1-p", "u1", T + 8 * DAY, "profile_updated", "profile",
                   props={"consent_profiling": "否"})
    steps, st = _live(sorted([*evs, refuse], key=lambda e: e.ts))
    assert st["tags"]["profiling_consent"] is False
    assert _examples(steps) == []


def test_a_later_consent_learns_only_from_what_follows_it() -> None:
    evs = _lead("u1", False)
    grant = T + 4 * DAY
    evs.append(Event("u1-p", "u1", grant, "profile_updated", "profile",
                     props={"consent_profiling": True}))
    steps, _ = _live(sorted(evs, key=lambda e: e.ts))
    ex = _examples(steps)
    assert ex, "consent given again: the snapshots after it are learned"
    assert min(t.ts for t in ex) >= grant


def test_feedback_of_a_refused_user_is_not_learned() -> None:
    evs = _lead("u1", False)[:-1]       # no order: the sales feedback says converted
    evs.append(Event("u1-f", "u1", T + 10 * DAY, "alert_feedback", "feedback",
                     props={"verdict": "converted"}))
    steps, _ = _live(evs)
    assert _examples(steps) == []
    evs[0] = Event("u1-r", "u1", T, "registered", "profile", props={"consent_profiling": 1})
    steps, _ = _live(evs)
    assert [t.y for t in _examples(steps)][:1] == [1]


def test_the_scorer_without_tags_keeps_the_last_known_refusal() -> None:
    cfg = config()
    sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    evs = _lead("u1", None)
    s = sc.on_event(None, evs[0], refused=True)
    for e in evs[1:]:
        s = sc.on_event(s.sc_state, e)  # (nothing known: the refusal holds)
        assert s.training == []
    assert s.sc_state.get("nc") == 1


def test_evaluate_learns_nothing_from_users_who_refused_profiling(tmp_path: Path) -> None:
    rows = []
    for i in range(6):
        for e in _lead(f"u{i}", [True, False, None][i % 3], start=T + i * HOUR):
            rows.append({"event_id": e.event_id, "user_id": e.user_id, "ts": e.ts,
                         "type": e.type, "stream": e.stream, "props": e.props})
    rows.sort(key=lambda r: r["ts"])
    path = tmp_path / "ev.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\n".join(orjson.dumps(r) for r in rows))
    res = evaluate_file(path, "convert")
    # 4 users consent or were not asked; the 2 who refused add no checkpoint and no label
    assert res["checkpoints"]["all"]["n"] == 4
    assert res["labels"] == 4
    per_user = res["snapshots_learned"] / 4
    assert per_user == int(per_user) >= 4
