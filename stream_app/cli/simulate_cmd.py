"""``stream-app simulate`` — write a seeded simulated event file and its ground truth.

Example:
    >>> from click.testing import CliRunner
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "sim.jsonl"
    >>> res = CliRunner().invoke(command, ["--users", "30", "--days", "2", "--out", str(out),
    ...                                    "--quiet"])
    >>> res.exit_code, out.exists(), out.with_name("sim.truth.json").exists()
    (0, True, True)
"""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path

import click

from stream_app.cli.option_types import FiniteFloatRange
from stream_app.text import plural


def truth_path_for(out: Path) -> Path:
    """``var/sim.jsonl.gz`` -> ``var/sim.truth.json``.

    >>> truth_path_for(Path("var/sim.jsonl.gz")).as_posix()
    'var/sim.truth.json'
    """
    name = out.name
    for suffix in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return out.with_name(f"{name}.truth.json")


def tenant_problem(tenant: str) -> str | None:
    """Why ``tenant`` cannot be an event's tenant (the ``tenant`` property of the event
    schema, ``topics/schemas/event.schema.json``: its length and pattern), or None.

    >>> tenant_problem("acme"), tenant_problem("a_b-2")
    (None, None)
    >>> tenant_problem("a b")
    "'a b' does not match the event schema's tenant pattern ^[A-Za-z0-9_-]+$"
    >>> tenant_problem("x" * 65)
    "'xxxxxxxxxxxxxxxxxxxx...' is longer than the event schema's 64 characters"
    """
    import re  # noqa: PLC0415

    from stream_app.contract import load_contract  # noqa: PLC0415

    contract = load_contract()
    rule = contract.schema(contract.stream_topic("click"))["properties"]["tenant"]
    shown = repr(tenant if len(tenant) <= 20 else tenant[:20] + "...")
    if len(tenant) < rule.get("minLength", 0):
        return f"{shown} is shorter than the event schema's {rule['minLength']} characters"
    if len(tenant) > rule.get("maxLength", len(tenant)):
        return f"{shown} is longer than the event schema's {rule['maxLength']} characters"
    pattern = rule.get("pattern")
    if pattern and re.search(pattern.removesuffix("$") + r"\Z", tenant) is None:
        return f"{shown} does not match the event schema's tenant pattern {pattern}"
    return None


#: digits of the per-person event counter assumed for the longest event id of a run (a
#: person makes a few hundred events in a year: a million leaves room to spare)
MAX_EVENT_DIGITS = 6


def id_problem(id_prefix: str, seed: int, people: int) -> str | None:
    """Why ``--id-prefix`` would give ids longer than the event schema allows (the
    ``maxLength`` of its ``event_id`` and ``user_id``), or None. The simulator's ids are
    ``{prefix}u{index:07d}`` and ``{prefix}s{seed}-{index}-{n}``: the longest of a run is that
    of its last person (``people``: at most that many, spike visitors included) with up to a
    million events.

    >>> id_problem("run7-", 42, 5000) is None
    True
    >>> id_problem("x" * 113, 42, 5000) is None
    True
    >>> print(id_problem("x" * 114, 42, 5000))
    the --id-prefix of 114 characters makes event ids of up to 129 characters, longer than \
the event schema's 128 for event_id: the workers would dead-letter them; give at most 113 \
characters (with --seed 42 and 5,000 people)
    """
    from stream_app.contract import load_contract  # noqa: PLC0415

    contract = load_contract()
    props = contract.schema(contract.stream_topic("click"))["properties"]
    last = max(people - 1, 0)
    fixed = {"event_id": len(f"s{seed}-{last}-") + MAX_EVENT_DIGITS,
             "user_id": len(f"u{last:07d}")}
    limits = {k: props[k]["maxLength"] for k in fixed if "maxLength" in props[k]}
    room = min((limit - fixed[k] for k, limit in limits.items()), default=len(id_prefix))
    for name, limit in limits.items():
        if len(id_prefix) + fixed[name] > limit:
            what = "event ids" if name == "event_id" else "user ids"
            return (f"the --id-prefix of {len(id_prefix)} characters makes {what} of up to "
                    f"{len(id_prefix) + fixed[name]} characters, longer than the event "
                    f"schema's {limit} for {name}: the workers would dead-letter them; give "
                    f"at most {max(room, 0)} characters (with --seed {seed} and "
                    f"{plural(people, 'person', 'people')})")
    return None


