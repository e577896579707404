"""``stream-app replay FILE`` — produce an event file to the input topics.

Delivery is counted from the producer's delivery reports (the broker's acknowledgements), not
from produce calls. Ctrl-C (or SIGTERM) stops reading, waits up to :data:`FLUSH_ON_STOP_S`
seconds for what was queued, then says how many records were delivered and the line to resume
from (``--start-line``). A line the broker cannot take (larger than the message size limit,
...) is reported with its line number and size and skipped; the run goes on. The exit status
is 1 when a line was skipped or a record not delivered, 130 after an interruption.

Example:
    >>> resume_command(Path("var/day.jsonl.gz"), 31051, speed=10.0, bootstrap=None)
    'stream-app replay var/day.jsonl.gz --start-line 31051 --speed 10'
"""

from __future__ import annotations

import functools
import shlex
import time
from pathlib import Path
from typing import Any

import click

from stream_app.cli.option_types import FiniteFloatRange
from stream_app.config import get_settings
from stream_app.text import plural

#: seconds an interrupted replay waits for the records it queued before it reports
FLUSH_ON_STOP_S = 10.0
#: seconds a finished replay waits for its last records
FLUSH_AT_END_S = 60.0
#: lines between two progress updates (and producer polls: delivery reports come in then)
PROGRESS_EVERY = 500


def resume_command(path: Path, line: int, speed: float, bootstrap: str | None) -> str:
    """The command that replays ``path`` from ``line`` with the same options."""
    args = ["stream-app", "replay", str(path), "--start-line", str(line)]
    if speed:
        args += ["--speed", f"{speed:g}"]
    if bootstrap:
        args += ["--bootstrap", bootstrap]
    return shlex.join(args)


def size_reason(size: int, producer_limit: int, broker_limit: int | None) -> str:
    """Why a line too large for Kafka was skipped: its size and the limits.

    >>> size_reason(3_145_828, 1_000_000, 1_048_588)
    '3,145,828 bytes, over the message size limit (producer message.max.bytes 1,000,000; \
broker max.message.bytes 1,048,588)'
    >>> size_reason(3_145_828, 1_000_000, None)
    '3,145,828 bytes, over the message size limit (producer message.max.bytes 1,000,000; \
broker max.message.bytes unknown)'
    """
    broker = f"{broker_limit:,}" if broker_limit is not None else "unknown"
    return (f"{size:,} bytes, over the message size limit (producer message.max.bytes "
            f"{producer_limit:,}; broker max.message.bytes {broker})")


@click.command("replay")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--speed", type=FiniteFloatRange(min=0), default=0, show_default=True,
              help="N times event time (e.g. 3600 = an hour per second); 0 = as fast as possible")
@click.option("--start-line", type=click.IntRange(min=1), default=1, show_default=True,
              help="first line to send (lines before it are passed over): resume an "
                   "interrupted replay from the line it printed")
