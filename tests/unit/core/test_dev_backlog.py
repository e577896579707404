"""``stream-app dev``'s summary shows the backlog: input events produced but not processed
(committed) yet by the workers' group, read once per summary in the background."""

from __future__ import annotations

import os
import re
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
    t = [0.0]
    backlog = Backlog(iter([1_200, 900]).__next__, every_s=10.0, clock=lambda: t[0])
    feed = PlainFeed(console, started=0.0, every_s=0.0, backlog=backlog)
    feed.update(Counter(events=5000, tags=40), rate=100.0, now=10.0)
    backlog.update()
    t[0] = 10.0
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


class SlowBroker:
    """A backlog measure that takes ``took_s`` seconds of a fake clock (a loaded broker)."""

    def __init__(self, took_s: float) -> None:
        self.t, self.took_s, self.n = 0.0, took_s, 290_000

    def clock(self) -> float:
        return self.t

    def measure(self) -> int:
        self.t += self.took_s
        self.n += 3_324
        return self.n


def test_a_slow_reading_is_not_shown_again_as_new() -> None:
    """QA40 F5.4: readings of 14 s under load, a summary line every 10 s: every fourth line
    or so printed the reading before it again, old change included, as if it were new."""
    broker = SlowBroker(took_s=14.0)
    backlog = Backlog(broker.measure, every_s=10.0, clock=broker.clock)
    lines: list[str] = []
    next_reading = 0.0
    for line_at in range(10, 150, 10):   # the summary's lines; readings back to back
        while next_reading + broker.took_s <= line_at:
            broker.t = next_reading
            backlog.update()
            next_reading = broker.t
        broker.t = float(line_at)
        lines.append(backlog.text())
    assert all(a != b for a, b in zip(lines, lines[1:], strict=False)), lines
    assert "backlog 296,648 events (+3,324 in 14s)" in lines    # the change over its 14 s
    stale = [line for line in lines if "old)" in line]
    assert stale and all(re.fullmatch(r"backlog [\d,]+ events \(reading 1\d s old\)", line)
                         for line in stale), stale


def test_a_failed_reading_ages_the_last() -> None:
    t = [0.0]
    readings = iter([7])
    b = Backlog(lambda: next(readings), every_s=10.0, clock=lambda: t[0])
    b.update()
    t[0] = 25.0
    b.update()   # the broker did not answer
    assert b.text() == "backlog 7 events (reading 25 s old)"


class Stop:
    """A stop event that records how long :meth:`Backlog.run` waits, and stops after ``n``."""

    def __init__(self, n: int) -> None:
        self.waits: list[float] = []
        self.n = n

    def is_set(self) -> bool:
        return len(self.waits) >= self.n

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return self.is_set()


def test_readings_start_every_interval_or_back_to_back() -> None:
    """A reading starts every ``every_s`` seconds, not ``every_s`` after the last one ended
    (that made the readings fall behind the summary lines); a slower one is followed at once."""
    for took, wait in ((3.0, 7.0), (14.0, 0.0)):
        broker = SlowBroker(took_s=took)
        stop = Stop(2)
        Backlog(broker.measure, every_s=10.0, clock=broker.clock).run(stop)  # type: ignore[arg-type]
        assert stop.waits == [wait, wait]