@click.command("simulate")
@click.option("--users", type=click.IntRange(min=0), default=None,
              help="people taking part, invitees included (default: config users); an "
                   "injected spike's extra visitors come on top")
@click.option("--days", type=FiniteFloatRange(min=0, min_open=True), default=None,
              help="length of the run (default: config)")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--start", default=None, help="ISO-8601 start (default: config start)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("var/sim.jsonl.gz"), show_default=True,
              help=".jsonl or .jsonl.gz (one event per line)")
@click.option("--truth", "truth_out", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="ground-truth JSON (default: next to --out, .truth.json)")
@click.option("--inject", multiple=True, metavar="KIND:K=V,...",
              help="anomaly, e.g. lead_drop:channel=douyin,start=10d,duration=1d; "
                   "funnel_collapse:step=trial_booked,start=5d,duration=12h; "
                   "spike:start=3d,duration=2h,factor=10 (repeatable)")
@click.option("--set", "sets", multiple=True, metavar="PATH=VALUE",
              help="override config/simulator.yaml, e.g. --set lead.window_days=7 (repeatable)")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), default=None, help="simulator YAML (default: config/simulator.yaml)")
@click.option("--tenants", default=None, metavar="A,B,...",
              help="tenant ids, people spread evenly (default: config tenants, 'default'); "
                   "letters, digits, _ and - (the event schema's tenant pattern)")
