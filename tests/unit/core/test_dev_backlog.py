"""``stream-app dev``'s summary shows the backlog: input events produced but not processed
(committed) yet by the workers' group, read once per summary in the background."""

from __future__ import annotations

import os
import threading
from collections import Counter, deque

from rich.console import Console

from stream_app.cli.dev_cmd import Backlog, PlainFeed, _render
from stream_app.kafka_io import backlog_of

A0, A1, B0 = ("events.click", 0), ("events.click", 1), ("events.order", 0)


def test_backlog_of_partitions() -> None:
    marks = {A0: (0, 100), A1: (40, 50), B0: (0, 10)}
    # A0: committed 90 of a true end of 120 (tansu reported 100); A1: nothing committed,
    # read from the log start 40; B0: committed past the reported end (tansu) -> 0
    assert backlog_of(marks, {A0: 120, A1: None, B0: 10}, {A0: 90, A1: -1, B0: 12}) == 40
    assert backlog_of({A0: (0, 0)}, {}, {}) == 0
    assert backlog_of({A0: (5, 9)}, {A0: -1}, {}) == 4   # no checked end: the high watermark


def test_a_failed_reading_keeps_the_last() -> None:
    readings = iter([7])

    def measure() -> int:
        return next(readings)   # StopIteration the second time: like a busy broker

    b = Backlog(measure)
    b.update()
    b.update()
    assert b.text() == "backlog 7 events"


def test_run_reads_at_once_then_stops() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def measure() -> int:
        calls.append(1)
        stop.set()
        return 1

    Backlog(measure, every_s=60.0).run(stop)   # returns: stop is set
    assert calls == [1]


def test_summaries_show_the_backlog() -> None:
    console = Console(width=300, record=True)
    backlog = Backlog(iter([1_200, 900]).__next__, every_s=10.0)
    feed = PlainFeed(console, started=0.0, every_s=0.0, backlog=backlog)
    feed.update(Counter(events=5000, tags=40), rate=100.0, now=10.0)
    backlog.update()
    backlog.update()
    feed.update(Counter(events=6000, tags=50), rate=100.0, now=20.0)
    lines = console.export_text().splitlines()
    assert lines[0].endswith(", 0 DLQ, backlog ?"), lines
    assert lines[1].endswith(", 0 DLQ, backlog 900 events (-300 in 10s)"), lines
    live = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    live.print(_render(Counter(events=6000), deque(),
                       deque(), 0.0, 100.0, backlog))
    table = live.export_text()
    assert "not processed yet (backlog)" in table and "900 events (-300 in 10s)" in table
