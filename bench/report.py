"""The report: targets checked, ``bench/RESULTS.md`` (tables with ratios) and PNG plots.

Example:
    >>> res = {"date": "d", "mode": "quick", "command": "c", "seconds": 1, "errors": {},
    ...        "machine": {"cpus": 2}, "workload": {"events_per_phase": 10},
    ...        "passthrough": {"eps": 1000}, "stream_app_1w": {"eps": 600},
    ...        "quix": {"eps": 1000}}
    >>> [(t["target"][:28], t["met"]) for t in targets(res)][:2]
    [('1 worker >= 50% of pass-thro', True), ('1 worker >= 50% of Quix Stre', True)]
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any


def _get(res: dict, *path: str) -> Any:
    cur: Any = res
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def _ratio(a: Any, b: Any) -> float | None:
    return float(f"{a / b:.3g}") if a is not None and b else None


def ratios(res: dict) -> dict[str, float | None]:
    one = _get(res, "stream_app_1w", "eps")
    return {
        "stream-app / ceiling (consume)": _ratio(one, _get(res, "ceiling", "consume_eps")),
        "stream-app / pass-through": _ratio(one, _get(res, "passthrough", "eps")),
        "stream-app / Quix Streams counting": _ratio(one, _get(res, "quix", "eps")),
        "2 workers / 1 worker": _ratio(_get(res, "stream_app_2w", "eps"), one),
        "pass-through / ceiling (consume)": _ratio(_get(res, "passthrough", "eps"),
                                                   _get(res, "ceiling", "consume_eps")),
        "stream-app / pass-through, by CPU per event": _ratio(
            _get(res, "passthrough", "cpu_us_per_event"),
            _get(res, "stream_app_1w", "cpu_us_per_event")),
        "stream-app / Quix Streams, by CPU per event": _ratio(
            _get(res, "quix", "cpu_us_per_event"),
            _get(res, "stream_app_1w", "cpu_us_per_event")),
    }


def _seg_p99(res: dict, what: str = "size_ms") -> float | None:
    """The worst p99 over the measured expressions of ``size_ms`` or ``first_page_ms``."""
    segs = _get(res, "serving", "segments") or {}
    vals = [s[what]["p99"] for s in segs.values() if s.get(what)]
    return max(vals) if vals else None


def _received(x: dict) -> str:
    """``p50 / p99`` of a latency series' receipt times, or ``-`` (older results, broker).

    >>> _received({"visible": {"p50": 30.0, "p99": 61.5}}), _received({})
    ('30 / 61.5', '-')
    """
    v = x.get("visible")
    return f"{_fmt(v.get('p50'))} / {_fmt(v.get('p99'))}" if v else "-"


def targets(res: dict) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it is met (None: not measured)."""
    r = ratios(res)
    lat50 = _get(res, "latency", "loads", "50") or {}
    broker = _get(lat50, "broker", "p99")
    live = _get(lat50, "stream_app_realtime", "p99")
    replay = _get(lat50, "stream_app_replay")
    ceil = res.get("two_worker_ceiling") or {}
    rounds = res.get("ratio_rounds") or {}
    several = (rounds.get("rounds") or 0) >= 2
    rows: list[tuple[str, Any, Any, str | None]] = [
        ("1 worker >= 50% of pass-through",
         rounds["median"] if several else r["stream-app / pass-through"], 0.5, ">="),
    ]
    if several:
        each = ", ".join(_fmt(x) for x in rounds["ratios"])
        rows.append((f"(reference) the target above is the median of {rounds['rounds']} "
                     f"alternating rounds of this run: {each}"
                     f" (met in {rounds['met']} of {rounds['rounds']}); value: round 1 alone "
                     f"(the passthrough and pipeline phases)",
                     r["stream-app / pass-through"], 0.5, "ref>="))
    rows += [
        ("1 worker >= 50% of Quix Streams counting", r["stream-app / Quix Streams counting"],
         0.5, ">="),
        ("2 workers >= 1.6 x 1 worker", r["2 workers / 1 worker"], 1.6, ">="),
    ]
    ones = [p["stream_app_1w"]["eps"] for p in rounds.get("pairs") or []
            if _get(p, "stream_app_1w", "eps")]
    two = _get(res, "stream_app_2w", "eps")
    if several and two and len(ones) >= 2:
        # the target's one worker is round 1's; a slow (or fast) first round moves it
        rows.append((f"(reference) the same against the median one-worker round of the "
                     f"alternating rounds ({', '.join(f'{x:,}' for x in ones)} events/s)",
                     _ratio(two, statistics.median(ones)), 1.6, "ref>="))
    if ceil:
        rows += [
            (f"(reference) CPU-bound ceiling of 2 workers / 1 worker on these "
             f"{ceil.get('cores')} cores: can 1.6 be reached here at all?",
             ceil.get("ratio_bound"), 1.6, "ref>="),
            ("(reference) measured 2 workers / 1 worker as a share of that ceiling",
             ceil.get("measured_share_of_bound"), None, None),
        ]
    if live is not None:
        fresh = _get(res, "latency", "broker") == "fresh"
        layout = (_get(res, "latency", "broker_layouts") or [None])[0]
        rows.append(("p99 at 50% load <= 2 x broker-alone p99 (real-time: event time = "
                     "produce time" + ("; fresh broker, warmed-up worker" if fresh else "")
                     + ("; broker alone on the input topics' layout" if layout == "inputs"
                        else "") + ")",
                     _ratio(live, broker), 2.0, "<="))
    else:  # results from before the two modes: one measurement, judged as it was
        rows.append(("p99 at 50% load <= 2 x broker-alone p99",
                     _ratio(_get(lat50, "stream_app", "p99"), broker), 2.0, "<="))
    pairs = [x["ratio"] for x in lat50.get("pairs") or () if x.get("ratio") is not None]
    if pairs:
        met = sum(r <= 2.0 for r in pairs)
        rows.append((f"(reference) the same per block pair, each real-time block against the "
                     f"broker-alone block just before it: {', '.join(_fmt(r) for r in pairs)} "
                     f"(within 2x in {met} of {len(pairs)}); value: the median",
                     round(statistics.median(pairs), 2), 2.0, "ref<="))
    for layout in ("one", "inputs"):
        other = _get(lat50, f"broker_{layout}", "p99")
        if live is not None and other is not None:
            rows.append((f"(reference) the same against the broker alone with "
                         f"{_LAYOUT_NOTE[layout]} (measured right after it)",
                         _ratio(live, other), 2.0, "ref<="))
    visible = _get(lat50, "stream_app_realtime", "visible", "p99")
    if visible is not None:
        rows.append(("(reference) the same to the outputs' receipt by a consumer (like the "
                     "broker-alone figure: producer linger and fetch hold included)",
                     _ratio(visible, broker), 2.0, "ref<="))
    passthrough = _get(lat50, "passthrough_realtime", "p99")
    if passthrough is not None:
        rows.append(("(reference) the same for the Faust pass-through (an agent that only "
                     "decodes and forwards) at the same rate", _ratio(passthrough, broker),
                     2.0, "ref<="))
    if replay:
        rows.append((f"(reference) the same with event time replayed "
                     f"~{_fmt(replay.get('event_time_speedup'))} x faster than wall time",
                     _ratio(replay.get("p99"), broker), 2.0, "ref<="))
    rows += [
        ("recovery of the state users < 10 s (restart to processing)",
         _get(res, "recovery", "restart_processing_s"), 10.0, "<"),
        ("table restore alone < 10 s (Faust recovery log)",
         _get(res, "recovery", "state_restore_s"), 10.0, "<"),
        ("Redis < 1 KB per user (default settings)",
         _get(res, "redis_layout", "default", "used_memory_per_user")
         or _get(res, "recovery", "memory", "redis_bytes_per_user"), 1024, "<"),
        ("segment query p99 < 50 ms (worst expression, size)", _seg_p99(res), 50.0, "<"),
        ("segment first page (100) p99 < 50 ms (worst expression)",
         _seg_p99(res, "first_page_ms"), 50.0, "<"),
        ("stream-app evaluate >= 20k events/s",
         _get(res, "model", "evaluate", "events_per_s"), 20_000, ">="),
    ]
    out = []
    for name, value, limit, op in rows:
        ref = op is None or op.startswith("ref")
        cmp = (op or "").removeprefix("ref")
        met = None if value is None or not cmp else {
            ">=": value >= limit, "<=": value <= limit, "<": value < limit}[cmp]
        out.append({"target": name, "value": value, "limit": limit, "op": cmp, "met": met,
                    "reference": ref})
    return out


