"""A restarted worker tags with the published rule set, never with its local rules first.

A worker reads ``rules.versions`` in a thread of its own; its first partition assignment waits
until that thread has read the published rule sets (``app/broadcast.py``,
``RULES_CATCH_UP_S``, ``apply_pending``) before any event is processed. QA29 F6: after a
kill -9 the restarted worker went on before it had read them, tagged ~600 events with its
local rules, then switched to the published set and backfilled: each of those users had a
tag the published set removed re-added, then removed again.

On a live stack: a rule set without ``last_campaign`` (a tag of the local ``config/rules``)
is published with ``stream-app rules apply --allow-removal``, and the running worker removes
that tag from a user who had it. The worker is killed (kill -9); while it is down, that user
and fresh users send clicks with a campaign (which the local rules tag as ``last_campaign``).
After the restart every change published for them carries the published rule set's version,
``last_campaign`` is not re-added to anybody, and no tag of theirs flips (one change per tag).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import (
    DAY,
    TIMELESS_ENV,
    Harness,
    TopicReader,
    event,
    running_stack,
    uid,
    wait_until,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
PARTITIONS = 2
REMOVED = "last_campaign"
#: users whose clicks wait on the broker while the worker is down
FRESH = 10


@pytest.fixture(scope="module")
def rules_stack():
    yield from running_stack(ROOT / "var" / f"test-rules-restart-{os.getpid()}",
                             partitions=PARTITIONS, worker_timeout=240,
                             env={**TIMELESS_ENV, "STREAM_APP_SWEEP_INTERVAL_S": "1"})


def cli(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream_app", *args],
                          env={**os.environ, **stack.settings_env()}, capture_output=True,
                          text=True, timeout=120)


def without_removed_tag(tmp_path: Path) -> Path:
    """A copy of config/rules whose channel.yaml lacks the ``last_campaign`` tag."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "config" / "rules", rules)
    channel = rules / "channel.yaml"
    text = channel.read_text()
    channel.write_text(text[:text.index(f"  - id: {REMOVED}\n")].rstrip() + "\n")
    return rules


def click(user: str, ts: int, campaign: str) -> dict:
    return event(user, "page_view", ts, {"channel": "wechat", "campaign": campaign})


def test_a_restarted_worker_tags_with_the_published_rules_not_its_local_ones(rules_stack,
                                                                              tmp_path):
    h = Harness(rules_stack)
    tags = TopicReader(rules_stack.bootstrap, "tags.changes", PARTITIONS)
    worker = rules_stack.workers[0]
    try:
        t = h.base_ts()
        old = uid("rr-old")
        h.send("click", click(old, t, "spring"))
        [had] = tags.wait_for(timeout=60, user_id=old, tag_id=REMOVED, new="spring")
        local = had["rule_version"]

        out = cli(rules_stack, "rules", "apply", str(without_removed_tag(tmp_path)),
                  "--allow-removal")
        assert out.returncode == 0, out.stdout + out.stderr
        published = re.search(r"published rule set (\S+) ", out.stdout)[1]
        assert published != local
        # the running worker switched: its backfill removed the tag from the user holding it
        [removed] = tags.wait_for(timeout=60, user_id=old, tag_id=REMOVED, new=None)
        assert removed["rule_version"] == published

        worker.kill()   # QA29 F6: kill -9, then a restart with events waiting
        fresh = [uid("rr-new") for _ in range(FRESH)]
        h.send("click", click(old, t + DAY, "summer"))
        for u in fresh:
            h.send("click", click(u, t + DAY, "summer"))
        seen = len(tags.poll())
        rules_stack.restart_worker(worker)
        worker.wait_ready(240)

        # every waiting event processed: the old user's second active day, the fresh users'
        # first campaign
        tags.wait_for(timeout=120, user_id=old, tag_id="activity", new="medium")
        for u in fresh:
            tags.wait_for(timeout=60, user_id=u, tag_id="first_campaign", new="summer")
        after = [r for r in tags.poll()[seen:] if r["user_id"] in {old, *fresh}]
        versions = Counter(r["rule_version"] for r in after)
        assert versions == {published: len(after)}, \
            f"changes after the restart by rule set (published {published}): {versions}"
        readded = [r for r in after if r["tag_id"] == REMOVED]
        assert readded == [], readded
        flips = {k: n for k, n in Counter((r["user_id"], r["tag_id"]) for r in after).items()
                 if n > 1}
        assert flips == {}, flips
        # and Redis holds what the published rules give (written in the background)
        projected = wait_until(lambda: (lambda held: held if all(
            v.get("first_campaign") for v in held.values()) else None)(
            {u: h.store.tags("default", u) for u in (old, *fresh)}), 30,
            what="the users' tags in Redis")
        assert [u for u, held in projected.items() if REMOVED in held] == []
    finally:
        tags.close()
        h.close()
