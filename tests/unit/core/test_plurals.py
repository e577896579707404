"""Counts in command output agree with their noun: "1 event", "2 events" (it said "1 events",
"1 users", "skipped 1 lines"). The wording lives in ``stream_app.text.plural``."""

from __future__ import annotations

import gzip
import re
from collections import Counter

import orjson
from click.testing import CliRunner
from rich.console import Console

from stream_app.cli.dev_cmd import PlainFeed
from stream_app.cli.evaluate_cmd import command as evaluate
from stream_app.replay import ReplayStats
from stream_app.text import plural
from tests.unit.scoring.fixtures import lead_stream

#: a count of 1 and a plural noun: what must not be printed
ONE_AND_PLURAL = re.compile(r"(?<![\d,.])1 (events|users|labels|labelled snapshots|lines|"
                            r"tag changes|tags|DLQ records)\b")


def test_plural() -> None:
    assert [plural(n, "event") for n in (0, 1, 2, 1000)] == [
        "0 events", "1 event", "2 events", "1,000 events"]
    assert plural(1, "person", "people") == "1 person"
    assert plural(2, "person", "people") == "2 people"


def test_replay_skipped_one_line() -> None:
    stats = ReplayStats()
    stats.skip(3, "not JSON")
    assert stats.skipped_text() == "; skipped 1 line (line 3: not JSON)"
    stats.skip(4, "not JSON")
    assert stats.skipped_text().startswith("; skipped 2 lines")


def test_dev_summary_of_one_event() -> None:
    console = Console(width=200, record=True)
    feed = PlainFeed(console, started=0.0, every_s=0.0)
    feed.update(Counter(events=1, tags=1, dlq=1), rate=1.0, now=1.0)
    text = console.export_text()
    assert "1 event (1/s), 1 tag change," in text, text
    assert not ONE_AND_PLURAL.search(text), text


def test_evaluate_of_one_user(tmp_path) -> None:
    path = tmp_path / "one.jsonl.gz"
    with gzip.open(path, "wb") as f:
        for e in lead_stream(1, seed=9):
            f.write(orjson.dumps(e.to_dict()) + b"\n")
    res = CliRunner().invoke(evaluate, [str(path), "-t", "convert",
                                        "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    first = res.output.splitlines()[0]
    assert " events, 1 user in " in first, first
    assert not ONE_AND_PLURAL.search(res.output), res.output
