"""`rules apply` on a broker where `topics create` was not run (QA F10): the rule-set topic is
created as the contract declares it (1 partition, compacted) before the set is produced, and
the set is seen by `rules show`. A `rules.versions` auto-created with several partitions is
refused by the readers, and `topics create` reports its partition count. Bare brokers only
(no worker): a few seconds."""

from __future__ import annotations

import os
import shutil
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


def test_history_lists_the_published_sets_and_export_rolls_back(broker, tmp_path) -> None:
    """QA40 F5.1: `rules show` named the newest set only, so an operator could not list the
    earlier versions to roll back to. `--history` lists every set the topic still holds
    (oldest first, the newest marked), `rules export` writes one back to a directory, and
    `rules apply` of that directory publishes the earlier version again."""
    first = cli(broker, "rules", "apply", "config/rules")
    assert first.returncode == 0, first.stderr
    v1 = first.stdout.split("published rule set ")[1].split()[0]
    edited = tmp_path / "rules-v2"
    shutil.copytree(ROOT / "config" / "rules", edited)
    with (edited / "activity.yaml").open("a", encoding="utf-8") as fh:
        fh.write("# edited: a new version\n")
    second = cli(broker, "rules", "apply", str(edited))
    assert second.returncode == 0, second.stderr
    v2 = second.stdout.split("published rule set ")[1].split()[0]
    assert v1 != v2

    shown = cli(broker, "rules", "show", "--history")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "2 rule sets on rules.versions, oldest first:"
    assert lines[1].startswith(f"  offset 0: version {v1} from {ROOT / 'config' / 'rules'} "
                               "(published ")
    assert " in 10 families (activity, " in lines[1] and "newest" not in lines[1]
    assert lines[2].startswith(f"  offset 1: version {v2} from {edited} (published ")
    assert lines[2].endswith("; newest: the workers run it")
    assert lines[3].startswith("roll back: `stream-app rules export VERSION DIR`")

    back = tmp_path / "rollback"
    missing = cli(broker, "rules", "export", "nosuchversion", str(back))
    assert missing.returncode == 1 and f"it holds {v1}, {v2}" in missing.stderr
    exported = cli(broker, "rules", "export", v1.rsplit("+", 1)[1], str(back))
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith(f"wrote 10 files of rule set {v1} (published ")
    assert sorted(p.name for p in back.iterdir()) == sorted(
        p.name for p in (ROOT / "config" / "rules").glob("*.yaml"))
    again = cli(broker, "rules", "export", v1, str(back))
    assert again.returncode == 1 and "is not empty" in again.stderr
    rolled = cli(broker, "rules", "apply", str(back))
    assert rolled.returncode == 0, rolled.stderr
    assert f"published rule set {v1} " in rolled.stdout
    after = cli(broker, "rules", "show", "--history").stdout.splitlines()
    assert after[0].startswith("3 rule sets") and after[3].startswith(
        f"  offset 2: version {v1} from {back} (published ")
    assert after[3].endswith("; newest: the workers run it")
