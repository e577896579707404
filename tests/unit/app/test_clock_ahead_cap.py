"""One event dated hours ahead (a producer writing Beijing time labelled UTC, accepted:
within ``STREAM_APP_MAX_FUTURE_MS``) must not bring every user's time-based rules forward:
the clock sweep's time (``runtime.clock.now()``) moves at most
``STREAM_APP_CLOCK_MAX_AHEAD_MS`` past the reference clock, while the event itself is
processed at its own time (QA30 F3: with one page view dated +8 h, a learner idle 13.85 days
got "no study event for over 14 days" and users inside the 30-day window were tagged
churned at 16:00 Beijing time, their changes stamped 8 h ahead).

The worker's ``handle_event`` runs through bench.glue_cost's fakes (no Kafka, no Redis) in
a subprocess: settings are read once at import."""

from __future__ import annotations

import json

from tests.unit.app.snippet import GLUE_FEED, last_line

HOUR = 3_600_000

CODE = GLUE_FEED + r"""
wall_now = int(time.time() * 1000)
feed("events.click", "click", {"event_id": "c1", "user_id": "u1", "ts": now,
                               "type": "course_view", "props": {}})
skewed = wall_now + 8 * 3_600_000
feed("events.click", "click", {"event_id": "c2", "user_id": "u2", "ts": skewed,
                               "type": "page_view", "props": {}})
print(json.dumps({
    "clock_ahead_ms": agents.runtime.clock.now() - wall_now,
    "u2_now": agents.load_state("u2", 0)[0]["now"] - skewed,
    "dlq": [r[0] for r in side.producer.records if r[0] in ("events.dlq", "events.late")],
}))
"""


def test_an_event_hours_ahead_moves_the_clock_at_most_the_allowance(tmp_path) -> None:
    out = json.loads(last_line(CODE, tmp_path, STREAM_APP_CLOCK_MAX_AHEAD_MS="60000"))
    assert out["dlq"] == []                    # accepted, and processed at its own time
    assert out["u2_now"] == 0
    assert 0 <= out["clock_ahead_ms"] <= 60_000 + 5_000


def test_without_the_cap_one_skewed_event_moves_the_clock_for_every_user(tmp_path) -> None:
    # (the behaviour before: the sweep's time followed any accepted event)
    out = json.loads(last_line(CODE, tmp_path, STREAM_APP_CLOCK_MAX_AHEAD_MS="0"))
    assert out["dlq"] == [] and out["u2_now"] == 0
    assert out["clock_ahead_ms"] >= 8 * HOUR - 5_000


def test_the_old_setting_name_still_sets_the_cap(tmp_path) -> None:
    out = json.loads(last_line(CODE, tmp_path, STREAM_APP_BUSINESS_MAX_AHEAD_MS="0"))
    assert out["clock_ahead_ms"] >= 8 * HOUR - 5_000
