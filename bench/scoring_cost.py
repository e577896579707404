"""Scoring cost: CPU µs per event of the worker's scoring work, in-process over the seeded
simulator workload, this tree against another stream_app tree (lockstep, then alternating
timed passes), or this tree alone split into its parts.

What one event costs the worker for scoring (``score_event`` and ``publish_scoring`` in
``stream_app/app/agents.py``, the scorer's part of ``load_state`` / ``store_state``):

* ``decode`` / ``encode``: orjson of the user's scoring state (``state["sc"]``), which the
  worker decodes and encodes on every event as part of the whole state;
* ``on_event``: :meth:`Scorer.on_event` (features update, rule points, scores, alerts,
  snapshots, training pairs), given the user's rule tags as the agent passes them;
* ``publish``: the scores rounded to 0.01, the Redis score fields and the alert and
  training-pair records encoded (what ``publish_scoring`` sends), without Kafka or Redis.

The engine's ``on_scores`` (called by ``score_event`` when a rounded score moved) is the
tag engine's cost and is not timed here; it runs in the preparation pass, which gives each
event the rule tags the agent would pass (``state["tags"]`` after the engine's step).
Ticks are not replayed. Regimes: ``rules`` (every gate closed, as in the pipeline
benchmark) or ``model`` (gates forced open on models trained on the first events).

The lockstep runs every event through both trees' scorers, each on its own states decoded
from its own bytes, and compares per event the scores, layers, sources, alerts, checkpoint
records, training pairs, rounded scores and the encoded scoring state, byte for byte.

Usage::

    git archive <rev> stream_app bench config topics | tar -x -C /tmp/base
    python -m bench.scoring_cost --against /tmp/base                 # first 60k events
    python -m bench.scoring_cost --against /tmp/base --regime model --rounds 7
    python -m bench.scoring_cost --against /tmp/base --rounds 9 --step-clock cpu
    python -m bench.scoring_cost --parts                             # where the µs go

Example (a tiny run, this tree against itself):
    >>> from bench.workload import build
    >>> from stream_app.config import REPO_ROOT
    >>> res = compare(build(users=30, seed=3, days=2), REPO_ROOT, events=300, rounds=1)
    >>> res["same_result"], res["events"] > 0, res["differences"]
    (True, True, 0)
    >>> p = parts(build(users=30, seed=3, days=2), events=300)
    >>> sorted(p["us_per_event"])
    ['decode', 'encode', 'on_event', 'publish']
"""

from __future__ import annotations

import argparse
import gc
import importlib
import random
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

from bench.trees import other_tree
from stream_app.contract import load_contract
from stream_app.events import parse_event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset
from stream_app.security.pii import protect_event_props
from stream_app.serving import keys

VAR = Path(__file__).resolve().parent.parent / "var" / "bench"
#: a fixed PII key, so that every run hashes alike whatever the environment says
KEY = b"scoring-cost-key"
#: an item whose user's state the worker deletes (a deletion, or an engine step to None)
DROP = object()
TRAIN_EVENTS = 5_000


def _tree(root: Path | None) -> SimpleNamespace:
    """The scoring classes of the tree under ``root`` (None: this process's own)."""
    names = ("stream_app.scoring.scorer", "stream_app.scoring.registry",
             "stream_app.scoring.config", "stream_app.scoring.points",
             "stream_app.alerts.policy")   # (the Scorer imports its policy inside a call)
    if root is None:
        mods = [importlib.import_module(n) for n in names]
    else:
        with other_tree(root):
            mods = [importlib.import_module(n) for n in names]
    scorer, registry, config, points, policy = mods
    round_fixed = points.round_fixed
    # the agent's rounding to 0.01: the tree's own points.round_scores, or (before it
    # existed) what agents.round_scores did
    round_scores = getattr(points, "round_scores", None) or (
        lambda scores: {t: round_fixed(v, 1e2, 2) for t, v in scores.items()})
    return SimpleNamespace(Scorer=scorer.Scorer, ModelRegistry=registry.ModelRegistry,
                           AlertPolicy=policy.AlertPolicy, cfg=config.load_scoring_config(),
                           round_scores=round_scores)


