"""``make eval-oulad``: online at-risk AUC per checkpoint on AAA-2014J beside the batch bar.

Protocol: the three presentations are replayed as one time-ordered stream. BBB-2013B and
AAA-2013J teach the online model (their outcomes are known before AAA-2014J starts); every
AAA-2014J checkpoint is scored by the model as it was at that moment, and resolved when the
learner's outcome arrives. The batch bar is LightGBM trained offline on the training
presentations' checkpoint snapshots (the same features). The published figures use all 22
presentations and another protocol: context only.

Example:
    >>> rows = table_rows({"AAA-2014J@10": {"roc_auc": 0.7, "n": 10}}, {"pooled": {10: 0.69}},
    ...                   {"logreg": {"AAA-2014J@10": {"roc_auc": 0.66}}}, "AAA-2014J")
    >>> rows[0]["checkpoint"], rows[0]["online"], rows[0]["batch_lightgbm"], rows[0]["published"]
    ('10%', 0.7, 0.69, 0.841)
    >>> markdown_table(rows, ["logreg"]).splitlines()[2]
    '| 10% | 0.700 | 0.690 | 0.670 | 0.841 | - | 0.660 |'
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from stream_app.oulad.baseline import batch_auc
from stream_app.oulad.convert import CHECKPOINTS, convert, is_current
from stream_app.scoring.config import ScoringConfig, load_scoring_config
from stream_app.scoring.evaluate import evaluate_file
from stream_app.text import plural

__all__ = ["PUBLISHED", "README_BAR", "markdown_table", "run", "table_rows"]

PUBLISHED = {10: 0.841, 20: 0.880, 40: 0.923, 60: 0.956, 80: 0.973, 100: 0.988}
README_BAR = {10: 0.67, 20: 0.70, 40: 0.78, 60: 0.79, 80: 0.86, 100: 0.90}
TRAIN = ("BBB-2013B", "AAA-2013J")
TEST = "AAA-2014J"


def table_rows(groups: dict[str, dict[str, Any]], batch: dict[str, dict[int, Any]],
               others: dict[str, dict[str, dict[str, Any]]], test: str) -> list[dict[str, Any]]:
    """One row per checkpoint share of ``test``."""
    rows = []
    for pct in CHECKPOINTS:
        g = groups.get(f"{test}@{pct}") or {}
        row = {"checkpoint": f"{pct}%", "n": g.get("n"), "positives": g.get("positives"),
               "online": g.get("roc_auc"), "online_pr_auc": g.get("pr_auc"),
               "rules": g.get("rules_roc_auc"),
               "batch_lightgbm": batch.get("pooled", {}).get(pct),
               "batch_lightgbm_per_checkpoint": batch.get("per_checkpoint", {}).get(pct),
               "readme_batch_bar": README_BAR.get(pct), "published": PUBLISHED.get(pct)}
        for name, gr in others.items():
            row[name] = (gr.get(f"{test}@{pct}") or {}).get("roc_auc")
        rows.append(row)
    return rows


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def markdown_table(rows: list[dict[str, Any]], learners: list[str]) -> str:
    """The per-checkpoint table in markdown."""
    head = ["checkpoint", "online (default)", "batch LightGBM", "bar in data README",
            "published (22 presentations)", "rule points"]
    head += learners
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["checkpoint"], _f(r["online"]), _f(r["batch_lightgbm"]),
                 _f(r["readme_batch_bar"]), _f(r["published"]), _f(r["rules"])]
        cells += [_f(r.get(name)) for name in learners]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(rows: list[dict[str, Any]], learners: list[str], default: str, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - dev extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    xs = [int(r["checkpoint"][:-1]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(xs, [r["online"] for r in rows], "o-", lw=2.5, label=f"online River ({default})")
    for name in learners:
        if name != default:
            ax.plot(xs, [r.get(name) for r in rows], ".--", lw=1, label=f"online River ({name})")
    ax.plot(xs, [r["batch_lightgbm"] for r in rows], "s-", label="batch LightGBM (same features)")
    ax.plot(xs, [r["readme_batch_bar"] for r in rows], "x:", label="bar in data README")
    ax.plot(xs, [r["published"] for r in rows], "^:", color="grey",
            label="published (22 presentations, other protocol)")
    ax.plot(xs, [r["rules"] for r in rows], "v:", color="brown", label="rule points")
    ax.set_xlabel("share of the course elapsed (%)")
    ax.set_ylabel("ROC-AUC, at risk (Fail or Withdrawn)")
    ax.set_title(f"OULAD {TEST}: at-risk ROC-AUC per checkpoint")
    ax.set_xticks(xs)
    ax.set_ylim(0.45, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(out_dir: Path | str = "eval/oulad", *, events: Path | str | None = None,
        learners: tuple[str, ...] = ("logreg_std", "logreg", "hat", "ensemble"),
        config: ScoringConfig | None = None, plot: bool = True,
        log: Any = print) -> dict[str, Any]:
    """Convert (if needed), evaluate every learner, fit the batch bar, write the report.
    Every name of ``learners`` is checked first (:class:`ConfigError`), not when its turn
    comes after the others' replays."""
    cfg = config or load_scoring_config()
    cfg.check_learners(learners)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    default = cfg.targets["at_risk"].learner
    t0 = time.perf_counter()
    if events is None:
        events = Path("var/oulad/events.jsonl.gz")
        if not is_current(events):
            # a file of an earlier converter would be evaluated as is (session 30: one
            # without the outcomes' event_ts gave the pre-QA33-F3 gate figures silently)
            why = "written by another converter" if events.exists() else "none yet"
            log(f"converting OULAD -> {events} ({why})")
            log(f"  {convert(out=events)}")
    names = [default] + [n for n in learners if n != default]
    runs: dict[str, dict[str, Any]] = {}
    records: list[dict[str, Any]] = []
    for name in names:
        res = evaluate_file(events, "at_risk", config=cfg, learner=name,
                            learn_from=("checkpoints",), keep_records=(name == default))
        res.pop("_registry", None)
        if name == default:
            records = res.pop("records")
        runs[name] = res
        log(f"  {name}: {plural(res['events'], 'event')} in {res['seconds']:.1f}s "
            f"({res['events_per_s']} events/s)")
    batch = batch_auc(records, TRAIN, TEST)
    groups = {n: r["checkpoints"]["groups"] for n, r in runs.items()}
    rows = table_rows(groups[default], batch, {n: g for n, g in groups.items()}, TEST)
    table = markdown_table(rows, names)
    result = {
        "protocol": {"train": list(TRAIN), "test": TEST, "target": "at_risk",
                     "default_learner": default, "learn_from": ["checkpoints"]},
        "table": rows,
        "batch_lightgbm": {k: {str(p): v for p, v in d.items()} for k, d in batch.items()},
        "learners": {n: {"groups": r["checkpoints"]["groups"], "gate": r["gate"],
                         "events_per_s": r["events_per_s"], "seconds": r["seconds"],
                         "learning_curve": r["learning_curve"]} for n, r in runs.items()},
        "published": PUBLISHED,
        "readme_batch_bar": README_BAR,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "table.md").write_text(table + "\n")
    if plot:
        _plot(rows, names, default, out / "auc_by_checkpoint.png")
    return result
