"""Engine cost: CPU µs per event of ``TagEngine.on_event`` with full evaluation (every rule on
every event, ``TagEngine(full=True)``) against selective evaluation (only the rules an event
can change), in-process over the seeded simulator workload, measured in the same run.

The events go through the engine in workload (event-time) order, one state per user, as the
worker does. Every ``--sweep-min`` minutes of event time the users that are due
(``TagEngine.due``) get a clock tick, as the sweep timer sends them; ticks are timed apart.
The two modes alternate (``--rounds`` each), so machine load affects both alike; the run ends
with a check that both gave the same tag changes and final states.

Usage::

    python -m bench.engine_cost                      # 50k simulated users, first 60k events
    python -m bench.engine_cost --events 200000 --rounds 3 --json var/bench/engine.json
    # before/after: this tree against another revision, in lockstep (see lockstep())
    git archive <rev> stream_app bench config topics | tar -x -C /tmp/base
    python -m bench.engine_cost --against /tmp/base
    python -m bench.engine_cost --against /tmp/base --no-gc   # no collector pauses
    python -m bench.engine_cost --by-type --no-gc     # on_event's CPU by event type
    # as the worker runs it: each state decoded before and encoded after its step (timed),
    # over the 225k-record workload; every step's state bytes compared
    python -m bench.engine_cost --against /tmp/base --no-gc --codec \
        --workload var/bench/workload-u50000-s42-225000.pkl --events 225000

Example (a tiny run):
    >>> from bench.workload import build
    >>> res = run(build(users=30, seed=3, days=2), events=200, rounds=1)
    >>> res["same_result"], res["selective"]["changes"] == res["full"]["changes"]
    (True, True)
    >>> from stream_app.config import REPO_ROOT
    >>> ls = lockstep(build(users=30, seed=3, days=2), REPO_ROOT, events=200)
    >>> ls["same_result"], ls["this"]["changes"] == ls["other"]["changes"] > 0
    (True, True)
    >>> lc = lockstep(build(users=30, seed=3, days=2), REPO_ROOT, events=200, codec=True)
    >>> lc["same_result"], lc["codec"], lc["this"]["changes"] == ls["this"]["changes"]
    (True, True, True)
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from bench.trees import other_tree
from stream_app.contract import load_contract
from stream_app.events import parse_event
from stream_app.rules.engine import DEFAULT_RULES, TagEngine
from stream_app.rules.loader import load_ruleset

VAR = Path(__file__).resolve().parent.parent / "var" / "bench"


def _events(records: list, limit: int) -> list:
    contract = load_contract()
    out = []
    for topic, _, value, _ in records[:limit]:
        out.append(parse_event(value, contract.stream_of(topic)))
    return out


def _one_pass(engine: TagEngine, events: list, sweep_ms: int) -> dict[str, Any]:
    """Run every event (and the sweep's ticks) through ``engine``; CPU seconds of each."""
    states: dict[str, Any] = {}
    changes = ticks = 0
    ev_cpu = tick_cpu = 0.0
    next_sweep = None
    on_event, on_tick, due = engine.on_event, engine.on_tick, engine.due
    clock = time.process_time
    for ev in events:
        if next_sweep is None:
            next_sweep = ev.ts + sweep_ms
        elif ev.ts >= next_sweep:
            now = ev.ts
            t0 = clock()
            for uid, st in list(states.items()):
                if due(st, now):
                    r = on_tick(st, now)
                    ticks += 1
                    changes += len(r.changes)
                    if r.state is None:
                        del states[uid]
                    else:
                        states[uid] = r.state
            tick_cpu += clock() - t0
            next_sweep = now + sweep_ms
        t0 = clock()
        r = on_event(states.get(ev.user_id), ev)
        ev_cpu += clock() - t0
        changes += len(r.changes)
        if r.state is None:
            states.pop(ev.user_id, None)
        else:
            states[ev.user_id] = r.state
    return {"event_cpu_s": ev_cpu, "tick_cpu_s": tick_cpu, "ticks": ticks,
            "changes": changes, "states": states}


def run(wl: Any, events: int = 60_000, rounds: int = 2, sweep_min: float = 60.0
        ) -> dict[str, Any]:
    """Measure both modes over the first ``events`` events of ``wl``."""
    evs = _events(wl.records, events)
    ruleset = load_ruleset(DEFAULT_RULES)
    sweep_ms = int(sweep_min * 60_000)
    per: dict[str, list[dict[str, Any]]] = {"full": [], "selective": []}
    last: dict[str, dict[str, Any]] = {}
    for _ in range(rounds):
        for mode in ("full", "selective"):
            res = _one_pass(TagEngine(ruleset, full=mode == "full"), evs, sweep_ms)
            per[mode].append(res)
            last[mode] = res
    same = (orjson.dumps(last["full"]["states"], option=orjson.OPT_SORT_KEYS)
            == orjson.dumps(last["selective"]["states"], option=orjson.OPT_SORT_KEYS)
            and last["full"]["changes"] == last["selective"]["changes"])
    days = (evs[-1].ts - evs[0].ts) / 86_400_000 if evs else 0.0
    out: dict[str, Any] = {"events": len(evs), "users": len(last["full"]["states"]),
                           "event_time_days": round(days, 2), "rounds": rounds,
                           "same_result": same}
    for mode, runs in per.items():
        us = [r["event_cpu_s"] / len(evs) * 1e6 for r in runs]
        tick_us = [r["tick_cpu_s"] / r["ticks"] * 1e6 for r in runs if r["ticks"]]
        out[mode] = {"us_per_event": [round(x, 1) for x in us],
                     "us_per_event_median": round(statistics.median(us), 1),
                     "ticks": runs[-1]["ticks"],
                     "us_per_tick_median": round(statistics.median(tick_us), 1)
                     if tick_us else None,
                     "changes": runs[-1]["changes"]}
    out["ratio_full_over_selective"] = round(
        out["full"]["us_per_event_median"] / out["selective"]["us_per_event_median"], 2)
    return out


def _load_tree(root: Path) -> tuple[type, Any]:
    """``(TagEngine, default rule set)`` of the stream_app tree under ``root``, imported
    apart from this process's own (:func:`bench.trees.other_tree`)."""
    with other_tree(root):
        engine = importlib.import_module("stream_app.rules.engine")
        loader = importlib.import_module("stream_app.rules.loader")
        return engine.TagEngine, loader.load_ruleset(engine.DEFAULT_RULES)


def _layout_only(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    """State keys that only one tree's states ever hold (a layout change between the trees,
    e.g. a cache the newer engine keeps): left out of the state comparison.

    >>> _layout_only({"u": {"v": 1, "tg": []}}, {"u": {"v": 1}, "w": {"v": 2}})
    {'tg'}
    """
    ka = set().union(*(st.keys() for st in a.values())) if a else set()
    kb = set().union(*(st.keys() for st in b.values())) if b else set()
    return ka ^ kb


def _without(states: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    if not keys:
        return states
    return {u: {k: v for k, v in st.items() if k not in keys} for u, st in states.items()}


def _digest(h: Any, r: Any) -> None:
    """Fold a step's output (changes with their why records, derived events) into ``h``
    (outside the timed part: the two trees must give the same bytes, key order included)."""
    h.update(orjson.dumps([r.changes, r.why, r.emit, r.duplicate]))


def lockstep(wl: Any, other: Path, events: int = 60_000, sweep_min: float = 60.0,
             full: bool = False, codec: bool = False) -> dict[str, Any]:
    """This tree's engine against the one under ``other`` (e.g. an older revision), in one
    process: every event and every sweep's ticks go through both back to back (who goes
    first alternates), each timed in CPU time, so machine load hits both alike. Returns
    µs/event and µs/tick of both and whether both gave the same output (every change record,
    why record and derived event, byte for byte) and final states.

    ``codec``: keep each state as orjson bytes between steps, as the worker does
    (``load_state`` decodes it, ``store_state`` encodes the new one), with the decode and
    encode inside the timed part; every step's state bytes are then compared too (exactly,
    key order included), and the final states byte for byte.
    """
    if codec:
        return _lockstep_codec(wl, other, events, sweep_min, full)
    evs = _events(wl.records, events)
    pairs = [_load_tree(other), (TagEngine, load_ruleset(DEFAULT_RULES))]
    engines = [cls(rs, full=full) for cls, rs in pairs]
    states: list[dict[str, Any]] = [{}, {}]
    ev_s, tick_s, changes = [0.0, 0.0], [0.0, 0.0], [0, 0]
    digests = [hashlib.blake2b(), hashlib.blake2b()]   # every change, why and derived event
    ticks = 0
    sweep_ms = int(sweep_min * 60_000)
    clock = time.process_time
    next_sweep = None
    for ev in evs:
        if next_sweep is None:
            next_sweep = ev.ts + sweep_ms
        elif ev.ts >= next_sweep:
            now = ev.ts
            for i in ((0, 1) if next_sweep % 2 else (1, 0)):   # who ticks first alternates
                eng, sts = engines[i], states[i]
                t0 = clock()
                for uid, st in list(sts.items()):
                    if eng.due(st, now):
                        r = eng.on_tick(st, now)
                        ticks += i
                        changes[i] += len(r.changes)
                        _digest(digests[i], r)
                        if r.state is None:
                            del sts[uid]
                        else:
                            sts[uid] = r.state
                tick_s[i] += clock() - t0
            next_sweep = now + sweep_ms
        for i in ((0, 1) if ev.ts % 2 else (1, 0)):
            t0 = clock()
            r = engines[i].on_event(states[i].get(ev.user_id), ev)
            ev_s[i] += clock() - t0
            changes[i] += len(r.changes)
            _digest(digests[i], r)
            if r.state is None:
                states[i].pop(ev.user_id, None)
            else:
                states[i][ev.user_id] = r.state
    only = _layout_only(states[0], states[1])
    same = changes[0] == changes[1] and digests[0].digest() == digests[1].digest() and (
        orjson.dumps(_without(states[0], only), option=orjson.OPT_SORT_KEYS)
        == orjson.dumps(_without(states[1], only), option=orjson.OPT_SORT_KEYS))
    n = len(evs)
    out: dict[str, Any] = {"events": n, "ticks": ticks, "mode": "full" if full else "selective",
                           "same_result": same, "state_keys_of_one_layout": sorted(only)}
    return _timings(out, ev_s, tick_s, changes, n, ticks)


def _timings(out: dict[str, Any], ev_s: list[float], tick_s: list[float], changes: list[int],
             n: int, ticks: int) -> dict[str, Any]:
    """``out`` with each tree's CPU µs per event and per tick (2 decimals: a change worth a
    few tenths of a µs shows), its change count, and the ratio of the two per-event times
    (3 decimals).

    >>> _timings({}, [2.0, 1.0], [0.0, 0.0], [5, 5], 1_000_000, 0)["ratio_other_over_this"]
    2.0
    """
    for i, name in enumerate(("other", "this")):
        out[name] = {"us_per_event": round(ev_s[i] / n * 1e6, 2),
                     "us_per_tick": round(tick_s[i] / ticks * 1e6, 2) if ticks else None,
                     "changes": changes[i]}
    out["ratio_other_over_this"] = round(ev_s[0] / ev_s[1], 3) if ev_s[1] else None
    return out


def _lockstep_codec(wl: Any, other: Path, events: int, sweep_min: float, full: bool
                    ) -> dict[str, Any]:
    """:func:`lockstep` with each state stored as orjson bytes between steps (decode, step,
    encode timed together, as the worker's ``load_state`` / ``on_event`` / ``store_state``);
    every step's output and new state bytes go into the compared digest."""
    evs = _events(wl.records, events)
    pairs = [_load_tree(other), (TagEngine, load_ruleset(DEFAULT_RULES))]
    engines = [cls(rs, full=full) for cls, rs in pairs]
    stored: list[dict[str, bytes]] = [{}, {}]
    due_at: list[dict[str, int]] = [{}, {}]    # user -> the state's "nd"
    ev_s, tick_s, changes = [0.0, 0.0], [0.0, 0.0], [0, 0]
    digests = [hashlib.blake2b(), hashlib.blake2b()]
    ticks = 0
    sweep_ms = int(sweep_min * 60_000)
    clock, loads, dumps = time.process_time, orjson.loads, orjson.dumps
    next_sweep = None
    for ev in evs:
        if next_sweep is None:
            next_sweep = ev.ts + sweep_ms
        elif ev.ts >= next_sweep:
            now = ev.ts
            for i in ((0, 1) if next_sweep % 2 else (1, 0)):   # who ticks first alternates
                eng, sts = engines[i], stored[i]
                t0 = clock()
                for uid, nd in list(due_at[i].items()):   # the worker's due index
                    if now >= nd:
                        r = eng.on_tick(loads(sts[uid]), now)
                        ticks += i
                        changes[i] += len(r.changes)
                        if r.state is None:
                            del sts[uid], due_at[i][uid]
                        else:
                            sts[uid] = dumps(r.state)
                            due_at[i][uid] = r.state["nd"]
                        _digest(digests[i], r)
                tick_s[i] += clock() - t0
            next_sweep = now + sweep_ms
        uid = ev.user_id
        for i in ((0, 1) if ev.ts % 2 else (1, 0)):
            sts = stored[i]
            t0 = clock()
            raw = sts.get(uid)
            r = engines[i].on_event(loads(raw) if raw else None, ev)
            new = None if r.state is None else dumps(r.state)
            ev_s[i] += clock() - t0
            changes[i] += len(r.changes)
            _digest(digests[i], r)
            if new is None:
                sts.pop(uid, None)
                due_at[i].pop(uid, None)
            else:
                sts[uid] = new
                due_at[i][uid] = r.state["nd"]
                digests[i].update(new)
    same = (changes[0] == changes[1] and digests[0].digest() == digests[1].digest()
            and stored[0] == stored[1])
    n = len(evs)
    out: dict[str, Any] = {"events": n, "ticks": ticks, "mode": "full" if full else "selective",
                           "codec": True, "same_result": same, "state_keys_of_one_layout": []}
    return _timings(out, ev_s, tick_s, changes, n, ticks)


def by_type(wl: Any, events: int = 60_000) -> list[dict[str, Any]]:
    """Where ``on_event``'s CPU goes, by event type (selective evaluation, one pass): count,
    µs per event, share of the total, and of that the state update (``StateUpdater.apply``)
    and the rest (guards, rule pass, horizon). Timed per call (``perf_counter``, a wrapper
    around ``apply``): a breakdown to find the largest share, not an A/B figure.

    >>> from bench.workload import build
    >>> rows = by_type(build(users=30, seed=3, days=2), events=200)
    >>> round(sum(r["share"] for r in rows), 6), {"type", "n", "us", "apply_us"} <= set(rows[0])
    (1.0, True)
    """
    evs = _events(wl.records, events)
    engine = TagEngine(load_ruleset(DEFAULT_RULES))
    updater = engine._updater
    apply, clock = updater.apply, time.perf_counter
    cur = [""]
    apply_s: dict[str, float] = {}

    def timed_apply(*args: Any) -> None:
        t0 = clock()
        apply(*args)
        apply_s[cur[0]] = apply_s.get(cur[0], 0.0) + clock() - t0
    updater.apply = timed_apply   # this engine's own updater only
    total: dict[str, float] = {}
    count: dict[str, int] = {}
    states: dict[str, Any] = {}
    for ev in evs:
        cur[0] = et = ev.type
        t0 = clock()
        r = engine.on_event(states.get(ev.user_id), ev)
        total[et] = total.get(et, 0.0) + clock() - t0
        count[et] = count.get(et, 0) + 1
        if r.state is None:
            states.pop(ev.user_id, None)
        else:
            states[ev.user_id] = r.state
    whole = sum(total.values()) or 1.0
    return [{"type": et, "n": count[et], "us": round(s / count[et] * 1e6, 1),
             "share": s / whole, "apply_us": round(apply_s.get(et, 0.0) / count[et] * 1e6, 1),
             "rest_us": round((s - apply_s.get(et, 0.0)) / count[et] * 1e6, 1)}
            for et, s in sorted(total.items(), key=lambda kv: -kv[1])]


def main(argv: list[str] | None = None) -> None:
    from bench.workload import build, cached  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m bench.engine_cost", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--sweep-min", type=float, default=60.0,
                   help="minutes of event time between sweeps (ticks of due users)")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    p.add_argument("--against", type=Path, default=None, metavar="DIR",
                   help="compare with the stream_app tree under DIR in lockstep instead")
    p.add_argument("--full", action="store_true", help="with --against: full evaluation")
    p.add_argument("--codec", action="store_true",
                   help="with --against: keep states as orjson bytes between steps and time "
                        "the decode and encode with the step, as the worker does; compares "
                        "every step's state bytes")
    p.add_argument("--workload", type=Path, default=None, metavar="PKL",
                   help="a pickled bench.workload instead of the cached simulator run, e.g. "
                        "var/bench/workload-u50000-s42-225000.pkl (--events caps it)")
    p.add_argument("--by-type", action="store_true",
                   help="instead: on_event's CPU by event type (count, µs, share; the state "
                        "update apart), to see which share to cut first")
    p.add_argument("--no-gc", action="store_true",
                   help="measure with the cyclic garbage collector off: a collection (the "
                        "older generations walk every state) is charged to whichever engine "
                        "runs when it triggers, so in lockstep it blurs the comparison by a "
                        "few percent either way")
    args = p.parse_args(argv)
    path = VAR / f"engine-workload-u{args.users}-s{args.seed}-{args.events}.pkl"
    if args.workload is not None:
        wl = cached(args.workload, lambda: build(args.users, args.seed, max_events=args.events))
    else:
        wl = cached(path, lambda: build(args.users, args.seed, max_events=args.events))
    if args.no_gc:
        gc.collect()
        gc.disable()
    if args.by_type:
        rows = by_type(wl, events=args.events)
        print(f"{'type':<22}{'events':>8}{'µs/event':>10}{'share':>8}{'apply µs':>10}"
              f"{'rest µs':>9}")
        for r in rows:
            print(f"{r['type']:<22}{r['n']:>8,}{r['us']:>10}{r['share']:>8.1%}"
                  f"{r['apply_us']:>10}{r['rest_us']:>9}")
        return
    if args.against:
        res = lockstep(wl, args.against, events=args.events, sweep_min=args.sweep_min,
                       full=args.full, codec=args.codec)
        what = " with state decode/encode" if res.get("codec") else ""
        print(f"{res['mode']} on_event{what}, lockstep over {res['events']:,} events: "
              f"{args.against} {res['other']['us_per_event']} CPU µs/event, this tree "
              f"{res['this']['us_per_event']} ({res['ratio_other_over_this']}x); "
              f"{res['ticks']:,} ticks at {res['other']['us_per_tick']} / "
              f"{res['this']['us_per_tick']} µs; same changes and states: {res['same_result']}"
              + (f" (state keys of one layout only, not compared: "
                 f"{res['state_keys_of_one_layout']})" if res["state_keys_of_one_layout"]
                 else ""))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))
        return
    res = run(wl, events=args.events, rounds=args.rounds, sweep_min=args.sweep_min)
    print(f"engine cost over {res['events']:,} events of {res['users']:,} users "
          f"({res['event_time_days']} days of event time), {res['rounds']} rounds each:")
    for mode in ("full", "selective"):
        m = res[mode]
        print(f"  {mode:<9} on_event {m['us_per_event_median']:7.1f} CPU µs/event "
              f"(rounds: {', '.join(map(str, m['us_per_event']))}); "
              f"{m['ticks']:,} ticks at {m['us_per_tick_median']} µs; "
              f"{m['changes']:,} tag changes")
    print(f"  full / selective = {res['ratio_full_over_selective']}x; "
          f"same changes and states: {res['same_result']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
