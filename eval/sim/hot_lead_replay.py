"""Hot-lead alerts and the share of "high" leads that buy, in an in-process live replay (a
measurement script, not part of the package; docs/SCORING.md "Calibration").

    PYTHONPATH=. python eval/sim/hot_lead_replay.py var/calib/sim5k60.jsonl.gz
    PYTHONPATH=. python eval/sim/hot_lead_replay.py var/calib/sim5k60.jsonl.gz --raw
    PYTHONPATH=. python eval/sim/hot_lead_replay.py FILE --rules DIR --threshold 0.5

The rule engine applies each event, the scorer runs beside it, a sweep ticks due users and
a trainer publishes models to the worker (``tests/unit/alerts/live_replay.py``), with the
shipped gates. ``--raw``: ``calibration: {method: none}``; ``--rules``: another rule set
(e.g. a copy of config/rules with another ``intent_high_score``); ``--threshold``: the
convert ``alert_threshold`` (where the gate measures; equal to ``intent_high_score``).
A lead "paid later" if its first ``order_paid`` comes at or after the alert / entry. The
second-half shares count the alerts and entries up to the file's end minus the longest time
from a lead's first event to its first convert label (14 days on the simulator: a lead that
does not buy in that time never does), so that every lead counted had the time to pay
inside the file (QA41 F4: an alert in the last days was counted unpaid for want of time).
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import replace

from stream_app.alerts.policy import AlertPolicy
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset
from stream_app.scoring.config import CalibrationConfig, load_scoring_config
from stream_app.scoring.evaluate import read_events
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer
from tests.unit.alerts.live_replay import LiveReplay

ap = argparse.ArgumentParser()
ap.add_argument("file")
ap.add_argument("--raw", action="store_true")
ap.add_argument("--rules", default=str(DEFAULT_RULES))
ap.add_argument("--threshold", type=float)
args = ap.parse_args()

events = [e for e in read_events(args.file) if e.type != "deletion_requested"]
paid: dict[str, int] = {}
first: dict[str, int] = {}
label: dict[str, int] = {}
for e in events:
    first.setdefault(e.user_id, e.ts)
    if e.type == "order_paid" and e.user_id not in paid:
        paid[e.user_id] = e.ts
    if e.type == "order_paid" or (e.type == "outcome" and e.props.get("target") == "convert"):
        label.setdefault(e.user_id, e.ts)
mid = events[0].ts + (events[-1].ts - events[0].ts) // 2
DELAY = max(t - first[u] for u, t in label.items())
end = events[-1].ts - DELAY      # (an alert after this may be paid after the file's end)

cfg = load_scoring_config()
if args.raw:
    cfg = replace(cfg, targets={n: replace(t, calibration=CalibrationConfig())
                                for n, t in cfg.targets.items()})
if args.threshold is not None:
    cfg = replace(cfg, targets={**cfg.targets, "convert": replace(
        cfg.targets["convert"], alert_threshold=args.threshold)})
lr = LiveReplay()
lr.cfg = cfg
lr.policy = AlertPolicy.from_config(cfg)
lr.trainer = ModelRegistry(cfg, fast_predict=False)
lr.worker = ModelRegistry(cfg)
lr.scorer = Scorer(cfg, lr.worker, alert_policy=lr.policy)
rs = load_ruleset(args.rules)
lr.engine = TagEngine(rs)

alerts: Counter = Counter()
alerted: list[tuple[str, int]] = []
entries: list[tuple[str, int, str]] = []     # a lead's intent entering high: (user, ts, basis)
for s in lr.steps(events):
    tags = s.state.get("tags") or {}
    if tags.get("intent") == "high" and (s.before or {}).get("intent") != "high" \
            and not (s.uid in paid and paid[s.uid] < s.ts):       # a lead, not a customer
        src = s.scoring.source.get("convert") if s.scoring else "tick"
        by_points = (tags.get("lead_points") or 0) >= rs.params["intent_high_points"]
        entries.append((s.uid, s.ts, "points" if by_points
                        else "model" if src != "rules" else "other"))
    for a in s.alerts:
        if a["kind"] == "hot_lead":
            alerts[(a.get("basis"), tuple(a["triggers"]))] += 1
            alerted.append((s.uid, s.ts))


def bought(pairs: list[tuple[str, int]]) -> str:
    pairs = [(u, t) for u, t in pairs if t <= end]
    n = len(pairs)
    k = sum(1 for u, t in pairs if u in paid and paid[u] >= t)
    return f"{n}, paid later {k / n:.1%}" if n else "0"


print(f"{args.file} calibration={'none' if args.raw else 'prior_shift'} "
      f"intent_high_score={rs.params['intent_high_score']}")
print("gate", {k: v for k, v in lr.trainer.gate("convert").to_dict().items()
               if k in ("open", "precision", "recall", "learned", "threshold")})
print("calibration", lr.trainer.calibration("convert"))
print("hot-lead alerts", sum(alerts.values()), dict(alerts))
print(f"second half: from mid-run to the end minus {DELAY / 86_400_000:.1f} days")
print("hot-lead alerts in the second half:", bought([p for p in alerted if p[1] >= mid]))
for basis in ("points", "model", "other"):
    print(f"leads entering high ({basis}) in the second half:",
          bought([(u, t) for u, t, b in entries if b == basis and t >= mid]))
print("leads entering high (all) in the second half:",
      bought([(u, t) for u, t, _ in entries if t >= mid]))
