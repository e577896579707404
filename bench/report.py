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


def targets(res: dict) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it is met (None: not measured)."""
    r = ratios(res)
    lat50 = _get(res, "latency", "loads", "50") or {}
    e2e, broker = _get(lat50, "stream_app", "p99"), _get(lat50, "broker", "p99")
    rows = [
        ("1 worker >= 50% of pass-through", r["stream-app / pass-through"], 0.5, ">="),
        ("1 worker >= 50% of Quix Streams counting", r["stream-app / Quix Streams counting"],
         0.5, ">="),
        ("2 workers >= 1.6 x 1 worker", r["2 workers / 1 worker"], 1.6, ">="),
        ("p99 at 50% load <= 2 x broker-alone p99", _ratio(e2e, broker), 2.0, "<="),
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
        met = None if value is None else {
            ">=": value >= limit, "<=": value <= limit, "<": value < limit}[op]
        out.append({"target": name, "value": value, "limit": limit, "op": op, "met": met})
    return out


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
    loads = _get(res, "latency", "loads") or {}
    if loads:
        lines += ["", "## End-to-end latency (ms): produce -> tag-change/alert publish", "",
                  "| load | rate (ev/s) | system | p50 | p99 | p99.9 | samples |",
                  "|---|---:|---|---:|---:|---:|---:|"]
        for load, d in loads.items():
            for sysname, label in (("broker", "broker alone (producer -> consumer)"),
                                   ("stream_app", "stream-app")):
                x = d.get(sysname, {})
                lines.append(f"| {load}% | {_fmt(x.get('rate'))} | {label} | "
                             f"{_fmt(x.get('p50'))} | {_fmt(x.get('p99'))} | "
                             f"{_fmt(x.get('p99.9'))} | "
                             f"{_fmt(x.get('n', x.get('matched')))} |")
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
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {_fmt(t['value'])} | {t['op']} {_fmt(t['limit'])} "
                     f"| {met} |")
    if res.get("errors"):
        lines += ["", "## Phases that failed", ""]
        lines += [f"- {k}: `{v}`" for k, v in res["errors"].items()]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}](results/{p})" for p in plots]
    return "\n".join(lines) + "\n"


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
        series = [(f"{sysname} {load}%", d.get(sysname, {}))
                  for load, d in loads.items() for sysname in ("broker", "stream_app")]
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
        met = "not measured" if t["met"] is None else ("MET" if t["met"] else "NOT MET")
        summary.append(f"  [{met}] {t['target']}: {_fmt(t['value'])} "
                       f"(limit {t['op']} {_fmt(t['limit'])})")
    return "\n".join(summary)


if __name__ == "__main__":  # re-render the report of a results file
    import json
    import sys

    path = Path(sys.argv[1])
    print(write(json.loads(path.read_text()), path.parent, path.parent.parent / "RESULTS.md"))
