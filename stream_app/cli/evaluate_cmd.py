"""``stream-app evaluate FILE --target T``: replay an event file through the Scorer offline.

Prints ROC-AUC, PR-AUC, log loss, precision/recall at the alert threshold (overall and per
checkpoint group), the gate state, and events/s; writes the full report as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from stream_app.scoring.config import load_scoring_config
from stream_app.scoring.evaluate import evaluate_file


def _f(v: object) -> str:
    return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


@click.command("evaluate", help="Replay an event file (JSONL[.gz]) offline through the same "
               "Scorer as the agents; print and write (JSON) ROC-AUC, PR-AUC, log loss, "
               "calibration, precision/recall at the alert threshold, per checkpoint group, "
               "a learning curve, the gate state and events/s.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--target", "-t", required=True, help="target to evaluate (convert, at_risk, ...)")
@click.option("--learner", default=None, help="override the configured learner")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="scoring YAML (default config/scoring.yaml)")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="JSON report path (default: eval/evaluate-<target>.json)")
@click.option("--learn-from", default="checkpoints,live", show_default=True,
              help="snapshots to learn from: checkpoints and/or live")
@click.option("--score-every-event/--score-checkpoints", default=False, show_default=True,
              help="score every target on every event, as the live agent does")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="start from a model snapshot blob")
@click.option("--save-model", type=click.Path(dir_okay=False), default=None,
              help="write the learned model snapshot blob here")
@click.option("--no-learn", is_flag=True, help="freeze the model (score only)")
@click.option("--validate", is_flag=True, help="validate every event against the contract")
@click.option("--warmup", type=float, default=0.5, show_default=True,
              help="also report checkpoints after this share of the time span")
def command(file: str, target: str, learner: str | None, config_path: str | None,
            out_path: str | None, learn_from: str, score_every_event: bool,
            model_path: str | None, save_model: str | None, no_learn: bool,
            validate: bool, warmup: float) -> None:
    cfg = load_scoring_config(config_path)
    res = evaluate_file(
        file, target, config=cfg, learner=learner, learn=not no_learn,
        model_blob=Path(model_path).read_bytes() if model_path else None,
        score_events=score_every_event,
        learn_from=tuple(s.strip() for s in learn_from.split(",") if s.strip()),
        validate=validate, warmup=warmup,
    )
    reg = res.pop("_registry")
    if save_model:
        Path(save_model).write_bytes(reg.snapshot(target))
    out = Path(out_path or f"eval/evaluate-{target}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    click.echo(f"{res['events']} events, {res['users']} users in {res['seconds']:.2f}s: "
               f"{res['events_per_s']} events/s; learner {res['learner']}, "
               f"{res['labels']} labels, {res['snapshots_learned']} labelled snapshots learned")
    cols = ["n", "positives", "roc_auc", "pr_auc", "log_loss", "precision", "recall",
            "rules_roc_auc"]
    click.echo(f"{'group':<24}" + "".join(f"{c:>14}" for c in cols))
    rows = list(res["checkpoints"]["groups"].items())
    if res["checkpoints"]["all"]:
        rows.append(("(all checkpoints)", res["checkpoints"]["all"]))
    if res["prequential"]:
        rows.append(("(prequential labels)", res["prequential"]))
    for name, m in rows:
        click.echo(f"{name:<24}" + "".join(f"{_f(m.get(c)):>14}" for c in cols))
    late = res["checkpoints"]["after_warmup"]
    if late["groups"]:
        click.echo(f"checkpoints after the first {late['warmup']:.0%} of the time span "
                   "(a warm model):")
        for name, m in late["groups"].items():
            click.echo(f"{name:<24}" + "".join(f"{_f(m.get(c)):>14}" for c in cols))
    g = res["gate"]
    click.echo(f"gate: {'OPEN' if g['open'] else 'closed'} version {g['version']} "
               f"precision {g['precision']} recall {g['recall']} over {g['labels']} labels "
               f"(bars {g['min_precision']}/{g['min_recall']}, threshold {g['threshold']})")
    click.echo(f"report: {out}")
