"""``stream-app topics create --strict`` (the worker pods' init container, deploy/k8s) on a
real tansu broker: the missing topics are created, and a contract topic that exists with
another partition count (auto-created by a worker's producer before the topics were: QA31
F6) stops it with one ``Error:`` line and exit 1, so the worker does not start on it;
without --strict it is a warning, as before."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from stream_app.contract import load_contract
from stream_app.services.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


def topics_create(bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STREAM_APP_BROKER_URL": f"kafka://{bootstrap}",
           "STREAM_APP_PARTITIONS": "2", "STREAM_APP_REPLICATION": "1"}
    return subprocess.run([sys.executable, "-m", "stream_app", "topics", "create", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_strict_refuses_a_topic_with_another_partition_count(tmp_path) -> None:
    with EmbeddedBroker(workdir=tmp_path) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for fut in admin.create_topics([NewTopic("metrics.partials", 4, 1)],
                                       operation_timeout=30).values():
            fut.result(30)
        n = len(load_contract().topics)

        out = topics_create(broker.bootstrap, "--strict")
        assert out.returncode == 1, out
        assert out.stdout.startswith(f"created {n - 1} topics: events.click")
        [line] = out.stderr.strip().splitlines()
        assert line.startswith("Error: topic metrics.partials exists with 4 partitions, the "
                               "contract declares 1"), line

        again = topics_create(broker.bootstrap, "--strict")     # still refused, nothing new
        assert again.returncode == 1 and again.stdout.strip() == "created 0 topics: -"

        lenient = topics_create(broker.bootstrap)
        assert lenient.returncode == 0, lenient
        assert lenient.stderr.startswith("warning: topic metrics.partials exists with 4")
