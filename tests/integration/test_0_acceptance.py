"""The Foundation issue's acceptance example, first in the session (the worker's clock is
shared by all integration tests and only moves forward; this one uses the issue's own time)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

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
    wait_until(lambda: harness.store.tags("default", "u1").get("activity") == "low",
               what="activity=low in Redis")
    out = subprocess.run([sys.executable, "-m", "stream_app", "tags", "u1", "--json"],
                         env={**os.environ, **stack.settings_env()}, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert orjson.loads(out.stdout)["tag:activity"] == "low"
