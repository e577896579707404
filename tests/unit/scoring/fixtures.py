"""Factories for scoring tests: events, configs and a small synthetic lead stream."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from stream_app.events import Event
from stream_app.scoring.config import GateConfig, ScoringConfig, load_scoring_config

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_700_000_000_000


def ev(uid: str, ts: int, etype: str, stream: str = "click", eid: str | None = None,
       tenant: str = "default", **props: Any) -> Event:
    return Event(eid or f"{uid}-{etype}-{ts}", uid, ts, etype, stream, tenant, props)


def label(uid: str, ts: int, kind: str, **props: Any) -> Event:
    return Event(f"{uid}-{kind}-{ts}-{props.get('group', '')}", uid, ts, kind, "label", "default",
                 props)


def config(**gate: Any) -> ScoringConfig:
    """The shipped config; ``gate`` overrides every target's gate fields."""
    cfg = load_scoring_config()
    if gate:
        cfg = replace(cfg, targets={n: replace(t, gate=replace(t.gate, **gate))
                                    for n, t in cfg.targets.items()})
    return cfg


def small_gate() -> GateConfig:
    return GateConfig(window=100, min_labels=30, min_precision=0.5, min_recall=0.4)


def lead_stream(n_users: int, seed: int = 1, informative: bool = True,
                checkpoints: bool = True) -> list[Event]:
    """Leads with a hidden intent; intent drives activity and (when ``informative``) buying.

    Each lead: 8 days of clicks, a checkpoint (group ``d3``) on day 3, then on day 8 either an
    ``order_paid`` (convert) or a CRM ``outcome`` 0. Not ``informative``: buying is a coin
    flip, independent of everything the lead did. Ordered by time.
    """
    rng = random.Random(seed)
    out: list[Event] = []
    for i in range(n_users):
        uid = f"u{i:05d}"
        start = T0 + i * 2 * HOUR
        intent = rng.random()
        buys = rng.random() < (0.1 + 0.8 * (intent > 0.5) if informative else 0.5)
        act = intent
        out.append(ev(uid, start, "registered", "profile", region=rng.choice(["bj", "sh", "gz"]),
                      channel=rng.choice(["douyin", "baidu"])))
        for d in range(8):
            for _ in range(int(act * 6 * rng.random() + 0.5)):
                t = start + d * DAY + int(rng.random() * 20 * HOUR)
                etype = rng.choice(["course_view", "search", "live_enter", "trial_booked"]
                                   if rng.random() < act else ["page_view", "share"])
                out.append(ev(uid, t, etype, seconds=int(60 * rng.random())))
        if checkpoints:
            out.append(label(uid, start + 3 * DAY, "checkpoint", target="convert", group="d3"))
        if buys:
            out.append(ev(uid, start + 8 * DAY + HOUR, "order_paid", "order", amount=2999))
        else:
            out.append(label(uid, start + 8 * DAY + HOUR, "outcome", target="convert", value=0))
    out.sort(key=lambda e: (e.ts, e.stream == "label"))
    return out