@click.option("--id-prefix", default="",
              help="prefix of user ids and event ids (refused when the ids would be longer "
                   "than the event schema allows)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def command(users: int | None, days: float | None, seed: int, start: str | None, out: Path,
            truth_out: Path | None, inject: tuple[str, ...], sets: tuple[str, ...],
            config_path: Path | None, tenants: str | None, id_prefix: str, quiet: bool) -> None:
    """Simulate learners of an education company and write their events to --out."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from stream_app.errors import StreamAppError  # noqa: PLC0415
    from stream_app.events import TS_MAX_MS, parse_ts  # noqa: PLC0415
    from stream_app.sim import (  # noqa: PLC0415
        Simulator,
        load_sim_config,
        parse_injection,
        write_json,
        write_jsonl,
    )
    from stream_app.sim.rhythm import DAY_MS  # noqa: PLC0415

    if truth_out is not None and truth_out.resolve() == out.resolve():
        raise click.BadParameter("the ground truth would overwrite the events: give it "
                                 "another path (default: next to --out)", param_hint="--truth")
    overrides: dict[str, object] = {}
    origins: dict[str, str] = {}   # where each override came from, for the error messages
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq:
            raise click.BadParameter(f"{item!r} is not PATH=VALUE", param_hint="--set")
        overrides[key.strip()] = value
        origins[key.strip()] = f"--set {item}"
    for key, value, option in (("users", users, "--users"), ("days", days, "--days"),
                               ("start", start, "--start")):
        if value is not None:
            overrides[key] = value
            origins[key] = f"the {option} option"
    if tenants:
        overrides["tenants"] = [{"id": t.strip(), "weight": 1.0}
                                for t in tenants.split(",") if t.strip()]
        origins["tenants"] = "the --tenants option"
    try:
        cfg = load_sim_config(config_path, overrides, origins)
        injections = [parse_injection(s) for s in inject]
    except StreamAppError as exc:
        raise click.ClickException(str(exc)) from None
    for tenant in cfg.tenants:
        problem = tenant_problem(tenant.id)
        if problem is not None:
            if tenants:
                raise click.BadParameter(f"{problem}: every event of the file would be "
                                         "dead-lettered", param_hint="--tenants")
            raise click.ClickException(
                f"tenant in {config_path or 'config/simulator.yaml'}: {problem}")
    try:
        start_ms = parse_ts(cfg.start)
    except StreamAppError as exc:
        where = origins.get("start") or f"start in {config_path or 'config/simulator.yaml'}"
        raise click.ClickException(f"{where}: {exc}") from None
    duration = int(cfg.days * DAY_MS)
    if start_ms + duration > TS_MAX_MS:   # the events of a run lie in [start, start + days)
        try:
            end = dt.datetime.fromtimestamp((start_ms + duration) / 1000, dt.UTC)
            when = f"at {end:%Y-%m-%dT%H:%M:%SZ}"
        except (ValueError, OverflowError):
            when = "after the year 9999"
        raise click.ClickException(
            f"the run would end {when} (start {cfg.start} + {cfg.days:g} days), "
            "after the accepted event time 2000..2100: its events from 2100-01-01 on would "
            "be dead-lettered (ts_out_of_range); give fewer --days or an earlier --start")
    # a spike brings up to (factor - 1) x the run's people on top (its window's arrivals)
    growth = sum(min(max(f - 1.0, 0.0), 1e6) for f in (
        (inj.factor if inj.factor is not None
         else getattr(cfg.anomalies.get("spike"), "factor", 1.0))
        for inj in injections if inj.kind == "spike"))
    problem = id_problem(id_prefix, seed, math.ceil(cfg.users * (1 + growth)))
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--id-prefix")
    for spec, inj in zip(inject, injections, strict=True):
        why = inj.outside(start_ms, start_ms + duration)
        if why is not None:
            raise click.BadParameter(f"{spec!r} would never happen: {why}",
                                     param_hint="--inject")
    sim = Simulator(cfg, seed=seed, injections=injections, id_prefix=id_prefix)
    try:
        events = sim.events(start_ms, duration)
    except StreamAppError as exc:
        raise click.ClickException(str(exc)) from None
    wall0 = time.perf_counter()
    with Progress(TextColumn("[bold]simulate[/]"), BarColumn(),
                  TextColumn("day {task.fields[day]:.1f}/{task.fields[days]:g}"),
                  TextColumn("{task.fields[events]:,} events"), TimeElapsedColumn(),
                  disable=quiet) as progress:
        task = progress.add_task("simulate", total=duration, day=0.0, days=cfg.days, events=0)

        def tick(n: int, ev: dict) -> None:
            done = ev["ts"] - start_ms
            progress.update(task, completed=done, day=done / DAY_MS, events=n)

        n = write_jsonl(events, out, progress=tick)
        progress.update(task, completed=duration, day=cfg.days, events=n)
    elapsed = time.perf_counter() - wall0
    truth = sim.ground_truth()
    truth["config"] = {"users": cfg.users, "days": cfg.days, "start": cfg.start,
                       "overrides": {k: str(v) for k, v in overrides.items()}}
    tpath = truth_out or truth_path_for(out)
    write_json(truth, tpath)
    rows = sim.summary()
    total = rows[0] if rows else {"people": 0, "leads": 0, "buyers": 0}
    if not quiet:
        _print_summary(rows, cfg)
    click.echo(f"wrote {plural(n, 'event')} of {plural(total['people'], 'person', 'people')} "
               f"({total['leads']:,} "
               f"registered, {total['buyers']:,} bought) to {out} in {elapsed:.1f}s "
               f"({n / max(elapsed, 1e-9):,.0f}/s)")
    click.echo(f"ground truth: {tpath}"
               + (f" ({plural(len(injections), 'injected anomaly', 'injected anomalies')})"
                  if injections else ""))


def _print_summary(rows: list[dict], cfg: object) -> None:
    """Channel volume and quality of the run, zh/en labels from the config."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    table = Table(title="channels 渠道", box=None)
    for col in ("channel", "people", "leads", "rate", "trials", "buyers", "conv", "drop"):
        table.add_column(col, justify="left" if col == "channel" else "right", no_wrap=True)
    channels = getattr(cfg, "channels", {})
    for r in rows:
        spec = channels.get(r["channel"])
        name = f"{r['channel']} {spec.zh}" if spec is not None else r["channel"]
        table.add_row(Text(name), f"{r['people']:,}", f"{r['leads']:,}", f"{r['lead_rate']:.0%}",
                      f"{r['trials']:,}", f"{r['buyers']:,}", f"{r['conversion']:.1%}",
                      f"{r['dropped']:,}")
    Console().print(table)
