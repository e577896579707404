"""``stream-app oulad``: the real-data evaluation on OULAD (convert, eval)."""

from __future__ import annotations

from pathlib import Path

import click

from stream_app.cli.evaluate_cmd import check_learners
from stream_app.oulad.convert import DATA_DIR, convert
from stream_app.scoring.config import load_scoring_config


@click.group("oulad", help="Real-data evaluation on OULAD: convert the data to events, "
             "evaluate at-risk scoring against a batch LightGBM.")
def command() -> None:
    """OULAD commands."""


@command.command("convert", help="Convert data/oulad/*.csv.gz to an event file (JSONL.gz).")
@click.option("--src", type=click.Path(exists=True, file_okay=False), default=str(DATA_DIR),
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default="var/oulad/events.jsonl.gz",
              show_default=True)
def convert_cmd(src: str, out: str) -> None:
    counts = convert(src, out)
    click.echo(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@command.command("eval", help="At-risk ROC-AUC per checkpoint on AAA-2014J: online River "
                 "learners vs a batch LightGBM; writes results.json, table.md and a PNG. "
                 "The committed figures (README, docs/SCORING.md) are in eval/oulad: "
                 "--out eval/oulad refreshes them.")
@click.option("--out", type=click.Path(file_okay=False), default="var/oulad", show_default=True)
@click.option("--events", type=click.Path(dir_okay=False), default=None,
              help="event file (default: convert into var/oulad/events.jsonl.gz)")
@click.option("--learners", default="logreg_std,logreg,hat,ensemble", show_default=True,
              help="online learners to compare, names of config/scoring.yaml learners (the "
              "configured default is always first)")
@click.option("--no-plot", is_flag=True)
def eval_cmd(out: str, events: str | None, learners: str, no_plot: bool) -> None:
    names = tuple(s.strip() for s in learners.split(",") if s.strip())
    cfg = load_scoring_config()
    check_learners("--learners", names, cfg)   # all of them, before the first replay
    from stream_app.oulad.report import run  # noqa: PLC0415 - lightgbm/matplotlib on demand

    res = run(out, events=Path(events) if events else None, learners=names, config=cfg,
              plot=not no_plot, log=click.echo)
    click.echo((Path(out) / "table.md").read_text())
    click.echo(f"written: {out}/results.json, {out}/table.md"
               + ("" if no_plot else f", {out}/auc_by_checkpoint.png")
               + f" ({res['seconds']}s)")
