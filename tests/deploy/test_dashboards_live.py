"""Every dashboard panel returns data from a real Prometheus scraping a real worker.

A real ``prometheus`` (Debian package) on a free loopback port scrapes the session worker of
``tests/conftest.py`` every second, with the recording rules of ``deploy/prometheus/rules``;
the worker is fed by the simulator (plus a few bad and duplicate records, so the dead-letter
and duplicate panels have something to show). Then every panel's query of every dashboard
is run against it.

Panels whose metrics legitimately stay empty here (or that nothing emits yet) are listed in
``NOT_EMITTED_YET`` with the reason; they are reported, not failed. Every other panel must
return data.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import orjson
import pytest
import yaml

from stream_app.config import REPO_ROOT
from stream_app.services.process import free_port
from stream_app.sim.config import load_sim_config
from stream_app.sim.simulator import Simulator
from tests.deploy.test_grafana import panel_exprs
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus")
RULES = sorted((REPO_ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))

#: metric -> why it may have no data here (panels using only these are reported, not failed)
NOT_EMITTED_YET = {
    "stream_app_consumer_lag": "nothing sets CONSUMER_LAG yet (a timer: end offset - committed)",
    "stream_app_redis_errors": "only when Redis fails (none in a healthy run)",
    "stream_app_late_events": "only for events older than the late grace (none here)",
}
_RECORDED_FROM = {  # recording rule -> raw metric it is computed from
    "channel:stream_app_biz_events": "stream_app_biz_events",
    "channel:stream_app_biz_revenue": "stream_app_biz_revenue",
    "channel:stream_app_biz_refunds": "stream_app_biz_refunds",
    "tenant:stream_app_homework": "stream_app_biz_events",
    "channel:stream_app_funnel": "stream_app_biz_events",
    "tenant:stream_app_attendance": "stream_app_biz_events",
    "stream_app:metric_anomaly": "stream_app_metric_anomaly",
    "topic:stream_app_consumer_lag": "stream_app_consumer_lag",
    "kind:stream_app_alerts": "stream_app_alerts",
}


def _depends_only_on_missing(expr: str) -> str | None:
    for metric, why in NOT_EMITTED_YET.items():
        if metric in expr:
            return why
    for prefix, metric in _RECORDED_FROM.items():
        if prefix in expr and metric in NOT_EMITTED_YET:
            return NOT_EMITTED_YET[metric]
    return None


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str]) -> None:
        self.port = free_port()
        cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULES],
            "scrape_configs": [{"job_name": "stream-app-worker",
                                "static_configs": [{"targets": targets}]}],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr: str) -> list[dict]:
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
            body = orjson.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def rules(self) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/rules"
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
            body = orjson.loads(resp.read())
        return [r for g in body["data"]["groups"] for r in g["rules"]]

    def ready(self) -> bool:
        try:
            return bool(self.query('up{job="stream-app-worker"} == 1'))
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def fed_prometheus(stack, harness, tmp_path_factory):
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (apt-get install -y prometheus)")
    worker = stack.workers[0]
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{worker.web_port}"])
    try:
        wait_until(prom.ready, 60, what="prometheus scraping the worker")
        before = worker.stats().get("processed", 0)
        start = harness.base_ts()
        sim = Simulator(load_sim_config(overrides={"users": 300}), seed=5, id_prefix="dash-")
        sent = 0
        for ev in sim.events(start, 2 * 86_400_000):
            harness.producer.produce(f"events.{ev['stream']}", key=ev["user_id"],
                                     value=orjson.dumps(ev))
            sent += 1
            if sent % 5000 == 0:
                harness.producer.flush(30)
        for i in range(6):  # learners in class: attendance and homework panels
            for type_ in ("lesson_attended", "homework_submitted", "lesson_missed")[:2 + i % 2]:
                ev = {"event_id": f"dash-study-{i}-{type_}", "user_id": f"dash-study-{i}",
                      "ts": start + 3_600_000 * (i + 1), "type": type_,
                      "props": {"channel": "douyin", "lesson_id": f"l{i}"}}
                harness.producer.produce("events.study", key=ev["user_id"],
                                         value=orjson.dumps(ev))
                sent += 1
        for i in range(2):  # refunds are rare in two simulated days: the refunds panel
            ev = {"event_id": f"dash-refund-{i}", "user_id": f"dash-refund-{i}",
                  "ts": start + 3_600_000 * (i + 1), "type": "refund",
                  "props": {"channel": "douyin", "order_id": f"o{i}", "amount": 3980}}
            harness.producer.produce("events.order", key=ev["user_id"], value=orjson.dumps(ev))
            sent += 1
        first = next(iter(sim.events(start, 86_400_000)))
        harness.producer.produce("events.click", key=first["user_id"], value=orjson.dumps(first))
        harness.producer.produce("events.click", key="dash-bad", value=b"{not json")
        harness.producer.flush(30)
        enough = before + int(sent * 0.9)  # deletions and duplicates are not "processed"
        wait_until(lambda: worker.stats().get("processed", 0) >= enough or None, 240,
                   what="the worker processing the simulated events")
        wait_until(lambda: prom.query("sum(stream_app_duplicate_events_total) > 0")
                   and prom.query("sum(stream_app_dlq_records_total) > 0"), 180,
                   what="duplicate and dead-letter counters scraped")
        # the trainer publishes a batch of labels within 5 s of its first pair: its gauges
        # may come after the last event was processed
        wait_until(lambda: prom.query("max(stream_app_model_info)")
                   and prom.query("max(stream_app_model_quality)"), 60,
                   what="model gauges scraped (trainer)")
        time.sleep(3)  # a few more scrapes and rule evaluations after the last change
        yield prom
    finally:
        prom.stop()


def test_every_panel_query_returns_data(fed_prometheus) -> None:
    empty, reported = [], []
    for where, expr in panel_exprs().items():
        expr = expr.replace("[1h]", "[5m]")  # the run is minutes long
        if fed_prometheus.query(expr):
            continue
        why = _depends_only_on_missing(expr)
        (reported if why else empty).append(f"{where}: {why or expr}")
    if reported:
        print("panels without data until the worker emits their metrics:\n  "
              + "\n  ".join(reported))
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_every_rule_evaluates_without_error_on_real_data(fed_prometheus) -> None:
    rules = fed_prometheus.rules()
    assert len(rules) >= 30
    bad = [(r["name"], r.get("lastError")) for r in rules if r.get("health") != "ok"]
    assert not bad, bad
