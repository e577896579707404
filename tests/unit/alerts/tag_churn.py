"""Tag churn in a simulator replay: how often each user's ``intent`` and ``at_risk`` tags change
and how many hot-lead / at-risk alerts each user gets (docs/RULES.md, prev() and hysteresis).

The replay is :class:`~tests.unit.alerts.live_replay.LiveReplay` (engine, scorer beside it,
sweep ticks, a trainer publishing models, so the models' gates open within it), with no
tenant budget on the alerts (only the cooldowns hold them back). A change counts when a
tag-change record goes out with a value on both sides (``added`` records, a user's first
value, are not churn), whatever step made it (an event, a score update, a clock tick). Run it
on two trees to compare rule sets, or pass ``--rules DIR``::

    python -m tests.unit.alerts.tag_churn --users 1000 --days 45 --seed 7

Example:
    >>> c = Churn()
    >>> c.change("u1", "intent", "medium", "high"); c.change("u1", "intent", "high", "medium")
    >>> c.change("u2", "intent", None, "low")        # added: not churn
    >>> for m in ("intent changes", "intent high <-> medium", "intent entries into high"):
    ...     print(m, "|", c.row(m))
    intent changes | 2 by 1 users (>=2: 1, >=3: 0, >=6: 0, max 2)
    intent high <-> medium | 2 by 1 users (>=2: 1, >=3: 0, >=6: 0, max 2)
    intent entries into high | 1 by 1 users (>=2: 0, >=3: 0, >=6: 0, max 1)
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from stream_app.events import Event


class Churn:
    """Per-user counts of tag changes and alerts, by metric."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)

    def change(self, uid: str, tag: str, old: Any, new: Any) -> None:
        """Count one tag-change record of ``tag`` (``intent`` or ``at_risk``)."""
        if new == "high" != old and tag == "intent":    # (a first value too)
            self.counts["intent entries into high"][uid] += 1
        if old is None or new is None:
            return
        self.counts[f"{tag} changes"][uid] += 1
        if tag == "intent":
            pair = "high <-> medium" if "high" in (old, new) else "medium <-> low"
            self.counts[f"intent {pair}"][uid] += 1

    def alert(self, uid: str, kind: str) -> None:
        self.counts[f"{kind} alerts"][uid] += 1

    def row(self, metric: str) -> str:
        """``total by N users (>=2: a, >=3: b, >=6: c, max m)``: users with that many."""
        v = list(self.counts[metric].values())
        return (f"{sum(v)} by {len(v)} users (>=2: {sum(x >= 2 for x in v)}, "
                f">=3: {sum(x >= 3 for x in v)}, >=6: {sum(x >= 6 for x in v)}, "
                f"max {max(v, default=0)})")

    METRICS = ("intent changes", "intent high <-> medium", "intent medium <-> low",
               "intent entries into high", "hot_lead alerts", "at_risk changes",
               "at_risk alerts")


def events(users: int, days: int, seed: int, live: bool) -> list[Event]:
    """The simulator's events: its default story (tests/unit/scoring/test_fast_path), or
    the live-mode one of the at-risk alert test (a lesson every day)."""
    if live:
        from tests.unit.alerts.test_at_risk_alert_agree import _sim_events  # noqa: PLC0415
    else:
        from tests.unit.scoring.test_fast_path import _sim_events  # noqa: PLC0415
    return _sim_events(users=users, days=days, seed=seed)


def churn(users: int = 1000, days: int = 45, seed: int = 7, live: bool = False,
          rules: Path | None = None) -> Churn:
    """Replay the simulator and count (``rules``: a rule set other than config/rules)."""
    from tests.unit.alerts.live_replay import LiveReplay  # noqa: PLC0415

    lr = LiveReplay(unlimited=("hot_lead", "at_risk"))
    if rules is not None:
        from stream_app.rules.loader import load_ruleset  # noqa: PLC0415
        lr.engine.ruleset = load_ruleset(rules)
    out = Churn()
    eng = lr.engine

    def counting(step):  # noqa: ANN001, ANN202 - wraps one of the engine's steps
        def run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            r = step(*args, **kwargs)
            for c in r.changes:
                if c["tag_id"] in ("intent", "at_risk"):
                    out.change(c["user_id"], c["tag_id"], c["old"], c["new"])
            return r
        return run
    for name in ("on_event", "on_tick", "on_scores"):   # score updates change tags too
        setattr(eng, name, counting(getattr(eng, name)))
    for s in lr.steps(events(users, days, seed, live)):
        for a in s.alerts:
            out.alert(a["user_id"], a["kind"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--days", type=int, default=45)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--live", action="store_true",
                    help="the at-risk alert test's simulator story (a lesson every day)")
    ap.add_argument("--rules", type=Path, default=None)
    a = ap.parse_args()
    c = churn(a.users, a.days, a.seed, a.live, a.rules)
    for m in Churn.METRICS:
        print(f"{m:26} {c.row(m)}")


if __name__ == "__main__":
    main()
