"""Factories of simulator runs shared by the sim tests."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from stream_app.sim import START, Simulator, load_sim_config, parse_injection
from stream_app.sim.rhythm import DAY_MS

USERS = 2500
DAYS = 60


class Run:
    """Events and truth of one bulk run, with per-user indexes."""

    def __init__(self, sim: Simulator, events: list[dict[str, Any]]) -> None:
        self.sim = sim
        self.events = events
        self.truth = sim.truth()
        self.ground = sim.ground_truth()
        self.by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for ev in events:
            self.by_user[ev["user_id"]].append(ev)


def make_run(users: int = USERS, days: float = DAYS, seed: int = 11,
             inject: tuple[str, ...] = (), **overrides: Any) -> Run:
    cfg = load_sim_config(overrides={"users": users, **overrides})
    sim = Simulator(cfg, seed=seed, injections=[parse_injection(s) for s in inject])
    return Run(sim, list(sim.events(START, int(days * DAY_MS))))
