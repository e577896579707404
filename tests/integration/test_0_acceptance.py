"""The Foundation issue's acceptance example. It uses the issue's own time (2024-05-01) while
the worker's clock is shared by the whole session and may already be later (other tests ran
first): then the clock sweep churns u1 right after, so Redis is checked against u1's newest
activity change, and the Redis timeline must hold u1's newest changes (the full history is
on `tags.changes`)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from stream_app.config import Settings
from tests.helpers import wait_until

pytestmark = pytest.mark.integration


def test_acceptance_course_view_gives_activity_tag(stack, harness, tags_reader):
    """The issue's example: one course_view for u1 -> activity tag change + `stream-app tags`."""
    harness.send("click", {"event_id": "e1", "user_id": "u1", "ts": "2024-05-01T10:00:00+08:00",
                           "type": "course_view", "props": {}})
    change = tags_reader.wait_for(user_id="u1", tag_id="activity")[0]
    assert change["old"] is None and change["new"] == "low"
    assert change["family"] == "activity"
    assert change["rule_version"]
    assert change["trigger"] == "e1"
    # Redis keeps the newest changes (the stack turns the opt-in timeline on); the topic has all
    keep = int(stack.settings_env().get("STREAM_APP_REDIS_TIMELINE", Settings().redis_timeline))
    assert keep > 0, "the integration stack runs with the Redis timeline on"

    def timeline_is_newest() -> bool:
        mine = {c["event_id"]: c for c in tags_reader.where(user_id="u1")}.values()
        want = [(c["tag_id"], c["new"]) for c in sorted(mine, key=lambda c: -c["seq"])][:keep]
        got = [(c["tag_id"], c["new"])
               for c in harness.store.timeline("default", "u1", limit=100)]
        return bool(want) and got == want and len(got) <= keep

    wait_until(timeline_is_newest,
               what=f"u1's Redis timeline = its newest {keep} changes on tags.changes")

    def shown():
        latest = tags_reader.where(user_id="u1", tag_id="activity")[-1]["new"]
        out = subprocess.run([sys.executable, "-m", "stream_app", "tags", "u1", "--json"],
                             env={**os.environ, **stack.settings_env()}, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return orjson.loads(out.stdout).get("tag:activity") == latest

    wait_until(shown, timeout=60, interval=1.0, what="`stream-app tags u1` shows the activity")