def _met_cell(t: dict[str, Any], md: bool = True) -> str:
    """The "met" cell: a reference row (not a target of the issue) says what it shows.

    Example:
        >>> _met_cell({"met": False, "reference": True, "op": ">="})
        'reference: no'
        >>> _met_cell({"met": None, "reference": True, "op": ""})
        'reference'
        >>> _met_cell({"met": False, "reference": False}), _met_cell({"met": None})
        ('**no**', 'not measured')
    """
    if t.get("reference"):
        return "reference" if t["met"] is None else f"reference: {'yes' if t['met'] else 'no'}"
    if t["met"] is None:
        return "not measured"
    if md:
        return "yes" if t["met"] else "**no**"
    return "MET" if t["met"] else "NOT MET"


def _cpu_lines(res: dict) -> list[str]:
    """CPU µs per processed event of every process of the 1- and 2-worker runs (whole run,
    idle tail left out), the machine's idle share, and the 2-worker ceiling it implies.

    Example:
        >>> run = {"us_per_event": {"worker-1": 1300.0, "tansu": 400.0}, "idle_share": 0.1,
        ...        "outside_us_per_event": 50.0, "total_us_per_event": 1750.0,
        ...        "busy_cores": 1.8, "seconds": 30.0}
        >>> lines = _cpu_lines({"stream_app_1w": {"cpu": {"run": run, "steady": run}}})
        >>> print("\\n".join(lines[5:8]))
        | process | 1 worker, run | 1 worker, steady |
        |---|---:|---:|
        | worker-1 | 1,300 | 1,300 |
    """
    runs = [(n, _get(res, f"stream_app_{n}w", "cpu")) for n in (1, 2)]
    runs = [(n, c) for n, c in runs if c]
    if not runs:
        return []
    names: list[str] = []
    for _, c in runs:
        names += [k for k in c["run"]["us_per_event"] if k not in names]
    cols = [(n, w) for n, _ in runs for w in ("run", "steady")]
    lines = ["", "## CPU per processed event by process (µs; /proc, all threads and children)",
             "", "run: first record produced to last processed; steady: 5% to 95% of the "
             "events (the part the rate is measured on). outside: the machine's other busy "
             "time in the same window (other work on the shared cores), per event.", "",
             "| process | " + " | ".join(f"{n} worker{'s' if n > 1 else ''}, {w}"
                                        for n, w in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    c_of = dict(runs)

    def cell(n: int, w: str, *path: str) -> str:
        return _fmt(_get(c_of.get(n) or {}, w, *path))

    for name in names:
        lines.append(f"| {name} | " + " | ".join(cell(n, w, "us_per_event", name)
                                                 for n, w in cols) + " |")
    for label, key in (("outside the benchmark", "outside_us_per_event"),
                       ("**machine total**", "total_us_per_event"),
                       ("machine idle share", "idle_share"),
                       ("busy cores (of the machine's)", "busy_cores"),
                       ("window (s)", "seconds")):
        lines.append(f"| {label} | " + " | ".join(cell(n, w, key) for n, w in cols) + " |")
    for n, c in runs:
        done = c.get("to_caught_up")
        if done:
            lines += ["", f"{n} worker{'s' if n > 1 else ''}, until the group caught up "
                      f"({_fmt(done.get('seconds'))} s: the ticks and closed windows the "
                      "events left behind included), µs per event: "
                      + ", ".join(f"{k} {_fmt(v)}" for k, v in done["us_per_event"].items())
                      + f", outside {_fmt(done.get('outside_us_per_event'))}."]
        idle = c.get("idle_cores")
        if idle:
            lines += ["", f"With no input after the {n}-worker run "
                      f"({_fmt(idle.get('seconds'))} s: timers, fetch long-polls), cores "
                      "busy: " + ", ".join(f"{k} {_fmt(v)}" for k, v in idle.items()
                                           if k != "seconds") + "."]
    ceil = res.get("two_worker_ceiling")
    if ceil:
        lines += ["", f"2-worker ceiling: {ceil['cores']} cores x 1e6 / "
                  f"{_fmt(ceil['us_per_event_all'])} µs per event (the 2-worker steady "
                  f"machine total) = {_fmt(ceil['eps'])} events/s, i.e. at most "
                  f"**{_fmt(ceil['ratio_bound'])} x** the 1-worker rate "
                  f"({_fmt(ceil['ratio_bound_machine_alone'])} x with nothing else running: "
                  f"{_fmt(ceil['us_per_event_benchmark'])} µs per event of the benchmark's "
                  f"own processes; "
                  f"{_fmt(ceil.get('ratio_bound_formula_1w_costs'))} x if 2 workers cost per "
                  f"event what 1 does: 2 W / (W + O) with W = "
                  f"{_fmt(ceil.get('workers_us_per_event_1w'))}, O = "
                  f"{_fmt(ceil.get('others_us_per_event_1w'))} µs); measured "
                  f"{_fmt(ceil['measured_ratio'])} x = "
                  f"{_fmt(ceil['measured_share_of_bound'])} of the ceiling; machine idle "
                  f"share during the 2-worker run {_fmt(ceil['idle_share_2w'])}. One worker is "
                  "bounded by its main thread, two by the cores: the ratio is at most "
                  "2 W / (W + O) (W: worker µs per event, O: everything else)."]
    return lines


def _redis_layout_lines(lay: dict[str, Any]) -> list[str]:
    """The Redis bytes-per-user table: one column per measured variant (``default``/``lean``
    projection settings; older results: ``default``/``compact`` encodings).

    Example:
        >>> lay = {"default": {"users": 10, "bytes_per_user": {"user": 300.0, "why": 50.0},
        ...        "used_memory_per_user": 400}, "lean": {"bytes_per_user": {"user": 300.0},
        ...        "used_memory_per_user": 330}}
        >>> print("\\n".join(_redis_layout_lines(lay)[3:]))
        | key family | default | lean |
        |---|---:|---:|
        | user | 300 | 300 |
        | why | 50 | - |
        | **used_memory per user** | 400 | 330 |
    """
    names = [n for n in lay if isinstance(lay[n], dict) and "bytes_per_user" in lay[n]]
    fams: list[str] = []
    for n in names:
        fams += [f for f in lay[n]["bytes_per_user"] if f not in fams]
    first = lay[names[0]] if names else {}
    version = first.get("redis_version")
    lines = ["", f"## Redis bytes per user by key family ({_fmt(first.get('users'))} users "
             "projected from the tag engine's real changes"
             + (f", Redis {version}" if version else "") + ")", "",
             "| key family | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(names)]
    lines += [f"| {f} | " + " | ".join(_fmt(lay[n]["bytes_per_user"].get(f)) for n in names)
              + " |" for f in fams]
    lines.append("| **used_memory per user** | "
                 + " | ".join(_fmt(lay[n].get("used_memory_per_user")) for n in names) + " |")
    return lines


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) < 1:
            return f"{v:.3g}"
        return f"{v:,.2f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown(res: dict, plots: list[str]) -> str:
    w = res.get("workload", {})
    lines = [
        "# Benchmark results",
        "",
        f"Run `{res.get('command')}` ({res.get('mode')} mode) on {res.get('date')} UTC, "
        f"{_get(res, 'machine', 'cpus')} CPUs shared with other work; "
        f"{res.get('seconds')} s in all. Workload: seeded simulator, "
        f"{_fmt(w.get('simulated_users'))} simulated users; each throughput phase gets the "
        f"first {_fmt(w.get('events_per_phase'))} events "
        f"({_fmt(w.get('users_in_run'))} users, ~{w.get('mean_event_bytes')} bytes each), "
        f"{_get(res, 'settings', 'partitions')} partitions, fetch wait "
        f"{_get(res, 'settings', 'fetch_wait_ms')} ms. Raw figures: "
        f"`bench/results/{res.get('date')}.json`. Compare ratios within one run: the "
        "machine is shared and absolute rates move with its load.",
        "",
        "## Throughput (events/s, one process each)",
        "",
        "| system | events/s | CPU µs per event (all threads) |",
        "|---|---:|---:|",
    ]
    rows = [("confluent-kafka produce (ceiling)", "ceiling", "produce_eps"),
            ("confluent-kafka consume (ceiling)", "ceiling", "consume_eps"),
            ("Faust pass-through (decode + forward)", "passthrough", "eps"),
            ("Quix Streams: per-user count + 1 h tumbling count", "quix", "eps"),
            ("stream-app full pipeline, 1 worker", "stream_app_1w", "eps"),
            ("stream-app full pipeline, 2 workers", "stream_app_2w", "eps")]
    lines += [f"| {n} | {_fmt(_get(res, k, f))} | {_fmt(_get(res, k, 'cpu_us_per_event'))} |"
              for n, k, f in rows]
    lines += ["", "## Ratios", "", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in ratios(res).items()]
    lines += _cpu_lines(res)
    loads = _get(res, "latency", "loads") or {}
    if loads:
        lines += ["", "## End-to-end latency (ms): produce -> tag-change/alert publish", "",
                  "Start: wall time just before produce() (the input's CreateTime comes from "
                  "the same call); end: CreateTime of the first tag change/alert the event "
                  "triggered (worker's producer), or receipt by the consumer (broker alone); "
                  f"one machine clock; fetch wait {_get(res, 'latency', 'fetch_wait_ms')} ms "
                  "for the workers and the broker-alone consumer. stream-app samples: the "
                  "events that triggered an output. Received: the same to the outputs' "
                  "receipt by a consumer (the producer's linger and the broker's fetch hold "
                  "included, as in the broker-alone figure)." + (
                      f" CPUs pinned during these points (--latency-pin): "
                      f"{_get(res, 'latency', 'pinned')}."
                      if _get(res, 'latency', 'pinned') else "") + _broker_note(res)
                  + _layout_note(res), "",
                  "| load | rate (ev/s) | system | event time | p50 | p99 | p99.9 "
                  "| received p50 / p99 | samples | machine idle share / outside cores "
                  "| broker / worker CPU µs per event |",
                  "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for load, d in loads.items():
            for sysname, label in _LAT_SERIES:
                if sysname not in d:
                    continue
                x = d[sysname]
                lines.append(f"| {load}% | {_fmt(x.get('rate'))} | {label} | "
                             f"{_event_time(sysname, x)} | "
                             f"{_fmt(x.get('p50'))} | {_fmt(x.get('p99'))} | "
                             f"{_fmt(x.get('p99.9'))} | "
                             f"{_received(x)} | "
                             f"{_fmt(x.get('n', x.get('matched')))} | "
                             f"{_fmt(_get(x, 'machine', 'idle_share'))} / "
                             f"{_fmt(_get(x, 'machine', 'outside_cores'))} | "
                             f"{_fmt(_get(x, 'machine', 'broker_us_per_event'))} / "
                             f"{_fmt(_get(x, 'machine', 'worker_us_per_event'))} |")
        lines += _quarter_lines(loads)
        lines += _restart_lines(res)
    rec = res.get("recovery")
    if rec:
        mem = rec.get("memory", {})
        again = rec.get("restart") or {}
        lines += ["", f"## Recovery and memory ({_fmt(rec.get('users'))} users, "
                  f"{rec.get('per_user')} events each, table store "
                  f"{rec.get('table_store', '-')})", "",
                  "| measure | value |", "|---|---:|",
                  f"| first start to ready (group join on an empty stack) | "
                  f"{_fmt(rec.get('first_start_ready_s'))} s |",
                  f"| graceful restart: back to processing (event waiting) | "
                  f"{_fmt(rec.get('restart_processing_s'))} s |",
                  f"| of which Python start-up / JoinGroup / assignment to ready | "
                  f"{_fmt(again.get('startup_s'))} / {_fmt(again.get('group_join_s'))} / "
                  f"{_fmt(again.get('joined_to_ready_s'))} s |",
                  f"| of which table restore (Faust recovery log; a kept store: "
                  f"assignment to ready) | {_fmt(rec.get('state_restore_s'))} s |",
                  f"| restart to /ready seen 4 polls in a row by the bench | "
                  f"{_fmt(rec.get('restart_ready_s'))} s |",
                  f"| restart after kill -9: back to processing | "
                  f"{_fmt(rec.get('kill_restart_processing_s'))} s |",
                  f"| load rate while building the state (new users) | "
                  f"{_fmt(rec.get('load_eps'))} events/s |",
                  f"| worker RSS per user | {_fmt(mem.get('worker_rss_bytes_per_user'))} B |",
                  f"| serialized state per user (changelog value) | "
                  f"{_fmt(_get(mem, 'state', 'mean_value_bytes'))} B |"]
        if mem.get("redis_bytes_per_user"):
            lines.append(f"| Redis per user | {_fmt(mem.get('redis_bytes_per_user'))} B |")
    lay = res.get("redis_layout")
    if lay:
        lines += _redis_layout_lines(lay)
    srv = res.get("serving")
    if srv:
        extra = "".join(f", {label} {_fmt(srv[k])}{unit}" for k, label, unit in (
            ("redis_version", "Redis", ""), ("fill_s", "filled in", " s"),
            ("size_cache", "size cache", "")) if srv.get(k) is not None)
        lines += ["", f"## Serving API over {_fmt(srv.get('users'))} users in Redis "
                  f"(HTTP, one request at a time, ms{extra})", "",
                  "| request | result size | p50 | p99 |", "|---|---:|---:|---:|",
                  f"| profile lookup | 1 | {_fmt(srv['profile_ms']['p50'])} | "
                  f"{_fmt(srv['profile_ms']['p99'])} |"]
        for s in srv.get("segments", {}).values():
            size, page = s.get("size_ms") or {}, s.get("first_page_ms") or {}
            err = s.get("size_error") or s.get("first_page_error")
            lines.append(f"| segment size `{s['expr']}` | {_fmt(s.get('size'))} | "
                         f"{_fmt(size.get('p50'))} | {_fmt(size.get('p99'))} |"
                         + (f" error: {err}" if err and not size else ""))
            lines.append(f"| segment first page (100) `{s['expr']}` | 100 | "
                         f"{_fmt(page.get('p50'))} | {_fmt(page.get('p99'))} |")
            nxt = s.get("next_page_ms") or {}
            if nxt:
                lines.append(f"| segment next page by cursor `{s['expr']}` | 100 | "
                             f"{_fmt(nxt.get('p50'))} | {_fmt(nxt.get('p99'))} |")
    mdl = res.get("model")
    if mdl:
        lines += ["", "## Model cost (µs per event, in-process)", "",
                  "| step | µs/event |", "|---|---:|",
                  f"| feature building (update + featurize) | {_fmt(mdl['features_us'])} |",
                  f"| scoring, all targets ({', '.join(mdl['targets'])}) | "
                  f"{_fmt(mdl['score_us_all_targets'])} |",
                  f"| learning, all targets | {_fmt(mdl['learn_us_all_targets'])} |",
                  f"| whole Scorer step (live, gate closed until learned) | "
                  f"{_fmt(mdl['scorer_step_us'])} |",
                  f"| `stream-app evaluate` | {_fmt(mdl['evaluate']['events_per_s'])} "
                  "events/s |"]
    lines += ["", "## Targets", "", "| target | measured | limit | met |", "|---|---:|---:|---|"]
    for t in targets(res):
        limit = f"{t['op']} {_fmt(t['limit'])}" if t["op"] else "-"
        lines.append(f"| {t['target']} | {_fmt(t['value'])} | {limit} | {_met_cell(t)} |")
    if res.get("errors"):
        lines += ["", "## Phases that failed", ""]
        lines += [f"- {k}: `{v}`" for k, v in res["errors"].items()]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}](results/{p})" for p in plots]
    return "\n".join(lines) + "\n"


_LAT_SERIES = (("broker", "broker alone (producer -> consumer)"),
               ("broker_inputs", "broker alone, the input topics' layout (reference)"),
               ("broker_one", "broker alone, every record on one topic (reference)"),
               ("stream_app", "stream-app"),
               ("stream_app_replay", "stream-app"),
               ("stream_app_realtime", "stream-app"),
               ("passthrough_realtime", "Faust pass-through (decode + forward)"))


_LAYOUT_NOTE = {
    "inputs": "each record to a copy of its own input topic, the topics and partitions the "
              "worker reads",
    "one": "every record to one topic",
}


def _layout_note(res: dict[str, Any]) -> str:
    """Which topic layout the broker-alone reference used (``--latency-broker-layout``).

    Example:
        >>> _layout_note({"latency": {"broker_layouts": ["inputs", "one"]}})[:60]
        ' Broker alone: each record to a copy of its own input topic,'
        >>> _layout_note({"latency": {}})          # results from before the option
        ''
    """
    layouts = _get(res, "latency", "broker_layouts") or []
    if not layouts:
        return ""
    out = f" Broker alone: {_LAYOUT_NOTE.get(layouts[0], layouts[0])}"
    if len(layouts) > 1:
        out += "; as references, right after it on topics of their own: " + "; ".join(
            _LAYOUT_NOTE.get(x, x) for x in layouts[1:])
    return out + " (tansu's cost per fetch grows with the batches of the partitions read)."


def _broker_note(res: dict[str, Any]) -> str:
    """How the latency points' broker was chosen (``--latency-broker``)."""
    if _get(res, "latency", "broker") != "fresh":
        return (" Broker: the one the 1-worker throughput phase filled (tansu's cost per "
                "record grows with what it has taken).")
    return (" Broker: fresh before each broker-alone block (`--latency-broker fresh`): the "
            "worker stopped, its changelogs copied compacted to a new tansu, its tables "
            "restored from them, then live traffic at the point's rate for "
            f"{_fmt(_get(res, 'settings', 'latency_warmup_s'))} s before the blocks "
            "(that warm-up's latency is the restart's transient, below).")


#: the stream-app series share one label in the latency table (its event-time column tells
#: them apart); the quarters table has no such column
_QUARTER_MODE = {"stream_app_replay": " (replayed event time)",
                 "stream_app_realtime": " (real time)"}


def _quarter_lines(loads: dict[str, Any]) -> list[str]:
    """The p99 of each quarter of each latency block, by series: whether a tail is spread
    over the block or grows within it (tansu's cost per fetch grows with the batches the
    fetched partitions hold, docs/PERFORMANCE.md item 44).

    Example:
        >>> pt = {"p99_quarters": [40, 50, 60, 80]}            # one block: a flat list
        >>> _quarter_lines({"50": {"broker": {"p99_quarters": [[30, 31, 33, 40]]},
        ...                        "passthrough_realtime": pt}})[-2:]
        ['| 50% | broker alone (producer -> consumer) | 1 | 30 / 31 / 33 / 40 |', \
'| 50% | Faust pass-through (decode + forward) | 1 | 40 / 50 / 60 / 80 |']
    """
    rows = []
    for load, d in loads.items():
        for sysname, label in _LAT_SERIES:
            quarters = (d.get(sysname) or {}).get("p99_quarters") or []
            if quarters and not isinstance(quarters[0], list):
                quarters = [quarters]          # one block (the pass-through's point)
            label += _QUARTER_MODE.get(sysname, "")
            rows += [f"| {load}% | {label} | {i} | {' / '.join(_fmt(q) for q in qs)} |"
                     for i, qs in enumerate(quarters, 1) if qs]
    if not rows:
        return []
    return ["", "p99 (ms) by quarter of each block's events, in send order:", "",
            "| load | system | block | p99 by quarter |", "|---|---|---:|---|", *rows]


def _restart_lines(res: dict[str, Any]) -> list[str]:
    """The moves to a fresh broker and the latency of each warm-up after them."""
    moves = _get(res, "latency", "moves") or []
    if not moves:
        return []
    out = ["", "Moves to a fresh broker (before each broker-alone block) and the restart's "
           "transient (the warm-up's p99, overall and by quarter of its events):", "",
           "| move | changelog records copied (of read) | MB | copy s | restart to ready s "
           "| warm-up rate | warm-up p99 | p99 by quarter |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for i, m in enumerate(moves, 1):
        c, w = m.get("copy") or {}, m.get("warmup") or {}
        quarters = " / ".join(_fmt(q) for q in w.get("p99_quarters") or []) or "-"
        out.append(f"| {i} | {_fmt(c.get('written'))} ({_fmt(c.get('read'))}) | "
                   f"{_fmt((c.get('bytes') or 0) / 1e6)} | {_fmt(c.get('seconds'))} | "
                   f"{_fmt(m.get('restart_s'))} | {_fmt(w.get('rate'))} | "
                   f"{_fmt(w.get('p99'))} | {quarters} |")
    return out


def _event_time(sysname: str, x: dict[str, Any]) -> str:
    """How the event times of a latency series ran against wall time.

    Example:
        >>> _event_time("stream_app_replay", {"event_time_speedup": 2100.0})
        'replayed ~2,100 x faster than wall time'
        >>> _event_time("stream_app_realtime", {}), _event_time("broker", {})
        ('produce time (real-time)', '-')
    """
    if sysname == "stream_app_replay":
        return f"replayed ~{_fmt(x.get('event_time_speedup'))} x faster than wall time"
    if sysname in ("stream_app_realtime", "passthrough_realtime"):
        return "produce time (real-time)"
    return "-"


def plot(res: dict, out: Path) -> list[str]:
    """Throughput bars and latency percentiles as PNGs in ``out``; their file names."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return []
    names: list[str] = []
    bars = [("ceiling\nconsume", _get(res, "ceiling", "consume_eps")),
            ("ceiling\nproduce", _get(res, "ceiling", "produce_eps")),
            ("Faust\npass-through", _get(res, "passthrough", "eps")),
            ("Quix\ncounting", _get(res, "quix", "eps")),
            ("stream-app\n1 worker", _get(res, "stream_app_1w", "eps")),
            ("stream-app\n2 workers", _get(res, "stream_app_2w", "eps"))]
    bars = [(n, v) for n, v in bars if v]
    if bars:
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.bar([n for n, _ in bars], [v for _, v in bars], color="#4c72b0")
        ax.set_yscale("log")
        ax.set_ylabel("events/s (log scale)")
        ax.set_title(f"Throughput, one run ({res.get('date')})")
        for i, (_, v) in enumerate(bars):
            ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
        fig.tight_layout()
        name = f"throughput-{res.get('date')}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        names.append(name)
    loads = _get(res, "latency", "loads") or {}
    if loads:
        fig, ax = plt.subplots(figsize=(8, 4))
        labels, width = ["p50", "p99", "p99.9"], 0.2
        series = [(f"{sysname.replace('stream_app', 'stream-app')} {load}%", d[sysname])
                  for load, d in loads.items() for sysname, _ in _LAT_SERIES
                  if sysname in d]
        width = 0.8 / max(len(series), 1)
        for i, (label, x) in enumerate(series):
            ax.bar([j + i * width for j in range(3)], [x.get(p) or 0 for p in labels],
                   width, label=label)
        ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(3)], labels)
        ax.set_yscale("log")
        ax.set_ylabel("ms (log scale)")
        ax.set_title(f"End-to-end latency, fetch wait {_get(res, 'latency', 'fetch_wait_ms')} ms")
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"latency-{res.get('date')}.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        names.append(name)
    return names


def write(res: dict, out: Path, md_path: Path) -> str:
    """Write plots and ``RESULTS.md``; print and return the targets summary."""
    md = markdown(res, plot(res, out))
    md_path.write_text(md)
    summary = ["Targets:"]
    for t in targets(res):
        limit = f" (limit {t['op']} {_fmt(t['limit'])})" if t["op"] else ""
        summary.append(f"  [{_met_cell(t, md=False)}] {t['target']}: {_fmt(t['value'])}"
                       + limit)
    return "\n".join(summary)


if __name__ == "__main__":  # re-render the report of a results file
    import json
    import sys

    path = Path(sys.argv[1])
    print(write(json.loads(path.read_text()), path.parent, path.parent.parent / "RESULTS.md"))