def _scorer(tree: SimpleNamespace, blobs: dict[str, bytes] | None) -> Any:
    """A fresh Scorer of ``tree`` (its default alert policy); ``blobs``: models to load with
    their gates forced open (the ``model`` regime), None: every target on its rules."""
    reg = tree.ModelRegistry(tree.cfg)
    for t, blob in (blobs or {}).items():
        reg.load(t, blob)
        reg._gates[t].load_pairs([], True)   # noqa: SLF001 - bench: force the gate open
    return tree.Scorer(tree.cfg, reg, alert_policy=tree.AlertPolicy.from_config(tree.cfg))


def _train(events: list) -> dict[str, bytes]:
    """Model blobs trained on the features of ``events`` with seeded random labels."""
    from stream_app.scoring.config import load_scoring_config  # noqa: PLC0415
    from stream_app.scoring.features import featurize, new_state, update  # noqa: PLC0415
    from stream_app.scoring.registry import ModelRegistry  # noqa: PLC0415

    cfg = load_scoring_config()
    reg = ModelRegistry(cfg)
    rng = random.Random(3)
    states: dict[str, Any] = {}
    for ev in events:
        if ev.stream == "label":
            continue
        st = states.get(ev.user_id)
        if st is None:
            st = states[ev.user_id] = new_state()
        update(st, ev, cfg.features)
        x = featurize(st, ev.ts, cfg.features)
        for t in reg.targets:
            reg.learn(t, x, int(rng.random() < 0.2), gate=False)
    return {t: reg.snapshot(t) for t in reg.targets}


def prepare(wl: Any, events: int, blobs: dict[str, bytes] | None = None,
            stats: dict[str, Any] | None = None) -> list[tuple]:
    """``(event, rule tags)`` of every event the worker scores, in workload order, with the
    tags the agent passes (the engine's ``state["tags"]`` after its step, on_scores fed by
    this tree's scorer); ``(event, DROP)`` where the worker deletes the user's state.
    ``stats`` (optional) gets the engine's ``on_scores`` calls and their CPU seconds."""
    contract = load_contract()
    engine = TagEngine(load_ruleset(DEFAULT_RULES))
    tree = _tree(None)
    scorer = _scorer(tree, blobs)
    states: dict[str, Any] = {}
    items: list[tuple] = []
    for topic, _, value, _ in wl.records[:events]:
        try:
            ev = protect_event_props(parse_event(value, contract.stream_of(topic)), KEY)
        except Exception:  # noqa: BLE001, S112 - a dead letter: never scored
            continue
        if ev.type == "deletion_requested":
            if states.pop(ev.user_id, None) is not None:
                items.append((ev, DROP))
            continue
        r = engine.on_event(states.get(ev.user_id), ev)
        if r.duplicate:
            continue
        if r.state is None:
            states.pop(ev.user_id, None)
            items.append((ev, DROP))
            continue
        st = states[ev.user_id] = r.state
        tags = st.get("tags")
        items.append((ev, dict(tags) if tags is not None else None))
        step = scorer.on_event(st.get("sc"), ev, rule_tags=tags)
        st["sc"] = step.sc_state
        if step.scores:
            rounded = tree.round_scores(step.scores)
            if rounded != st.get("scores"):
                t0 = time.process_time()
                engine.on_scores(st, rounded, ev.ts)
                if stats is not None:
                    stats["on_scores_calls"] = stats.get("on_scores_calls", 0) + 1
                    stats["on_scores_cpu_s"] = (stats.get("on_scores_cpu_s", 0.0)
                                                + time.process_time() - t0)
    return items


