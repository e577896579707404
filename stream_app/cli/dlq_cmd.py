"""``stream-app dlq show|export`` — read the dead-letter topic (``events.dlq``).

Every input record the worker cannot process goes there with the reason, the detail, its
source position and its original key and value bytes (docs/GUARANTEES.md section 6). ``show``
prints them (or their counts by reason); ``export`` writes the JSON ones back as a
``stream-app replay`` file, so that records fixed by hand (or by the producer's team) can be
sent again.

Example:
    >>> matches({"reason": "bad_ts", "source_topic": "events.click"}, ("bad_ts",), ())
    True
    >>> matches({"reason": "late", "source_topic": "events.click"}, (), ("study",))
    False
"""

from __future__ import annotations

import gzip
import heapq
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from stream_app.config import get_settings
from stream_app.text import plural

DLQ_TOPIC = "events.dlq"


def matches(rec: dict[str, Any], reasons: tuple[str, ...], sources: tuple[str, ...]) -> bool:
    """Whether a dead-letter record passes the ``--reason`` and ``--source`` filters (a
    source is a topic, ``events.click``, or its stream, ``click``; empty: all)."""
    if reasons and rec.get("reason") not in reasons:
        return False
    topic = str(rec.get("source_topic", ""))
    return not sources or topic in sources or topic.removeprefix("events.") in sources


def records(bootstrap: str, reasons: tuple[str, ...], sources: tuple[str, ...]
            ) -> Iterator[dict[str, Any]]:
    """The dead-letter records on the broker that pass the filters, oldest first per
    partition (a record that is not a dead-letter record is skipped)."""
    from stream_app.kafka_io import read_to_end  # noqa: PLC0415

    for msg in read_to_end(bootstrap, DLQ_TOPIC):
        try:
            rec = orjson.loads(msg.value())
        except (orjson.JSONDecodeError, TypeError):
            continue
        if isinstance(rec, dict) and "reason" in rec and matches(rec, reasons, sources):
            yield rec


_FILTERS = [
    click.option("--reason", "reasons", multiple=True,
                 help="only this reason (repeat for several): bad_json, schema, bad_ts, "
                      "bad_label, late, tenant_mismatch, ..."),
    click.option("--source", "sources", multiple=True,
                 help="only records from this input topic or stream (events.click or "
                      "click; repeat for several)"),
    click.option("--bootstrap", default=None,
                 help="Kafka bootstrap servers (default: STREAM_APP_BROKER_URL)"),
]


def _filters(fn: Any) -> Any:
    for opt in reversed(_FILTERS):
        fn = opt(fn)
    return fn


@click.group("dlq")
def command() -> None:
    """Inspect dead-lettered input records (events.dlq) and export them for a re-send."""


@command.command("show")
@_filters
@click.option("--last", default=20, show_default=True, type=click.IntRange(min=0),
              help="print the newest N matching records (0: all)")
@click.option("--summary", is_flag=True, help="only the counts by reason and source topic")
@click.option("--json", "as_json", is_flag=True,
              help="one JSON object per record (the dead-letter record, with its original "
                   "value decoded as text under value_text)")
def show(reasons: tuple[str, ...], sources: tuple[str, ...], bootstrap: str | None,
         last: int, summary: bool, as_json: bool) -> None:
    """Print the dead-lettered records (reason, source position, detail, original value),
    then their counts by reason and source topic.

    Example: ``stream-app dlq show --reason schema --source click --last 5``"""
    from stream_app.dlq import describe, original  # noqa: PLC0415

    counts: Counter[tuple[str, str]] = Counter()
    heap: list[tuple[int, int, dict[str, Any]]] = []    # the newest ``last`` by their ts
    for i, rec in enumerate(records(bootstrap or get_settings().kafka_bootstrap, reasons,
                                    sources)):
        counts[(str(rec.get("reason")), str(rec.get("source_topic")))] += 1
        if not summary:
            heapq.heappush(heap, (int(rec.get("ts") or 0), i, rec))
            if last and len(heap) > last:
                heapq.heappop(heap)
    kept = [rec for _, _, rec in sorted(heap, key=lambda t: (t[0], t[1]))]
    for rec in kept:
        if as_json:
            text = original(rec)[1].decode("utf-8", "backslashreplace")
            click.echo(orjson.dumps(dict(rec, value_text=text)).decode())
        else:
            click.echo(describe(rec))
    if as_json:
        return
    total = sum(counts.values())
    shown = f", the newest {len(kept)} above" if kept and len(kept) < total else ""
    click.echo(f"{plural(total, 'dead-lettered record')} in {DLQ_TOPIC}{shown}"
               + (":" if counts else ""))
    for (reason, topic), n in counts.most_common():
        click.echo(f"  {n:>8,}  {reason:16} {topic}")


@command.command("export")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@_filters
def export(out: Path, reasons: tuple[str, ...], sources: tuple[str, ...],
           bootstrap: str | None) -> None:
    """Write the dead-lettered records whose original value is a JSON object to OUT as a
    ``stream-app replay`` file (JSON lines, gzip if OUT ends in .gz): the original event
    with the ``stream`` it came from. Fix the lines, then send them again with
    ``stream-app replay OUT``. Records that are not JSON objects (``bad_json``,
    ``not_object``) cannot be written as events: they are counted, and ``dlq show``
    prints them.

    Example: ``stream-app dlq export var/dlq-schema.jsonl --reason schema``"""
    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.dlq import replay_doc  # noqa: PLC0415

    contract = load_contract()
    streams = {t: contract.stream_of(t) for t in contract.input_topics()}
    written, unreadable = 0, Counter()
    opener = gzip.open if str(out).endswith(".gz") else open
    out.parent.mkdir(parents=True, exist_ok=True)
    with opener(out, "wb") as f:
        for rec in records(bootstrap or get_settings().kafka_bootstrap, reasons, sources):
            doc = replay_doc(rec, streams)
            if doc is None:
                unreadable[str(rec.get("reason"))] += 1
                continue
            f.write(orjson.dumps(doc) + b"\n")
            written += 1
    click.echo(f"wrote {plural(written, 'event')} to {out}")
    if unreadable:
        click.echo(f"not written ({plural(sum(unreadable.values()), 'record')} whose original "
                   "is not a JSON object; see `stream-app dlq show`): "
                   + ", ".join(f"{r} {n:,}" for r, n in unreadable.most_common()))
    if written:
        click.echo(f"fix them, then send them again: stream-app replay {out}")
