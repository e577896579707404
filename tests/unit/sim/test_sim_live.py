"""Live mode: simulated time runs `speed` x the wall clock, people keep arriving."""

from __future__ import annotations

import itertools

import pytest

from stream_app.errors import ConfigError
from stream_app.sim import START, Simulator, load_sim_config
from stream_app.sim.rhythm import DAY_MS


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        assert s > 0
        self.slept.append(s)
        self.t += s


def test_live_paces_events_by_the_wall_clock() -> None:
    clock = FakeClock(1_000.0)
    sim = Simulator(load_sim_config(), seed=2)
    speed = 2880.0
    out = list(itertools.islice(sim.live(speed, START, warmup_ms=0, clock=clock,
                                         sleep=clock.sleep), 3000))
    dues = [d for d, _ in out]
    assert dues == sorted(dues)
    for due, ev in out:
        assert abs(due - (1_000.0 + (ev["ts"] - START) / 1000 / speed)) < 1e-6
    assert clock.slept and abs(clock.t - dues[-1]) < 1e-6   # it waited until each was due
    span_days = (out[-1][1]["ts"] - START) / DAY_MS
    assert 0.5 < span_days < 10


def test_live_keeps_people_arriving_and_applies_live_overrides() -> None:
    sim = Simulator(load_sim_config(overrides={"live.arrivals_per_day": 400}), seed=3)
    users_by_day: dict[int, set[str]] = {}
    study_days = set()
    for _, ev in sim.live(start_ms=START, sleep=None):
        day = (ev["ts"] - START) // DAY_MS
        if day >= 20:
            break
        if ev["type"] == "ad_landing":
            users_by_day.setdefault(day, set()).add(ev["user_id"])
        if ev["type"] == "lesson_attended" and ev["props"].get("class_type") != "trial":
            study_days.add(((ev["ts"] // DAY_MS) + 3) % 7)   # weekday (UTC; lessons at 12:00Z)
    assert all(len(users_by_day.get(d, ())) > 200 for d in range(20))
    assert len(study_days) == 7   # live override: lessons every day
    assert sum(t["at_risk_label"] == 1 for t in sim.truth().values()) > 0


def test_live_warmup_is_emitted_at_once() -> None:
    clock = FakeClock(50.0)
    sim = Simulator(load_sim_config(), seed=4)
    first_due, first = next(sim.live(1440, START, warmup_ms=2 * DAY_MS, clock=clock,
                                     sleep=clock.sleep))
    assert first["ts"] < START and first_due < 50.0 and not clock.slept


def test_live_is_deterministic_for_a_seed_and_start() -> None:
    def take(seed: int) -> list[dict]:
        sim = Simulator(load_sim_config(), seed=seed)
        return [ev for _, ev in itertools.islice(sim.live(start_ms=START, sleep=None), 500)]

    nine = take(9)
    assert nine == take(9)
    assert [(e["user_id"], e["ts"]) for e in nine] != [(e["user_id"], e["ts"]) for e in take(10)]


def test_live_rejects_a_non_positive_speed() -> None:
    with pytest.raises(ConfigError):
        next(Simulator(load_sim_config(), seed=1).live(speed=0, start_ms=START, sleep=None))


def test_live_can_forget_finished_people() -> None:
    sim = Simulator(load_sim_config(overrides={"live.arrivals_per_day": 300}), seed=5)
    seen: set[str] = set()
    landings: list[str] = []
    for _, ev in sim.live(start_ms=START, sleep=None, keep_finished=False):
        seen.add(ev["user_id"])
        if ev["type"] == "ad_landing":
            landings.append(ev["user_id"])
        if ev["ts"] >= START + 12 * DAY_MS:
            break
    alive = sim.truth()
    assert 0 < len(alive) < len(seen)          # visitors who left were forgotten
    assert len(set(landings)) == len(landings)  # and their ids are never given again
