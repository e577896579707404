"""QA31 F5 end to end: a channel that goes silent when the worker running the anomaly agent
restarts is still monitored.

A day of visits on douyin and baidu_sem (~8 a minute each) warms up their 1-minute series;
once the detectors' state is checkpointed the worker is stopped and started again on its
data directory, and from then on only baidu_sem has visits. After the restart's incomplete
windows (a gap, not a drop) douyin's zeros are scored: the drop is published on
alerts.metric_anomaly and the restarted worker exports its anomaly gauge. Before the fix
the restarted agent's merger did not know douyin: no point, no score, no alarm.
"""

from __future__ import annotations

import os
import random
import urllib.request
from pathlib import Path

import orjson
import pytest

from stream_app.kafka_io import produce
from tests.helpers import DAY, TIMELESS_ENV, Harness, TopicReader, running_stack, uid, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
MIN = 60_000
WARM_MINUTES = 24 * 60 + 30        # the 1-minute detectors warm up for a day (1,440 points)
#: mean visits per channel and minute (with 4, the 1-minute detector's level follows a drop
#: to zero before its CUSUM adds up to an alarm)
PER_MINUTE = 8
DOUYIN_1M = "visits|default|douyin|1m"
SAVE_TIMEOUT_S = 120               # the agent checkpoints every 30 s of wall time


@pytest.fixture(scope="module")
def anomaly_stack():
    yield from running_stack(ROOT / "var" / f"test-anomaly-restart-{os.getpid()}",
                             partitions=2, worker_timeout=240, env=dict(TIMELESS_ENV))


def monday(ts: int) -> int:
    """The first Monday 00:00 UTC+8 at or after ``ts`` (a weekday-only run: one season)."""
    day = (ts + 8 * 3_600_000) // DAY * DAY - 8 * 3_600_000 + DAY
    while (day + 8 * 3_600_000) // DAY % 7 != 4:    # 1970-01-01 was a Thursday
        day += DAY
    return day


class Visits:
    """ad_landing events of ~``PER_MINUTE`` a minute per channel, from a pool of users (both
    input partitions get events every minute)."""

    def __init__(self, harness: Harness, start: int) -> None:
        self.h, self.start, self.rng = harness, start, random.Random(31)
        self.users = [uid("vis") for _ in range(60)]
        self.minute = 0          # the next minute to send

    def send(self, minutes: int, channels: tuple[str, ...]) -> None:
        for m in range(self.minute, self.minute + minutes):
            for channel in channels:
                for _ in range(sum(self.rng.random() < PER_MINUTE / 40 for _ in range(40))):
                    user = self.rng.choice(self.users)
                    ev = {"event_id": uid("ev"), "user_id": user, "type": "ad_landing",
                          "ts": self.start + m * MIN + self.rng.randrange(MIN),
                          "props": {"channel": channel}}
                    produce(self.h.producer, "events.click", user, orjson.dumps(ev))
        self.minute += minutes
        self.h.producer.flush(30)


def checkpoint(reader: TopicReader) -> dict | None:
    """The latest detector state on the anomaly table's changelog."""
    records = reader.poll()
    return records[-1] if records else None


def gauge(worker, name: str, channel: str) -> float | None:
    with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as r:  # noqa: S310
        text = r.read().decode()
    for line in text.splitlines():
        if (line.startswith(name + "{") and f'channel="{channel}"' in line
                and 'metric="visits"' in line and 'window="1m"' in line):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_channel_silent_since_a_restart_is_still_alerted(anomaly_stack):
    stack, worker = anomaly_stack, anomaly_stack.workers[0]
    h = Harness(stack)
    changelog = TopicReader(stack.bootstrap, "stream-app-anomaly_monitor-changelog", 1)
    alerts = TopicReader(stack.bootstrap, "alerts.metric_anomaly", 1)
    try:
        visits = Visits(h, monday(h.base_ts()))
        visits.send(WARM_MINUTES, ("douyin", "baidu_sem"))

        def warm_checkpoint() -> bool:
            saved = checkpoint(changelog)
            if saved and saved.get(DOUYIN_1M, {}).get("detector", {}).get("n", 0) >= 1440:
                return True
            visits.send(1, ("douyin", "baidu_sem"))   # a checkpoint follows a new window
            return False

        wait_until(warm_checkpoint, SAVE_TIMEOUT_S, 1.0, "a checkpoint of warm detectors")

        assert not [r for r in alerts.poll() if r["labels"]["channel"] == "douyin"]
        worker.stop()
        worker.start()
        worker.wait_ready(240)
        silent_from = visits.start + visits.minute * MIN
        visits.send(30, ("baidu_sem",))               # douyin silent from the restart on

        def douyin_down() -> list[dict]:   # (its CUSUM may have started a minute before)
            return [r for r in alerts.poll() if r["metric"] == "visits"
                    and r["labels"]["channel"] == "douyin" and r["labels"]["window"] == "1m"
                    and r["labels"]["state"] == "open" and r["since"] >= silent_from - 5 * MIN]

        [opened] = wait_until(douyin_down, 120, 1.0, "the douyin drop alerted")
        assert opened["labels"]["direction"] == "down" and opened["value"] == 0
        assert gauge(worker, "stream_app_metric_anomaly", "douyin") == 1.0
    finally:
        changelog.close()
        alerts.close()
        h.close()