def publish(step: Any, uid: str, round_scores: Any) -> dict[str, Any] | None:
    """What ``score_event`` + ``publish_scoring`` compute for one step, without Kafka or
    Redis: the records encoded, the scores rounded, the Redis score fields built."""
    dumps = orjson.dumps
    for alert in step.alerts:
        dumps(alert)
    for ex in step.training:
        dumps({"target": ex.target, "x": ex.x, "y": ex.y, "ts": ex.ts, "user_id": uid,
               "gate": ex.gate})
    if not step.scores:
        return None
    return keys.score_fields(round_scores(step.scores), step.layers, step.source)


def _outputs(step: Any, fields: Any) -> bytes:
    """Everything one step gives, as bytes (key order included)."""
    return orjson.dumps([step.scores, step.layers, step.source, step.alerts, step.checkpoints,
                         [[t.target, t.x, t.y, t.ts, t.user_id, t.gate] for t in step.training],
                         fields])


def lockstep(items: list[tuple], trees: list[SimpleNamespace],
             blobs: dict[str, bytes] | None) -> dict[str, Any]:
    """Both trees' scorers over ``items``, each on its own encoded states; per event the
    outputs and the encoded state compared. Returns counts and the first difference."""
    scorers = [_scorer(t, blobs) for t in trees]
    stores: list[dict[str, bytes]] = [{}, {}]
    diffs = 0
    first = None
    n_alerts = n_training = n_checkpoints = 0
    for k, (ev, tags) in enumerate(items):
        if tags is DROP:
            for s in stores:
                s.pop(ev.user_id, None)
            continue
        got = []
        for i in (0, 1):
            raw = stores[i].get(ev.user_id)
            step = scorers[i].on_event(orjson.loads(raw) if raw else None, ev, rule_tags=tags)
            fields = publish(step, ev.user_id, trees[i].round_scores)
            stores[i][ev.user_id] = enc = orjson.dumps(step.sc_state)
            got.append((_outputs(step, fields), enc))
        n_alerts += len(step.alerts)
        n_training += len(step.training)
        n_checkpoints += len(step.checkpoints)
        if got[0] != got[1]:
            diffs += 1
            if first is None:
                first = {"index": k, "event": ev.to_dict(), "other": [g.decode() for g in got[0]],
                         "this": [g.decode() for g in got[1]]}
    return {"differences": diffs, "first_difference": first, "alerts": n_alerts,
            "training": n_training, "checkpoints": n_checkpoints}


#: the clocks ``timed_pass`` may read around each ``on_event``: wall time (cheap to read, but
#: counts the time the process waits for a core) or the process's CPU time (a system call per
#: read, blind to the other processes on a shared machine)
STEP_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed_pass(tree: SimpleNamespace, items: list[tuple],
               blobs: dict[str, bytes] | None, step_clock: str = "wall",
               ) -> tuple[float, float]:
    """CPU µs per scored event of one pass (decode, on_event, publish, encode), collector
    off, a fresh scorer and fresh states; and the µs of ``on_event`` alone in it (read on
    ``STEP_CLOCKS[step_clock]`` around each call)."""
    scorer = _scorer(tree, blobs)
    on_event, rs = scorer.on_event, tree.round_scores
    loads, dumps = orjson.loads, orjson.dumps
    wall = STEP_CLOCKS[step_clock]
    store: dict[str, bytes] = {}
    n = 0
    in_step = 0.0
    gc.collect()
    gc.disable()
    t0 = time.process_time()
    for ev, tags in items:
        uid = ev.user_id
        if tags is DROP:
            store.pop(uid, None)
            continue
        raw = store.get(uid)
        st = loads(raw) if raw else None
        w0 = wall()
        step = on_event(st, ev, rule_tags=tags)
        in_step += wall() - w0
        publish(step, uid, rs)
        store[uid] = dumps(step.sc_state)
        n += 1
    dt = time.process_time() - t0
    gc.enable()
    return dt / max(n, 1) * 1e6, in_step / max(n, 1) * 1e6


