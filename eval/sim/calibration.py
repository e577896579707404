"""Calibration of the convert model on a simulator file (a measurement script, not part of
the package; docs/SCORING.md "Calibration").

    python eval/sim/calibration.py var/sim/sim20k.jsonl.gz var/calib/after.json
    python eval/sim/calibration.py var/sim/sim20k.jsonl.gz var/calib/raw.json raw
    python eval/sim/calibration.py var/sim/sim20k.jsonl.gz var/calib/at05.json --high 0.5

It replays the file as ``stream-app evaluate`` does (``evaluate_file``'s path) and, in the
second half of the time span, also scores every event of a lead that gets a convert label
later, against that label. It prints and writes (JSON) mean score, observed rate, Brier,
log loss, AUC, the share bought of scores >= 0.6 (as the rules read a score: to 0.01,
``gate.flagged``) and score deciles, for the gate's snapshots, the checkpoints and every
event, by events seen so far (1, 2-5, 6-20, >20). ``raw``: with ``calibration: {method:
none}`` (the model's own probability); ``--high T``: the share bought at ``T`` instead of 0.6.

Checkpoints and events count only up to the time every outcome could still be in the file
(QA41 F4): checkpoints up to their group's horizon (``evaluate.horizons``), events up to the
file's end minus the longest time from a lead's first event to its first convert label (14
days on the simulator). Near the end only the quick outcomes (orders) are in the file, so
the events and checkpoints there that have a label are mostly buyers'.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import replace

import numpy as np

from stream_app.scoring.config import CalibrationConfig, load_scoring_config
from stream_app.scoring.evaluate import closed, horizons, label_delays, read_events, replay
from stream_app.scoring.gate import flagged
from stream_app.scoring.metrics import log_loss, roc_auc
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer

path, out = sys.argv[1], sys.argv[2]
RAW = "raw" in sys.argv[3:]
HIGH = float(sys.argv[sys.argv.index("--high") + 1]) if "--high" in sys.argv else 0.6

# pass 1: outcomes per user, the time span and the users' first events
outcomes: dict[str, list[tuple[int, int]]] = defaultdict(list)
first: dict[str, int] = {}
lo = hi = None
for ev in read_events(path):
    lo = ev.ts if lo is None else lo
    hi = ev.ts
    first.setdefault(ev.user_id, ev.ts)
    if ev.type == "outcome" and ev.props.get("target") == "convert":
        outcomes[ev.user_id].append((ev.ts, int(bool(ev.props["value"]))))
    elif ev.type == "order_paid":
        outcomes[ev.user_id].append((ev.ts, 1))
for v in outcomes.values():
    v.sort()
cut = lo + 0.5 * (hi - lo)
# the longest a lead's first event waits for its first label: an event after end - that may
# have an outcome still to come
EVENT_DELAY = max(v[0][0] - first[u] for u, v in outcomes.items())
event_horizon = hi - EVENT_DELAY

cfg = load_scoring_config()
if RAW:
    cfg = replace(cfg, targets={n: replace(t, calibration=CalibrationConfig())
                                for n, t in cfg.targets.items()})
reg = ModelRegistry(cfg)
sc = Scorer(cfg, reg, alert_policy=None, score_events=False, targets=["convert"])
seen: dict[str, int] = defaultdict(int)
cp_seen: dict[tuple[str, int], int] = {}
per_event: list[tuple[float, int, int]] = []   # (p, y, n events seen)
nat = [0, 0]


def on_step(ev, step) -> None:  # noqa: ANN001
    uid = ev.user_id
    for ex in step.training:
        nat[ex.y] += 1
    if ev.stream == "label":
        if ev.type == "checkpoint":
            cp_seen[(uid, ev.ts)] = seen[uid]
        return
    if ev.stream == "feedback" or ev.type in cfg.features.exclude_types:
        return
    seen[uid] += 1
    if ev.ts < cut or ev.ts > event_horizon or reg._learned["convert"] == 0:  # noqa: SLF001
        return
    y = next((v for t, v in outcomes.get(uid, ()) if t > ev.ts), None)
    if y is None:
        return
    st = step.sc_state
    p = reg.predict("convert", sc.features(st, ev.ts))
    per_event.append((p, y, seen[uid]))


run = replay(read_events(path), sc, on_step=on_step)
cps = [c for c in run["checkpoints"] if c["score"] is not None]
horizon = horizons(label_delays(cps, {c["group"] for c in cps}), hi)
censored = sum(1 for c in cps if not closed(c, horizon))
cps = [c for c in cps if closed(c, horizon)]
pairs = run["pairs"]


def bucket(n: int) -> str:
    return "1" if n <= 1 else "2-5" if n <= 5 else "6-20" if n <= 20 else ">20"


def report(p, y, high=HIGH) -> dict:
    p, y = np.asarray(p, float), np.asarray(y, int)
    if not len(y):
        return {}
    qs = np.quantile(p, np.linspace(0, 1, 11))
    idx = np.clip(np.searchsorted(qs, p, side="right") - 1, 0, 9)
    dec = []
    for b in range(10):
        m = idx == b
        if m.sum():
            dec.append([b + 1, int(m.sum()), round(float(p[m].mean()), 3),
                        round(float(y[m].mean()), 3)])
    hit = np.fromiter((flagged(v, high) for v in p.tolist()), dtype=bool, count=len(p))
    return {"n": int(len(y)), "pos_rate": round(float(y.mean()), 4),
            "mean_p": round(float(p.mean()), 4),
            "brier": round(float(((p - y) ** 2).mean()), 4),
            "log_loss": round(log_loss(p, y), 4),
            "auc": None if roc_auc(p, y) is None else round(roc_auc(p, y), 4),
            "high_n": int(hit.sum()),
            "high_precision": round(float(y[hit].mean()), 4) if hit.sum() else None,
            "high_recall": round(float(hit[y == 1].mean()), 4) if (y == 1).sum() else None,
            "deciles": dec}


res = {"file": path, "high": HIGH, "events": run["events"], "labels": len(pairs),
       "horizons": {"checkpoints": horizon, "censored_checkpoints_resolved": censored,
                    "event_delay_days": round(EVENT_DELAY / 86_400_000, 3),
                    "events_to": event_horizon},
       "natural_examples": {"pos": nat[1], "neg": nat[0],
                            "pos_share": round(nat[1] / max(1, sum(nat)), 4)},
       "gate": reg.gate("convert").to_dict(),
       "calibrator": reg.calibration("convert"),
       "prequential_all": report([q[1] for q in pairs], [q[2] for q in pairs]),
       "prequential_late": report([q[1] for q in pairs if q[3] >= cut],
                                  [q[2] for q in pairs if q[3] >= cut])}
late = [c for c in cps if c["ts"] >= cut]
res["checkpoints_late"] = report([c["score"] for c in late], [c["y"] for c in late])
by: dict[str, list] = defaultdict(list)
for c in late:
    by[bucket(cp_seen.get((c["user_id"], c["ts"]), 0))].append(c)
res["checkpoints_late_by_events"] = {k: report([c["score"] for c in v], [c["y"] for c in v])
                                     for k, v in sorted(by.items())}
res["per_event_late"] = report([e[0] for e in per_event], [e[1] for e in per_event])
bye: dict[str, list] = defaultdict(list)
for e in per_event:
    bye[bucket(e[2])].append(e)
res["per_event_late_by_events"] = {k: report([e[0] for e in v], [e[1] for e in v])
                                   for k, v in sorted(bye.items())}
with open(out, "w") as f:
    json.dump(res, f, indent=1)


def short(name: str, r: dict) -> None:
    if not r:
        return
    print(f"{name:28s} n={r['n']:7d} pos={r['pos_rate']:.3f} mean_p={r['mean_p']:.3f} "
          f"brier={r['brier']:.4f} logloss={r['log_loss']:.4f} auc={r['auc']} "
          f"high(>={HIGH}) n={r['high_n']} prec={r['high_precision']} rec={r['high_recall']}")


print("natural", res["natural_examples"], "gate", {k: res["gate"][k] for k in
      ("open", "precision", "recall", "positive_rate", "learned")})
print(f"second half up to the horizons: checkpoints per group to the end minus its label "
      f"delay ({censored} resolved ones after it left out), events to the end minus "
      f"{EVENT_DELAY / 86_400_000:.1f} days")
short("prequential all", res["prequential_all"])
short("prequential late", res["prequential_late"])
short("checkpoints late", res["checkpoints_late"])
for k, r in res["checkpoints_late_by_events"].items():
    short(f"  cp events {k}", r)
short("per-event late", res["per_event_late"])
for k, r in res["per_event_late_by_events"].items():
    short(f"  ev events {k}", r)
for name in ("prequential_late", "per_event_late"):
    print(name, "deciles [k, n, mean_p, observed]:", res[name]["deciles"])
