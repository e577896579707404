"""``stream_app_consumer_lag`` covers the partitions the group consumes and commits, not the
tables' changelogs a worker restores (QA31 F1: their size was reported as lag and paged)."""

from __future__ import annotations

from collections import namedtuple

from stream_app.app.consumer_lag import partition_lags, source_topics
from tests.unit.app.snippet import last_line

TP = namedtuple("TP", "topic partition")
CHANGELOG = TP("stream-app-users-changelog", 0)
CLICK0, CLICK1 = TP("events.click", 0), TP("events.click", 1)
SOURCES = {"events.click", "internal.ticks", "metrics.partials"}


def test_a_changelog_partition_is_not_lag_even_with_a_committed_offset() -> None:
    ends = {CHANGELOG: 14_833, CLICK0: 50}
    lags = partition_lags(ends, SOURCES, ends.get, {CLICK0: 50, CHANGELOG: 0})
    assert lags == {("events.click", 0): 0}


def test_a_partition_without_a_committed_offset_is_left_out() -> None:
    ends = {CLICK0: 120, CLICK1: 30}
    assert partition_lags(ends, SOURCES, ends.get, {CLICK0: 100, CLICK1: None}) == {
        ("events.click", 0): 20}


def test_an_unknown_end_offset_is_left_out_and_lag_is_never_negative() -> None:
    def highwater(tp: TP) -> int | None:
        if tp == CLICK1:
            raise KeyError(tp)
        return {CLICK0: 5}.get(tp)

    assigned = [CLICK0, CLICK1, TP("internal.ticks", 0)]
    committed = {CLICK0: 9, CLICK1: 3, TP("internal.ticks", 0): 1}
    assert partition_lags(assigned, SOURCES, highwater, committed) == {("events.click", 0): 0}


def test_source_topics_are_the_agents_topics() -> None:
    class Agent:
        def __init__(self, *names: str) -> None:
            self.names = names

        def get_topic_names(self) -> tuple[str, ...]:
            return self.names

    assert source_topics([Agent("events.click", "internal.ticks"), Agent("metrics.partials"),
                          Agent()]) == frozenset(SOURCES)


#: the worker's report_lag with a consumer assigned input, tick, partials, changelog and Faust's
#: leader-topic partitions (committed or not): only the agents' committed partitions are set
REPORT = r"""
from faust.types import TP
from stream_app import metrics
from stream_app.app import agents
from stream_app.app.main import app

class Consumer:
    ends = {TP("events.click", 0): 120, TP("events.click", 1): 30, TP("internal.ticks", 0): 9,
            TP("stream-app-users-changelog", 0): 7357, TP("metrics.partials", 0): 4,
            TP("stream-app-__assignor-__leader", 0): 3}
    _committed_offset = {TP("events.click", 0): 100, TP("internal.ticks", 0): 9,
                         TP("metrics.partials", 0): 4, TP("stream-app-__assignor-__leader", 0): 1}
    def assignment(self):
        return set(self.ends)
    def highwater(self, tp):
        return self.ends[tp]

metrics.set_consumer_lag({("stream-app-users-changelog", 1): 7476})   # an earlier report
app._consumer = Consumer()
agents.report_lag()
body = metrics.render()[0].decode()
print(sorted(line for line in body.splitlines() if line.startswith("stream_app_consumer_lag")))
"""


def test_the_worker_reports_its_source_partitions_only(tmp_path) -> None:
    assert last_line(REPORT, tmp_path) == str(sorted([
        'stream_app_consumer_lag{partition="0",topic="events.click"} 20.0',
        'stream_app_consumer_lag{partition="0",topic="internal.ticks"} 0.0',
        'stream_app_consumer_lag{partition="0",topic="metrics.partials"} 0.0',
    ]))
