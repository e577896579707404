"""on_scores cost: CPU µs of ``TagEngine.on_scores`` as the worker calls it, this tree against
another stream_app tree, in lockstep over the seeded simulator workload.

The worker's ``score_event`` (``stream_app/app/agents.py``) runs the scorer after the
engine's ``on_event`` and, when the scores rounded to 0.01 differ from ``state["scores"]``,
calls ``engine.on_scores(state, rounded, ev.ts)``. This replays the workload that way on
both trees at once: each tree has its own engine, scorer (this tree's) and states; per event
the two go back to back (who goes first alternates), and only ``on_scores`` is timed
(``time.process_time``, the collector off). Every ``on_scores`` result is compared
between the trees, byte for byte: the change records (every field), why records, derived
events, ``duplicate``, whether the state returned is the one passed, and the state after the
call (``orjson.dumps``, key order included); so is every ``on_event`` step.

Usage::

    git archive 42c7498 stream_app bench config topics | tar -x -C /tmp/base
    python -m bench.onscores_cost --against /tmp/base                  # first 60k events
    python -m bench.onscores_cost --against /tmp/base --events 225000 --rounds 3
    python -m bench.onscores_cost --against /tmp/base --codec   # states as bytes in between

Example (a tiny run, this tree against itself):
    >>> from bench.workload import build
    >>> from stream_app.config import REPO_ROOT
    >>> res = lockstep(build(users=30, seed=3, days=2), REPO_ROOT, events=300, rounds=1)
    >>> res["same_result"], res["calls"] > 0, res["differences"]
    (True, True, 0)
    >>> lockstep(build(users=30, seed=3, days=2), REPO_ROOT, events=300, rounds=1,
    ...          codec=True)["calls"] == res["calls"]
    True
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from bench.engine_cost import _load_tree
from bench.scoring_cost import KEY, _scorer, _tree
from stream_app.contract import load_contract
from stream_app.events import parse_event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset
from stream_app.security.pii import protect_event_props

VAR = Path(__file__).resolve().parent.parent / "var" / "bench"


def _events(wl: Any, limit: int) -> list:
    """The workload's first ``limit`` records as the worker's events (dead letters left
    out), PII props protected with a fixed key."""
    contract = load_contract()
    out = []
    for topic, _, value, _ in wl.records[:limit]:
        try:
            out.append(protect_event_props(parse_event(value, contract.stream_of(topic)), KEY))
        except Exception:  # noqa: BLE001, S112 - a dead letter: never reaches the engine
            continue
    return out


def _step(engine: Any, scorer: Any, round_scores: Any, states: dict[str, Any], ev: Any,
          codec: bool = False) -> tuple[bytes, bytes | None, float]:
    """One event as the worker runs it (``on_event``, the scorer, ``on_scores`` when a
    rounded score moved): the step's output bytes, the ``on_scores`` output bytes (None: not
    called) and its CPU seconds. ``codec``: ``states`` holds each user's state as orjson
    bytes, decoded before the step and encoded after it (as the worker's ``load_state`` /
    ``store_state``; not timed), and the step's output ends with the stored bytes."""
    uid = ev.user_id
    if ev.type == "deletion_requested":
        states.pop(uid, None)
        return b"deleted", None, 0.0
    old = states.get(uid)
    r = engine.on_event(orjson.loads(old) if codec and old else old, ev)
    out = orjson.dumps([r.changes, r.why, r.emit, r.duplicate])
    if r.duplicate:
        return out, None, 0.0
    st = r.state
    if st is None:
        states.pop(uid, None)
        return out, None, 0.0
    got = None
    dt = 0.0
    step = scorer.on_event(st.get("sc"), ev, rule_tags=st.get("tags"))
    st["sc"] = step.sc_state
    if step.scores:
        rounded = round_scores(step.scores)
        if rounded != st.get("scores"):
            clock = time.process_time
            t0 = clock()
            x = engine.on_scores(st, rounded, ev.ts)
            dt = clock() - t0
            got = (orjson.dumps([x.changes, x.why, x.emit, x.duplicate, x.state is st])
                   + orjson.dumps(st))
    if codec:
        states[uid] = enc = orjson.dumps(st)
        out += enc
    else:
        states[uid] = st
    return out, got, dt


