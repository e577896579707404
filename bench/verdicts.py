"""Each target's verdict over several benchmark runs, not one: the value in every run that
measured it, the median, and in how many runs it was met.

A single quick run is one sample of a noisy, shared two-core machine (docs/PERFORMANCE.md:
the half-load p99 of one tree was 1.54x, 1.73x and 4.14x the broker alone in three runs of
one day). This reads the runs' results files and judges each target over all of them.

Usage::

    python -m bench.verdicts bench/results/2026-12-02T1*.json
    python -m bench.verdicts bench/results/*.json --out bench/VERDICTS.md

Example:
    >>> runs = [{"date": "a", "stream_app_1w": {"eps": 450}, "passthrough": {"eps": 1000}},
    ...         {"date": "b", "stream_app_1w": {"eps": 550}, "passthrough": {"eps": 1000}},
    ...         {"date": "c", "stream_app_1w": {"eps": 520}, "passthrough": {"eps": 1000}}]
    >>> v = verdicts(runs)["1 worker >= 50% of pass-through"]
    >>> v["values"], v["median"], v["met"], v["runs"]
    ([0.45, 0.55, 0.52], 0.52, 2, 3)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench.report import _fmt, targets


def verdicts(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Target -> its values over ``runs`` (in the given order; runs that did not measure it
    left out), their median, how many runs met it, and its limit; reference rows left out."""
    out: dict[str, dict[str, Any]] = {}
    for res in runs:
        for t in targets(res):
            if t["reference"] or t["value"] is None or t["met"] is None:
                continue
            v = out.setdefault(t["target"], {"values": [], "dates": [], "met": 0,
                                             "op": t["op"], "limit": t["limit"]})
            v["values"].append(t["value"])
            v["dates"].append(res.get("date"))
            v["met"] += bool(t["met"])
    for v in out.values():
        v["runs"] = len(v["values"])
        v["median"] = statistics.median(v["values"])
    return out


def markdown(vs: dict[str, dict[str, Any]]) -> str:
    """A table: target, limit, values per run, median, met in k of n.

    >>> print(markdown({"t": {"values": [1.5, 2.5], "dates": ["a", "b"], "met": 1,
    ...                       "op": "<=", "limit": 2.0, "runs": 2, "median": 2.0}}))
    | target | limit | values, in run order | median | met |
    |---|---:|---|---:|---:|
    | t | <= 2 | 1.5, 2.5 | 2 | 1 of 2 |
    <BLANKLINE>
    Runs: a, b.
    """
    dates = sorted({d for v in vs.values() for d in v["dates"] if d})
    lines = ["| target | limit | values, in run order | median | met |",
             "|---|---:|---|---:|---:|"]
    for name, v in vs.items():
        lines.append(f"| {name} | {v['op']} {_fmt(v['limit'])} | "
                     f"{', '.join(_fmt(x) for x in v['values'])} | {_fmt(v['median'])} | "
                     f"{v['met']} of {v['runs']} |")
    return "\n".join([*lines, "", f"Runs: {', '.join(dates)}."])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.verdicts", description=__doc__.split(
        "\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path, help="results files (bench/results/*.json)")
    ap.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = ap.parse_args(argv)
    runs = []
    for path in sorted(args.results):
        try:
            res = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{path}: not a results file ({exc})") from exc
        if isinstance(res, dict) and "date" in res and "mode" in res:
            runs.append(res)
    if not runs:
        raise SystemExit("no benchmark results among the files (bench/results/<date>.json "
                         "written by python -m bench.run)")
    table = markdown(verdicts(runs))
    print(f"{len(runs)} runs\n\n{table}")
    if args.out:
        args.out.write_text(f"# Verdicts over {len(runs)} runs\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
