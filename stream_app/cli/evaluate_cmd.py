"""``stream-app evaluate FILE --target T``: replay an event file through the Scorer offline.

Prints ROC-AUC, PR-AUC, log loss, precision/recall at the alert threshold (overall and per
checkpoint group), the gate state, and events/s; writes the full report as JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from stream_app.scoring.config import ScoringConfig, load_scoring_config
from stream_app.scoring.evaluate import evaluate_file
from stream_app.text import plural

#: the snapshots the Scorer can learn from (``Scorer(learn_from=...)``)
LEARN_FROM = ("checkpoints", "live")


def check_options(learn_from: str, warmup: float, no_learn: bool = False,
                  learn_from_given: bool = False) -> tuple[str, ...]:
    """The ``--learn-from`` names, once ``--learn-from`` and ``--warmup`` make sense; else a
    :class:`click.ClickException` (one ``Error:`` line, exit code 1) before any work.

    ``--learn-from`` is a comma list of :data:`LEARN_FROM` (an unknown name such as
    ``checkpoint`` was ignored: the model learnt from the rest, or from nothing); ``--warmup``
    is a share of the file's time span, so 0 <= warmup < 1 (1 or more left no checkpoint
    after it, a negative one all of them, NaN failed after the whole replay).

    >>> check_options("checkpoints, live", 0.5)
    ('checkpoints', 'live')
    >>> check_options("checkpoint", 0.5)
    Traceback (most recent call last):
    ...
    click.exceptions.ClickException: --learn-from: unknown 'checkpoint' (choose from ...)
    >>> check_options("live", 1.0)
    Traceback (most recent call last):
    ...
    click.exceptions.ClickException: --warmup 1.0: a share of the file's time span, ...
    """
    names = tuple(s.strip() for s in learn_from.split(",") if s.strip())
    unknown = [n for n in names if n not in LEARN_FROM]
    if unknown:
        raise click.ClickException(
            f"--learn-from: unknown {', '.join(map(repr, unknown))} (choose from "
            f"{', '.join(LEARN_FROM)}, comma-separated)")
    if not names:
        raise click.ClickException(
            f"--learn-from {learn_from!r} names no snapshots (choose from "
            f"{', '.join(LEARN_FROM)}; --no-learn scores without learning)")
    if no_learn and learn_from_given:
        raise click.ClickException("--learn-from with --no-learn: a frozen model learns from "
                                   "nothing; give one of them")
    if not (math.isfinite(warmup) and 0.0 <= warmup < 1.0):
        raise click.ClickException(
            f"--warmup {warmup}: a share of the file's time span, from 0 up to (not "
            "including) 1, e.g. 0.5")
    return names


def check_learners(option: str, names: tuple[str, ...], cfg: ScoringConfig) -> None:
    """Refuse learner names ``cfg`` does not define (its ``learners:``, see
    :meth:`ScoringConfig.learner_names`) with a :class:`click.ClickException` naming the
    option and the configured names (one ``Error:`` line, exit code 1), before any replay:
    a misspelt name was a bare ``ValueError`` once its turn came (``oulad eval``: after the
    learners before it had run).

    >>> cfg = load_scoring_config()
    >>> check_learners("--learner", ("logreg_std",), cfg)
    >>> check_learners("--learners", ("hat", "logreg_sd", "nosuch"), cfg)
    Traceback (most recent call last):
    ...
    click.exceptions.ClickException: --learners: unknown 'logreg_sd', 'nosuch' (choose from \
logreg, logreg_std, hat, arf, ensemble: the scoring config's learners)
    """
    known = cfg.learner_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise click.ClickException(
            f"{option}: unknown {', '.join(map(repr, unknown))} (choose from "
            f"{', '.join(known)}: the scoring config's learners)")


def check_label_delay(days: float | None) -> None:
    """Refuse a ``--label-delay`` that is not a finite number of days, 0 or more (one
    ``Error:`` line, exit code 1, before the file is read).

    >>> check_label_delay(None), check_label_delay(14.0)
    (None, None)
    >>> check_label_delay(-1.0)
    Traceback (most recent call last):
    ...
    click.exceptions.ClickException: --label-delay -1.0: a number of days, 0 or more, e.g. 14
    """
    if days is not None and not (math.isfinite(days) and days >= 0):
        raise click.ClickException(f"--label-delay {days}: a number of days, 0 or more, e.g. 14")


def window_line(cps: dict[str, Any]) -> str:
    """What the checkpoint table leaves out, and the label delay per group behind it.

    >>> print(window_line({"label_delay": {"from": "data", "groups": {"d1": {"days": 13.0},
    ...                    "d7": {"days": None}}},
    ...                    "all": {"censored": 40, "censored_resolved": 9,
    ...                            "censored_positives": 8, "unresolved": 0}})
    ...       )  # doctest: +NORMALIZE_WHITESPACE
    left out: 40 censored checkpoints (taken less than their label delay before the file's
    last event; 9 of them resolved, 8 positive), 0 unresolved (no outcome though its window
    closed); label delay (the longest checkpoint-to-label time in the file): d1 13.0 days,
    d7 unknown (none resolved)
    """
    a = cps.get("all") or {}
    ld = cps["label_delay"]
    how = ("the longest checkpoint-to-label time in the file" if ld["from"] == "data"
           else "--label-delay")
    per = ", ".join(f"{g} " + ("unknown (none resolved)" if d["days"] is None
                               else f"{d['days']:.1f} days")
                    for g, d in ld["groups"].items())
    return (f"left out: {plural(a.get('censored', 0), 'censored checkpoint')} (taken less "
            "than their label delay before the file's last event; "
            f"{a.get('censored_resolved', 0)} of them resolved, "
            f"{a.get('censored_positives', 0)} positive), {a.get('unresolved', 0)} unresolved "
            f"(no outcome though its window closed); label delay ({how}): {per}")


def _f(v: object) -> str:
    return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


@click.command("evaluate", help="Replay an event file (JSONL[.gz]) offline through the same "
               "Scorer as the agents; print and write (JSON) ROC-AUC, PR-AUC, log loss, "
               "calibration, precision/recall at the alert threshold, per checkpoint group, "
               "a learning curve, the gate state and events/s.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--target", "-t", required=True, help="target to evaluate (convert, at_risk, ...)")
@click.option("--learner", default=None, help="override the configured learner (a name "
              "under the scoring config's learners:)")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="scoring YAML (default config/scoring.yaml)")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="JSON report path (default: var/evaluate-<target>.json)")
@click.option("--learn-from", default="checkpoints,live", show_default=True,
              help="snapshots to learn from: checkpoints and/or live (comma-separated)")
@click.option("--score-every-event/--score-checkpoints", default=False, show_default=True,
              help="score every target on every event, as the live agent does")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="start from a model snapshot blob")
@click.option("--save-model", type=click.Path(dir_okay=False), default=None,
              help="write the learned model snapshot blob here")
@click.option("--no-learn", is_flag=True, help="freeze the model (score only)")
@click.option("--validate", is_flag=True,
              help="validate every event against the contract (a line the workers would "
                   "dead-letter is skipped, as they go on)")
@click.option("--strict", is_flag=True,
              help="stop at the first bad line instead of skipping it")
@click.option("--warmup", type=float, default=0.5, show_default=True,
              help="also report checkpoints after this share of the time span (0 <= share "
                   "< 1)")
@click.option("--label-delay", "label_delay", type=float, default=None, metavar="DAYS",
              help="evaluate only checkpoints taken at least DAYS before the file's last "
                   "event (default: per checkpoint group, the longest time from a "
                   "checkpoint to the label that resolved it in the file); the later ones "
                   "are counted as censored")
def command(file: str, target: str, learner: str | None, config_path: str | None,
            out_path: str | None, learn_from: str, score_every_event: bool,
            model_path: str | None, save_model: str | None, no_learn: bool,
            validate: bool, warmup: float, strict: bool, label_delay: float | None) -> None:
    given = click.get_current_context().get_parameter_source("learn_from")
    names = check_options(learn_from, warmup, no_learn,
                          learn_from_given=given is not click.core.ParameterSource.DEFAULT)
    check_label_delay(label_delay)
    cfg = load_scoring_config(config_path)
    if learner is not None:
        check_learners("--learner", (learner,), cfg)
    res = evaluate_file(
        file, target, config=cfg, learner=learner, learn=not no_learn,
        model_blob=Path(model_path).read_bytes() if model_path else None,
        score_events=score_every_event,
        learn_from=names,
        validate=validate, warmup=warmup, strict=strict, label_delay_days=label_delay,
    )
    reg = res.pop("_registry")
    if save_model:
        Path(save_model).write_bytes(reg.snapshot(target))
    out = Path(out_path or f"var/evaluate-{target}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    click.echo(f"{plural(res['events'], 'event')}, {plural(res['users'], 'user')} in "
               f"{res['seconds']:.2f}s: {res['events_per_s']} events/s; learner "
               f"{res['learner']}, {plural(res['labels'], 'label')}, "
               f"{plural(res['snapshots_learned'], 'labelled snapshot')} learned")
    sk = res["skipped"]
    if sk["lines"]:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(sk["reasons"].items()))
        click.echo(f"skipped {plural(sk['lines'], 'bad line')} ({reasons}; the report's "
                   f"`skipped` lists the first): {sk['first'][0]}", err=True)
    cols = ["n", "positives", "roc_auc", "pr_auc", "log_loss", "precision", "recall",
            "rules_roc_auc", "unresolved", "censored"]
    click.echo(f"{'group':<24}" + "".join(f"{c:>14}" for c in cols))
    rows = list(res["checkpoints"]["groups"].items())
    if res["checkpoints"]["all"]:
        rows.append(("(all checkpoints)", res["checkpoints"]["all"]))
    if res["prequential"]:
        rows.append(("(prequential labels)", res["prequential"]))
    for name, m in rows:
        click.echo(f"{name:<24}" + "".join(f"{_f(m.get(c)):>14}" for c in cols))
    click.echo(window_line(res["checkpoints"]))
    late = res["checkpoints"]["after_warmup"]
    if late["groups"]:
        click.echo(f"checkpoints after the first {late['warmup']:.0%} of the time span "
                   "(a warm model), up to each group's horizon:")
        for name, m in late["groups"].items():
            click.echo(f"{name:<24}" + "".join(f"{_f(m.get(c)):>14}" for c in cols))
    g = res["gate"]
    click.echo(f"gate: {'OPEN' if g['open'] else 'closed'} version {g['version']} "
               f"precision {g['precision']} recall {g['recall']} over "
               f"{plural(g['labels'], 'label')} "
               f"(bars {g['min_precision']}/{g['min_recall']}, threshold {g['threshold']})")
    c = res.get("calibration")
    if c:
        click.echo(f"calibration: {c['method']} {'on' if c['active'] else 'off'}: labelled "
                   f"snapshots {c['base_rate']:.1%} positive, learned with rehearsal "
                   f"{c['train_rate']:.1%} (r1 {c['r1']}, r0 {c['r0']})")
    click.echo(f"report: {out}")
