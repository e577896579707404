"""A simulator stream replayed in-process the way the worker runs it, for the alert tests.

The rule engine applies each event, the scorer runs beside it
(:func:`~stream_app.scoring.with_tags.score_with_tags`), a sweep every ``TICK_MS`` of event
time ticks every due user (:func:`~stream_app.scoring.with_tags.tick_alerts`), and a trainer
learns the labels and publishes models to the scorer every ``PUBLISH_EVERY`` labelled events,
so the release gates open within the replay. States go through their bytes between steps,
as in the worker's table.

Example:
    >>> lr = LiveReplay(unlimited=("hot_lead",))
    >>> lr.policy.kinds["hot_lead"].hourly_budget_per_tenant
    1000000000
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import orjson

from stream_app.alerts.policy import HOUR_MS, AlertPolicy
from stream_app.events import Event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from stream_app.scoring.with_tags import score_with_tags, tick_alerts
from tests.unit.scoring.fixtures import config
from tests.unit.scoring.test_fast_path import PUBLISH_EVERY

TICK_MS = 6 * HOUR_MS       # the clock sweeps every user this often (event time)


@dataclass
class Step:
    """One engine step of the replay: a clock tick of a due user or an event."""

    kind: str                   # "tick" or "event"
    uid: str
    ts: int
    before: dict[str, Any]      # the user's tags before the step
    state: dict[str, Any]       # the user's state after it
    alerts: list[dict[str, Any]]
    scoring: Any = None         # the scoring step of an event (None for a tick)
    changes: list[dict[str, Any]] | None = None   # the tag-change records the step sent


class Cooldowns:
    """Each user's last alert of one kind, to tell whether a step falls outside the kind's
    cooldown (the replay tests' "an entry alerts unless in a cooldown").

    >>> cd = Cooldowns(24)
    >>> cd.cooled("u1", 0), cd.note([{"user_id": "u1", "ts": 0}]), cd.cooled("u1", HOUR_MS)
    (True, None, False)
    """

    def __init__(self, hours: float) -> None:
        self.ms = hours * HOUR_MS
        self.last: dict[str, int] = {}

    def cooled(self, uid: str, ts: int) -> bool:
        return uid not in self.last or ts - self.last[uid] >= self.ms

    def note(self, alerts: list[dict[str, Any]]) -> None:
        for a in alerts:
            self.last[a["user_id"]] = a["ts"]


class LiveReplay:
    """The engine, scorer, alert policy and trainer of one replay (``unlimited``: alert kinds
    whose tenant budget is lifted, so that only the cooldown holds an alert back;
    ``min_labels``: every gate's, low so that the models go live within the replay)."""

    def __init__(self, unlimited: tuple[str, ...] = (), min_labels: int = 30) -> None:
        self.cfg = config(min_labels=min_labels)      # models go live within the replay
        self.policy = AlertPolicy.from_config(self.cfg)
        for kind in unlimited:
            self.policy.kinds[kind] = replace(self.policy.kinds[kind],
                                              hourly_budget_per_tenant=10**9)
        self.trainer = ModelRegistry(self.cfg, fast_predict=False)
        self.worker = ModelRegistry(self.cfg)
        self.scorer = Scorer(self.cfg, self.worker, alert_policy=self.policy)
        self.engine = TagEngine(load_ruleset(DEFAULT_RULES))

    def steps(self, events: Iterable[Event]) -> Iterator[Step]:
        """Every step of the replay of ``events`` (in order), ticks before the event that
        passes their time."""
        engine, table = self.engine, {}
        labelled, next_tick = 0, None
        for ev in events:
            if next_tick is None:
                next_tick = ev.ts + TICK_MS
            while ev.ts >= next_tick:           # the sweep: every due user, on the clock
                for uid, raw in list(table.items()):
                    state = orjson.loads(raw)
                    if not engine.due(state, next_tick):
                        continue
                    before = dict(state.get("tags") or {})
                    r = engine.on_tick(state, next_tick)
                    if r.state is None:
                        del table[uid]
                        continue
                    alerts = tick_alerts(self.policy, uid, r.state, r.changes, next_tick)
                    yield Step("tick", uid, next_tick, before, r.state, alerts,
                               changes=r.changes)
                    table[uid] = orjson.dumps(r.state)
                next_tick += TICK_MS
            raw = table.get(ev.user_id)
            state = orjson.loads(raw) if raw else None
            before = dict((state or {}).get("tags") or {})
            r = engine.on_event(state, ev)
            if r.duplicate or r.state is None:
                continue
            step, _ = score_with_tags(self.scorer, engine, r.state, r.changes, r.why, ev,
                                      prior=r.prior)
            yield Step("event", ev.user_id, ev.ts, before, r.state, step.alerts, step,
                       r.changes)
            table[ev.user_id] = orjson.dumps(r.state)
            if step.training:
                for t in step.training:
                    self.trainer.learn(t.target, t.x, t.y, t.gate)
                labelled += 1
                if labelled % PUBLISH_EVERY == 0:
                    for target in self.trainer.targets:
                        self.worker.load(target, self.trainer.snapshot(target))