def lockstep(wl: Any, other: Path, events: int = 60_000, rounds: int = 3,
             codec: bool = False) -> dict[str, Any]:
    """This tree's ``on_scores`` against the one under ``other``, ``rounds`` replays of the
    first ``events`` records (see the module docstring; ``codec``: states kept as orjson
    bytes between events, see :func:`_step`). Returns the calls, the differences (with the
    first one), and per round the CPU µs per call and per event of both."""
    evs = _events(wl, events)
    classes = [_load_tree(other), (TagEngine, load_ruleset(DEFAULT_RULES))]
    tree = _tree(None)
    per_call: dict[str, list[float]] = {"other": [], "this": []}
    per_event: dict[str, list[float]] = {"other": [], "this": []}
    calls = diffs = 0
    first = None
    for _ in range(rounds):
        engines = [cls(rs) for cls, rs in classes]
        scorers = [_scorer(tree, None), _scorer(tree, None)]
        states: list[dict[str, Any]] = [{}, {}]
        cpu = [0.0, 0.0]
        calls = diffs = 0
        gc.collect()
        gc.disable()
        for k, ev in enumerate(evs):
            got: list[Any] = [None, None]
            for i in ((0, 1) if k % 2 else (1, 0)):
                out, sc, dt = _step(engines[i], scorers[i], tree.round_scores, states[i], ev,
                                    codec)
                cpu[i] += dt
                got[i] = (out, sc)
            calls += got[1][1] is not None
            if got[0] != got[1]:
                diffs += 1
                if first is None:
                    first = {"index": k, "event": ev.to_dict(),
                             "other": [g and g.decode()[:3000] for g in got[0]],
                             "this": [g and g.decode()[:3000] for g in got[1]]}
        gc.enable()
        for i, name in enumerate(("other", "this")):
            per_call[name].append(round(cpu[i] / max(calls, 1) * 1e6, 3))
            per_event[name].append(round(cpu[i] / max(len(evs), 1) * 1e6, 3))
    med = {n: (statistics.median(per_call[n]), statistics.median(per_event[n]))
           for n in per_call}
    return {"events": len(evs), "calls": calls, "rounds": rounds, "codec": codec,
            "differences": diffs,
            "same_result": diffs == 0, "first_difference": first,
            "us_per_call": per_call, "us_per_event": per_event,
            "median_us_per_call": {n: round(v[0], 2) for n, v in med.items()},
            "median_us_per_event": {n: round(v[1], 3) for n, v in med.items()},
            "ratio_other_over_this": round(med["other"][0] / med["this"][0], 2)
            if med["this"][0] else None}


def main(argv: list[str] | None = None) -> None:
    from bench.workload import build, cached  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m bench.onscores_cost",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--against", type=Path, required=True, metavar="DIR",
                   help="the stream_app tree to compare with (e.g. an older revision)")
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--codec", action="store_true",
                   help="keep each state as orjson bytes between events, as the worker's "
                        "table does (decoded before the step, encoded after; not timed); "
                        "compares the stored bytes after every event too")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args(argv)
    path = VAR / f"workload-u{args.users}-s{args.seed}-225000.pkl"
    wl = cached(path, lambda: build(args.users, args.seed, max_events=225_000))
    res = lockstep(wl, args.against, events=args.events, rounds=args.rounds, codec=args.codec)
    print(f"on_scores{' (states as bytes)' if res['codec'] else ''} over {res['events']:,} "
          f"events ({res['calls']:,} calls), "
          f"{res['rounds']} rounds: same outputs and states: {res['same_result']} "
          f"({res['differences']} differences)")
    if res["first_difference"]:
        print("  first difference:", orjson.dumps(res["first_difference"]).decode()[:4000])
    for name in ("other", "this"):
        print(f"  {name:<5} CPU µs/call  " + " ".join(f"{x:6.2f}" for x in
                                                    res["us_per_call"][name])
              + f"   median {res['median_us_per_call'][name]}; µs/event "
              + " ".join(f"{x:.3f}" for x in res["us_per_event"][name])
              + f"   median {res['median_us_per_event'][name]}")
    print(f"  other/this (median µs per call): {res['ratio_other_over_this']}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
