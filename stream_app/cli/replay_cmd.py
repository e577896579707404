"""``stream-app replay FILE`` — produce an event file to the input topics."""

from __future__ import annotations

import time
from pathlib import Path

import click

from stream_app.config import get_settings
from stream_app.text import plural


@click.command("replay")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--speed", type=click.FloatRange(min=0), default=0.0,
              help="N times event time (e.g. 3600 = an hour per second); 0 = as fast as possible")
@click.option("--bootstrap", default=None, help="Kafka bootstrap (default: from settings)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def command(path: Path, speed: float, bootstrap: str | None, quiet: bool) -> None:
    """Produce the events of PATH (JSON lines, .gz ok; each with a "stream" field)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn  # noqa

    from stream_app.contract import load_contract
    from stream_app.events import parse_ts
    from stream_app.errors import EventError
    from stream_app.kafka_io import connected_producer, produce
    from stream_app.replay import ReplayStats, count_lines, iter_file, route, skip_reason

    settings = get_settings()
    contract = load_contract()
    producer = connected_producer(bootstrap or settings.kafka_bootstrap)
    stats = ReplayStats()
    total = count_lines(path)
    start_wall = time.monotonic()
    with Progress(TextColumn("[bold]replay[/]"), BarColumn(), TextColumn("{task.completed:,}/"
                  "{task.total:,} events"), TextColumn("{task.fields[rate]:,.0f}/s"),
                  TimeRemainingColumn(), disable=quiet) as progress:
        task = progress.add_task("replay", total=total, rate=0.0)
        for n, raw, doc in iter_file(path):
            routes = list(route(doc, contract)) if doc is not None else []
            if not routes:
                stats.skip(n, skip_reason(doc, contract))
                continue
            topic, key = routes[0]
            if speed > 0:
                try:
                    ts = parse_ts(doc.get("ts"))
                except EventError:
                    ts = None
                if ts is not None:
                    if stats.first_ts is None:
                        stats.first_ts = ts
                    due = (ts - stats.first_ts) / 1000 / speed
                    wait = due - (time.monotonic() - start_wall)
                    if wait > 0:
                        producer.flush(wait)
                        time.sleep(max(0.0, due - (time.monotonic() - start_wall)))
            produce(producer, topic, key or None, raw)
            stats.sent += 1
            if stats.sent % 5000 == 0:
                producer.poll(0)
                elapsed = time.monotonic() - start_wall
                progress.update(task, completed=n, rate=stats.sent / max(elapsed, 1e-6))
        left = producer.flush(60)
        progress.update(task, completed=total)
    elapsed = time.monotonic() - start_wall
    click.echo(f"sent {plural(stats.sent, 'event')} in {elapsed:.1f}s "
               f"({stats.sent / max(elapsed, 1e-6):,.0f}/s){stats.skipped_text()}")
    if left:
        raise click.ClickException(f"{plural(left, 'event')} {'was' if left == 1 else 'were'} "
                                   "not delivered (broker unreachable?)")
    if stats.skipped and not stats.sent:
        raise click.ClickException(f"nothing was sent: every line of {path} was skipped")
