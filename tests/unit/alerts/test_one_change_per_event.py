"""One tag-change record per tag and event, from the value before the event to the value
after it. The engine applies an event with the scores before it, then the tags that read
scores run again with the event's new scores (``score_with_tags``): before session 25 each
pass sent its own records, so one event could send ``high -> medium`` and then ``medium ->
high`` (a third of the ``intent`` records of a 1,000-user replay), and the second pass's
hysteresis (``prev()``) started from the first pass's value instead of the one before the
event. A simulator replay with models going live, the way the worker runs it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.unit.alerts.live_replay import LiveReplay
from tests.unit.scoring.test_fast_path import _sim_events


@pytest.fixture(scope="module")
def steps() -> list[Any]:
    lr = LiveReplay()
    return [s for s in lr.steps(_sim_events(users=400, days=30, seed=9)) if s.kind == "event"]


def test_the_replay_has_score_driven_changes(steps) -> None:
    live = [s for s in steps if s.scoring is not None
            and s.scoring.source.get("convert", "rules") != "rules"]
    assert live                                          # the convert model went live
    assert any(c["reason"] == "score" for s in steps for c in s.changes or ())


def test_each_event_sends_one_record_per_tag_from_before_to_after(steps) -> None:
    for s in steps:
        per_tag = Counter(c["tag_id"] for c in s.changes)
        assert max(per_tag.values(), default=0) <= 1, (s.uid, s.ts, s.changes)
        after = s.state.get("tags") or {}
        for c in s.changes:
            assert c["old"] == s.before.get(c["tag_id"]), c
            assert c["new"] == after.get(c["tag_id"]), c
            assert c["old"] != c["new"], c
        moved = {t for t in set(s.before) | set(after) if s.before.get(t) != after.get(t)}
        assert moved == set(per_tag), (s.uid, s.ts, moved, per_tag)