def compare(wl: Any, other: Path, events: int = 60_000, rounds: int = 5,
            regime: str = "rules", step_clock: str = "wall") -> dict[str, Any]:
    """This tree against the one under ``other``: lockstep equality, then alternating
    timed passes (who goes first alternates); ``step_clock``: see :func:`timed_pass`."""
    blobs = _train(_parsed(wl, min(events, TRAIN_EVENTS))) if regime == "model" else None
    items = prepare(wl, events, blobs)
    trees = [_tree(other), _tree(None)]
    ls = lockstep(items, trees, blobs)
    us: dict[str, list[float]] = {"other": [], "this": []}
    step_us: dict[str, list[float]] = {"other": [], "this": []}
    for r in range(rounds):
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            whole, step = timed_pass(trees[i], items, blobs, step_clock)
            us[("other", "this")[i]].append(round(whole, 3))
            step_us[("other", "this")[i]].append(round(step, 3))
    ratios = [o / t for o, t in zip(us["other"], us["this"], strict=True)]
    step_ratios = [o / t for o, t in zip(step_us["other"], step_us["this"], strict=True)]
    return {"events": sum(1 for _, t in items if t is not DROP), "regime": regime,
            "same_result": ls["differences"] == 0, **ls, "rounds": rounds,
            "us_per_event": us, "ratio_other_over_this": [round(x, 3) for x in ratios],
            "ratio_median": round(statistics.median(ratios), 3) if ratios else None,
            "on_event_us": step_us, "step_clock": step_clock,
            "on_event_ratio_median": round(statistics.median(step_ratios), 3)
            if step_ratios else None}


def parts(wl: Any, events: int = 60_000, rounds: int = 3,
          regime: str = "rules") -> dict[str, Any]:
    """This tree's scoring work split into decode / on_event / publish / encode (µs per
    scored event, ``perf_counter`` around each part, median of ``rounds`` passes): a
    breakdown to see the largest share, not an A/B figure."""
    blobs = _train(_parsed(wl, min(events, TRAIN_EVENTS))) if regime == "model" else None
    stats: dict[str, Any] = {}
    items = prepare(wl, events, blobs, stats)
    tree = _tree(None)
    by_key: dict[str, int] = {}
    runs: dict[str, list[float]] = {"decode": [], "on_event": [], "publish": [], "encode": []}
    sizes: list[int] = []
    for _ in range(rounds):
        scorer = _scorer(tree, blobs)
        store: dict[str, bytes] = {}
        acc = dict.fromkeys(runs, 0.0)
        clock = time.perf_counter
        n = 0
        gc.collect()
        gc.disable()
        for ev, tags in items:
            uid = ev.user_id
            if tags is DROP:
                store.pop(uid, None)
                continue
            t0 = clock()
            raw = store.get(uid)
            st = orjson.loads(raw) if raw else None
            t1 = clock()
            step = scorer.on_event(st, ev, rule_tags=tags)
            t2 = clock()
            publish(step, uid, tree.round_scores)
            t3 = clock()
            store[uid] = orjson.dumps(step.sc_state)
            t4 = clock()
            acc["decode"] += t1 - t0
            acc["on_event"] += t2 - t1
            acc["publish"] += t3 - t2
            acc["encode"] += t4 - t3
            n += 1
        gc.enable()
        for k, v in acc.items():
            runs[k].append(v / max(n, 1) * 1e6)
        sizes = [len(v) for v in store.values()]
    for raw in store.values():      # the final states: bytes per top-level key
        for k, v in orjson.loads(raw).items():
            by_key[k] = by_key.get(k, 0) + len(orjson.dumps(v)) + len(k) + 4
    calls = stats.get("on_scores_calls", 0)
    return {"events": n, "regime": regime, "rounds": rounds,
            "us_per_event": {k: round(statistics.median(v), 2) for k, v in runs.items()},
            "state_bytes_mean": round(statistics.mean(sizes), 1) if sizes else 0,
            "state_bytes_by_key": {k: round(v / max(len(store), 1), 1) for k, v in
                                   sorted(by_key.items(), key=lambda kv: -kv[1])},
            "engine_on_scores": {"calls": calls, "us_per_call": round(
                stats.get("on_scores_cpu_s", 0.0) / max(calls, 1) * 1e6, 1),
                "us_per_scored_event": round(stats.get("on_scores_cpu_s", 0.0)
                                             / max(n, 1) * 1e6, 2)}}


