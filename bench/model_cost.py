"""Model cost: microseconds per event of feature building, scoring, learning and the whole
Scorer step, measured in-process on the workload's events; and ``stream-app evaluate``'s
events/s (the offline replay through the same Scorer).

``scorer_step_cpu_us``: CPU µs per event of ``Scorer.on_event`` (labels included) in two
regimes, every target on its rule points (gates closed, as at start-up and in the pipeline
benchmark) and every target on its model (gates forced open on a model trained on the first
events), each with the per-event shortcuts on (``fast``, the default) and off (``reference``:
features built for every event, River's own predict), alternated over a few rounds in one
process; the median round is kept. CPU time, not wall time: the machine is shared.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from stream_app.contract import load_contract
from stream_app.events import parse_event


def _events(records: list, limit: int) -> list:
    contract = load_contract()
    return [parse_event(v, contract.stream_of(t)) for t, _, v, _ in records[:limit]]


def run(wl: Any, workdir: Path, quick: bool = True) -> dict[str, Any]:
    from stream_app.scoring.config import load_scoring_config  # noqa: PLC0415
    from stream_app.scoring.evaluate import evaluate_file  # noqa: PLC0415
    from stream_app.scoring.features import featurize, new_state, update  # noqa: PLC0415
    from stream_app.scoring.registry import ModelRegistry  # noqa: PLC0415
    from stream_app.scoring.scorer import Scorer  # noqa: PLC0415

    n = 30_000 if quick else 200_000
    events = [e for e in _events(wl.records, n) if e.stream != "label"]
    cfg = load_scoring_config()
    fc = cfg.features
    states: dict[str, Any] = {}
    xs = []
    t0 = time.perf_counter()
    for ev in events:
        st = states.get(ev.user_id)
        if st is None:
            st = states[ev.user_id] = new_state()
        update(st, ev, fc)
        xs.append(featurize(st, ev.ts, fc))
    feat_us = (time.perf_counter() - t0) / len(events) * 1e6
    reg = ModelRegistry(cfg)
    targets = list(reg.targets)
    rng = random.Random(3)
    ys = [rng.random() < 0.2 for _ in xs]
    t0 = time.perf_counter()
    for x, y in zip(xs, ys, strict=True):
        for t in targets:
            reg.learn(t, x, int(y), gate=False)
    learn_us = (time.perf_counter() - t0) / len(xs) * 1e6
    t0 = time.perf_counter()
    for x in xs:
        for t in targets:
            reg.predict(t, x)
    score_us = (time.perf_counter() - t0) / len(xs) * 1e6
    river = ModelRegistry(cfg, fast_predict=False)
    for t in targets:
        river.load(t, reg.snapshot(t))
    t0 = time.perf_counter()
    for x in xs:
        for t in targets:
            river.predict(t, x)
    river_us = (time.perf_counter() - t0) / len(xs) * 1e6
    step_cpu = scorer_step_cpu(cfg, _events(wl.records, n), reg, rounds=1 if quick else 3)
    scorer = Scorer(cfg, ModelRegistry(cfg))
    sc: dict[str, Any] = {}
    t0 = time.perf_counter()
    for ev in events:
        sc[ev.user_id] = scorer.on_event(sc.get(ev.user_id), ev).sc_state
    step_us = (time.perf_counter() - t0) / len(events) * 1e6
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "evaluate.jsonl"
    m = 100_000 if quick else len(wl.records)
    with path.open("wb") as f:
        for _, _, v, _ in wl.records[:m]:
            f.write(v + b"\n")
    res = evaluate_file(path, "convert", config=cfg)
    res.pop("_registry", None)
    return {
        "events": len(events), "targets": targets,
        "features_us": round(feat_us, 1),
        "score_us_all_targets": round(score_us, 1),
        "score_us_all_targets_river": round(river_us, 1),
        "learn_us_all_targets": round(learn_us, 1),
        "scorer_step_us": round(step_us, 1),
        "scorer_step_cpu_us": step_cpu,
        "evaluate": {"events": res["events"], "events_per_s": res["events_per_s"],
                     "seconds": res["seconds"]},
    }


def scorer_step_cpu(cfg: Any, events: list, trained: Any, rounds: int = 3,
                    ) -> dict[str, dict[str, float]]:
    """CPU µs per event of ``Scorer.on_event`` over ``events``: ``{"rules"|"model":
    {"fast"|"reference": µs}}``; ``trained``: a registry whose models the model regime uses
    (its gates are forced open on copies)."""
    from stream_app.scoring.registry import ModelRegistry  # noqa: PLC0415
    from stream_app.scoring.scorer import Scorer  # noqa: PLC0415

    def registry(models: bool, fast: bool) -> Any:
        reg = ModelRegistry(cfg, fast_predict=fast)
        if models:
            for t in reg.targets:
                reg.load(t, trained.snapshot(t))
                reg._gates[t].load_pairs([], True)   # noqa: SLF001 - bench: force the gate open
        return reg

    runs: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for regime in ("rules", "model"):
            for mode in ("reference", "fast"):
                fast = mode == "fast"
                sc = Scorer(cfg, registry(regime == "model", fast), lazy_features=fast)
                states: dict[str, Any] = {}
                t0 = time.process_time()
                for ev in events:
                    states[ev.user_id] = sc.on_event(states.get(ev.user_id), ev).sc_state
                cpu = (time.process_time() - t0) / len(events) * 1e6
                runs.setdefault((regime, mode), []).append(cpu)
    out: dict[str, dict[str, float]] = {}
    for (regime, mode), v in runs.items():
        out.setdefault(regime, {})[mode] = round(statistics.median(v), 1)
    return out


if __name__ == "__main__":  # quick look: python -m bench.model_cost
    from bench.workload import build

    print(orjson.dumps(run(build(3000, 1, days=10), Path("var/bench/model")),
                       option=orjson.OPT_INDENT_2).decode())
