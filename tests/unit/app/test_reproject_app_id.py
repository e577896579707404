"""The ticks topic is shared by every app on a broker: a worker acts only on its own app's
``redis-rebuild --live`` requests (``<id>@<app id>``; QA40 F4: a rebuild run with a wrong
``STREAM_APP_APP_ID`` held the real workers' Redis writes for ``LIVE_PAUSE_MAX_S``). A
request without an app id (the release before, or queued at the upgrade) is acted on by
every app, as before.

Runs the worker's tick handler (bench.glue_cost's fakes: no Kafka, no Redis) in a subprocess:
importing the agents builds the Faust app."""

from __future__ import annotations

import json

from tests.unit.app.snippet import GLUE_FEED, last_line

CODE = GLUE_FEED + r"""
feed("events.click", "click", {"event_id": "e0", "user_id": "u1", "ts": now,
                               "type": "course_view", "props": {}})


class Projection:
    why_mode, timeline = "compact", 0
    paused = suspended = False

    def __init__(self):
        self.calls = []

    def pause_writes(self, seconds):
        self.paused = True
        self.calls.append("pause")

    def resume_writes(self):
        self.paused = False
        self.calls.append("resume")

    def suspend_caches(self):
        self.calls.append("suspend")

    def resume_caches(self):
        self.calls.append("cache")

    def reproject(self, ops, tenant, uid):
        self.calls.append("reproject " + uid)


rt = agents.runtime
rt.projection = proj = Projection()
own = agents.settings.app_id
steps = [("~redis-rebuild", "reproject-begin:1-aa@other-app"),
         ("u1", "reproject:1-aa@other-app"),
         ("~redis-rebuild", "reproject-begin:2-bb@" + own),
         ("~redis-rebuild", "reproject-flushed:1-aa@other-app"),
         ("~redis-rebuild", "reproject-flushed:2-bb@" + own),
         ("u1", "reproject:2-bb@" + own),
         ("~redis-rebuild", "reproject-begin:3-cc"),            # the release before's
         ("~redis-rebuild", "reproject-flushed:3-cc"),
         ("u1", "reproject:3-cc")]
out = []
for i, (key, value) in enumerate(steps):
    proj.calls = []
    agents._tick(g.Msg(agents.TICKS, 0, 10 + i, key.encode(), value.encode(), g.NOW_S))
    out.append(proj.calls)
print(json.dumps({"calls": out, "paused": proj.paused,
                  "request": rt.reproject_id.decode()}))
"""


def test_a_worker_ignores_another_apps_rebuild_requests(tmp_path) -> None:
    out = json.loads(last_line(CODE, tmp_path))
    assert out["calls"] == [
        [],                                    # another app's: no hold
        [],                                    # nor its re-projection
        ["suspend", "pause"],                  # its own app's
        [],                                    # another app's end does not end its hold
        ["resume"],
        ["cache", "resume", "reproject u1"],
        ["suspend", "pause"],                  # no app id: acted on, as before
        ["resume"],
        ["cache", "resume", "reproject u1"],
    ]
    assert out["paused"] is False and out["request"] == "3-cc"
