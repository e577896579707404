"""Alertmanager routing: pages to on-call, anomalies to operations, the rest to engineering."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from stream_app.config import REPO_ROOT

CONFIG = REPO_ROOT / "deploy" / "prometheus" / "alertmanager.yml"
AMTOOL = shutil.which("amtool")
needs_amtool = pytest.mark.skipif(
    AMTOOL is None, reason="amtool is not installed (apt-get install -y prometheus-alertmanager)")


def _route(**labels: str) -> str:
    res = subprocess.run([AMTOOL, "config", "routes", "test", f"--config.file={CONFIG}",
                          *(f"{k}={v}" for k, v in labels.items())],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


@needs_amtool
def test_config_is_valid() -> None:
    res = subprocess.run([AMTOOL, "check-config", str(CONFIG)], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr


@needs_amtool
@pytest.mark.parametrize("labels,receiver", [
    ({"alertname": "StreamAppWorkerDown", "severity": "page"}, "oncall"),
    ({"alertname": "StreamAppLatencySLOFastBurn", "severity": "page"}, "oncall"),
    ({"alertname": "StreamAppDLQRateHigh", "severity": "ticket"}, "engineering"),
    ({"alertname": "StreamAppMetricAnomaly", "severity": "info", "metric": "leads"},
     "operations"),
])
def test_alerts_reach_the_right_people(labels: dict[str, str], receiver: str) -> None:
    assert _route(**labels) == receiver


def test_every_route_names_a_defined_receiver_and_prometheus_sends_there() -> None:
    cfg = yaml.safe_load(CONFIG.read_text())
    names = {r["name"] for r in cfg["receivers"]}
    routes = [cfg["route"], *cfg["route"].get("routes", [])]
    assert all(r["receiver"] in names for r in routes)
    prom = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    am = compose["services"]["alertmanager"]
    assert f"alertmanager:{am['ports'][0].split(':')[1]}" in targets