def _parsed(wl: Any, events: int) -> list:
    contract = load_contract()
    out = []
    for topic, _, value, _ in wl.records[:events]:
        try:
            out.append(parse_event(value, contract.stream_of(topic)))
        except Exception:  # noqa: BLE001, S112 - dead letters are not scored
            continue
    return out


def main(argv: list[str] | None = None) -> None:
    from bench.workload import build, cached  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m bench.scoring_cost", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--against", type=Path, default=None, metavar="DIR",
                   help="the stream_app tree to compare with (e.g. an older revision)")
    p.add_argument("--parts", action="store_true", help="this tree's cost split into parts")
    p.add_argument("--regime", choices=("rules", "model"), default="rules")
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--step-clock", choices=sorted(STEP_CLOCKS), default="wall",
                   help="the clock read around each on_event call (cpu: the process's CPU "
                        "time, steadier on a shared machine)")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args(argv)
    path = VAR / f"workload-u{args.users}-s{args.seed}-225000.pkl"
    wl = cached(path, lambda: build(args.users, args.seed, max_events=225_000))
    if args.parts or not args.against:
        res = parts(wl, events=args.events, rounds=args.rounds, regime=args.regime)
        us = res["us_per_event"]
        print(f"scoring parts over {res['events']:,} scored events ({res['regime']}), median "
              f"of {res['rounds']} passes, µs/event: "
              + ", ".join(f"{k} {v}" for k, v in us.items())
              + f"; total {round(sum(us.values()), 2)}; mean sc state {res['state_bytes_mean']} B")
        print("  sc state bytes per user by key (final states): " + ", ".join(
            f"{k} {v}" for k, v in list(res["state_bytes_by_key"].items())[:8]))
        o = res["engine_on_scores"]
        print(f"  not timed above: the engine's on_scores (score_event calls it when a rounded "
              f"score moved): {o['calls']:,} calls, {o['us_per_call']} CPU µs each, "
              f"{o['us_per_scored_event']} µs per scored event")
    else:
        res = compare(wl, args.against, events=args.events, rounds=args.rounds,
                      regime=args.regime, step_clock=args.step_clock)
        print(f"scoring over {res['events']:,} scored events ({res['regime']}): same outputs "
              f"and states: {res['same_result']} ({res['differences']} differences; "
              f"{res['alerts']} alerts, {res['training']} training pairs, "
              f"{res['checkpoints']} checkpoints)")
        if res["first_difference"]:
            print("  first difference:", orjson.dumps(res["first_difference"]).decode()[:2000])
        for name in ("other", "this"):
            per_round = " ".join(f"{x:6.2f}" for x in res["us_per_event"][name])
            print(f"  {name:<5} CPU µs/event {per_round}")
        print(f"  other/this   {' '.join(f'{x:6.2f}' for x in res['ratio_other_over_this'])}"
              f"   median {res['ratio_median']}x")
        print(f"  of which Scorer.on_event ({res['step_clock']} µs/event): other "
              + " ".join(f"{x:.2f}" for x in res["on_event_us"]["other"]) + ", this "
              + " ".join(f"{x:.2f}" for x in res["on_event_us"]["this"])
              + f"; median ratio {res['on_event_ratio_median']}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