@click.option("--bootstrap", default=None, help="Kafka bootstrap (default: from settings)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def command(path: Path, speed: float, start_line: int, bootstrap: str | None,
            quiet: bool) -> None:
    """Produce the events of PATH (JSON lines, .gz ok; each with a "stream" field).

    Ctrl-C waits up to 10 s for the queued records, then prints how many were delivered and
    the --start-line to resume from. Exit status 1 if a line was skipped or a record not
    delivered, 130 if interrupted."""
    from confluent_kafka import KafkaError, KafkaException  # noqa: PLC0415
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn  # noqa

    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.errors import EventError  # noqa: PLC0415
    from stream_app.events import parse_ts  # noqa: PLC0415
    from stream_app.kafka_io import (  # noqa: PLC0415
        connected_producer,
        produce,
        producer_message_limit,
        topic_message_limit,
    )
    from stream_app.replay import (  # noqa: PLC0415
        Deliveries,
        ReplayStats,
        count_lines,
        iter_file,
        route,
        skip_reason,
    )
    from stream_app.services.signals import terminate_as_interrupt  # noqa: PLC0415

    settings = get_settings()
    contract = load_contract()
    bs = bootstrap or settings.kafka_bootstrap
    try:
        total = count_lines(path)
    except (OSError, EOFError) as exc:
        what = "ended early" if isinstance(exc, EOFError) else "cannot be read"
        raise click.ClickException(f"{path} {what}: {exc} (a truncated .gz file?); nothing "
                                   "was sent") from None
    if start_line > total:      # nothing of what was meant to be resumed would be sent
        raise click.ClickException(f"--start-line {start_line} is past the end of {path} "
                                   f"({plural(total, 'line')})")
    producer = connected_producer(bs)
    producer_limit = producer_message_limit(bs)
    broker_limits: dict[str, int | None] = {}
    sizes: dict[int, tuple[int, str]] = {}     # line -> (size, topic) while in flight

    def broker_limit(topic: str) -> int | None:
        if topic not in broker_limits:
            broker_limits[topic] = topic_message_limit(bs, topic)
        return broker_limits[topic]

    def refused(n: int, err: Any) -> str:
        size, topic = sizes.get(n, (0, ""))
        if err.name() in ("MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE"):
            return size_reason(size, producer_limit, broker_limit(topic))
        return f"{size:,} bytes, refused by the broker: {err.str()}"

    stats = ReplayStats()
    deliveries = Deliveries(stats, reason_of=refused)

    def on_delivery(n: int, err: Any, msg: Any) -> None:
        deliveries.report(n, err, msg)
        if err is None:
            sizes.pop(n, None)

    todo = max(0, total - (start_line - 1))
    start_wall = time.monotonic()
    next_unread: int | None = start_line
    interrupted = False
    with terminate_as_interrupt(), \
            Progress(TextColumn("[bold]replay[/]"), BarColumn(),
                     TextColumn("{task.completed:,}/{task.total:,} lines"),
                     TextColumn("{task.fields[rate]:,.0f}/s"), TimeRemainingColumn(),
                     disable=quiet) as progress:
        task = progress.add_task("replay", total=todo, rate=0.0)
        try:
            for n, raw, doc in iter_file(path):
                if n < start_line:
                    continue
                next_unread = n
                routes = list(route(doc, contract)) if isinstance(doc, dict) else []
                if not routes:
                    stats.skip(n, skip_reason(doc, contract))
                    next_unread = n + 1
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
                sizes[n] = (len(raw), topic)
                try:
                    produce(producer, topic, key or None, raw,
                            on_delivery=functools.partial(on_delivery, n))
                except KafkaException as exc:
                    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) \
                        else None
                    stats.skip(n, refused(n, err) if err is not None else
                               f"{len(raw):,} bytes, not produced: {exc}")
                    sizes.pop(n, None)
                else:
                    deliveries.sent(n)     # its report comes from a later poll or flush
                    stats.sent += 1
                next_unread = n + 1
                if n % PROGRESS_EVERY == 0:
                    producer.poll(0)
                    elapsed = time.monotonic() - start_wall
                    progress.update(task, completed=n - start_line + 1,
                                    rate=deliveries.delivered / max(elapsed, 1e-6))
            next_unread = None
        except KeyboardInterrupt:
            interrupted = True
        try:
            producer.flush(FLUSH_ON_STOP_S if interrupted else FLUSH_AT_END_S)
        except KeyboardInterrupt:   # a second Ctrl-C: stop waiting
            interrupted = True
        if not interrupted:
            progress.update(task, completed=todo)
    elapsed = time.monotonic() - start_wall
    _report(path, stats, deliveries, elapsed, interrupted, next_unread, speed, bootstrap)


def _report(path: Path, stats: Any, deliveries: Any, elapsed: float, interrupted: bool,
            next_unread: int | None, speed: float, bootstrap: str | None) -> None:
    """The summary line, then, when not everything went, an ``Error:`` with the line to
    resume from (exit status 1, or 130 after an interruption)."""
    delivered = deliveries.delivered
    click.echo(f"delivered {plural(delivered, 'event')} in {elapsed:.1f}s "
               f"({delivered / max(elapsed, 1e-6):,.0f}/s){stats.skipped_text()}")
    lost = deliveries.in_flight() + len(deliveries.failed)
    resume = deliveries.resume_line(next_unread)
    problems = []
    if interrupted:
        problems.append("interrupted" + (f" before line {next_unread:,}" if next_unread else ""))
    if lost:
        why = next(iter(deliveries.failed.values()), None)
        problems.append(f"{plural(lost, 'event')} not delivered"
                        + (f" ({why})" if why else f" within {FLUSH_ON_STOP_S:g} s"
                           if interrupted else " (broker unreachable?)"))
    if stats.skipped:
        problems.append(f"{plural(stats.skipped, 'line')} skipped")
    if not problems:
        return
    text = "; ".join(problems)
    if resume is not None:
        text += (f". Resume from line {resume:,}: "
                 f"`{resume_command(path, resume, speed, bootstrap)}`")
    elif stats.skipped and not delivered:
        text += f": nothing was sent, every line of {path} was skipped"
    exc = click.ClickException(text)
    exc.exit_code = 130 if interrupted else 1
    raise exc
