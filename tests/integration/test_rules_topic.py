"""`rules apply` on a broker where `topics create` was not run (QA F10): the rule-set topic is
created as the contract declares it (1 partition, compacted) before the set is produced, and
the set is seen by `rules show`. A `rules.versions` auto-created with several partitions is
refused by the readers, and `topics create` reports its partition count. Bare brokers only
(no worker): a few seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream_app.services.broker import EmbeddedBroker

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def broker(tmp_path: Path):
    b = EmbeddedBroker(workdir=tmp_path / "broker").start()
    yield b
    b.stop()


def cli(broker: EmbeddedBroker, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STREAM_APP_BROKER_URL": broker.url, "STREAM_APP_PARTITIONS": "4"}
    return subprocess.run([sys.executable, "-m", "stream_app", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def partitions(bootstrap: str, topic: str) -> int:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return len(md.topics[topic].partitions)


def test_apply_creates_the_declared_topic_and_show_sees_the_set(broker) -> None:
    out = cli(broker, "rules", "apply", "config/rules")
    assert out.returncode == 0, out.stderr
    version = out.stdout.split("published rule set ")[1].split()[0]
    assert partitions(broker.bootstrap, "rules.versions") == 1
    from confluent_kafka.admin import AdminClient, ConfigResource

    res = ConfigResource(ConfigResource.Type.TOPIC, "rules.versions")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert admin.describe_configs([res])[res].result(10)["cleanup.policy"].value == "compact"
    show = cli(broker, "rules", "show")
    assert show.returncode == 0, show.stderr
    assert f"version {version} from {ROOT / 'config' / 'rules'} (published " in show.stdout


def test_an_auto_created_rules_topic_is_refused_and_reported(broker) -> None:
    from stream_app.kafka_io import make_producer

    producer = make_producer(broker.bootstrap)
    producer.produce("rules.versions", key="default", value=b'{"files": {}}')
    assert producer.flush(30) == 0
    assert partitions(broker.bootstrap, "rules.versions") == 4   # the broker's default
    show = cli(broker, "rules", "show")
    assert show.returncode == 1
    assert "rules.versions has 4 partitions" in show.stderr and "topics create" in show.stderr
    apply = cli(broker, "rules", "apply", "config/rules")
    assert apply.returncode == 1 and "Nothing was published" in apply.stderr, apply.stderr
    created = cli(broker, "topics", "create")
    assert created.returncode == 0, created.stderr
    assert ("warning: topic rules.versions exists with 4 partitions, the contract declares 1"
            in created.stderr)
