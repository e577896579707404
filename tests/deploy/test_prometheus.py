"""Prometheus config, recording and alert rules: valid, unit-tested, and only about
metrics that stream_app.metrics defines."""

from __future__ import annotations

import pytest
import yaml

from stream_app.config import REPO_ROOT
from tests.deploy.promql import (
    NO_PROMTOOL,
    PROM_DIR,
    PROMTOOL,
    RULE_FILES,
    promtool,
    recorded_names,
    unknown_names,
)

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)


def _rules() -> list[dict]:
    return [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]
            for r in g["rules"]]


@needs_promtool
def test_promtool_checks_config_and_rules() -> None:
    res = promtool("check", "config", "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    res = promtool("check", "rules", *RULE_FILES)
    assert res.returncode == 0, res.stdout + res.stderr


@needs_promtool
def test_kubernetes_variant_is_valid_and_scrapes_every_pod_of_headless_services(tmp_path):
    cfg = yaml.safe_load((PROM_DIR / "prometheus-k8s.yml").read_text())
    cfg["rule_files"] = [str(f) for f in RULE_FILES]  # the ConfigMap's mount point is absent
    path = tmp_path / "prometheus-k8s.yml"
    path.write_text(yaml.safe_dump(cfg))
    res = promtool("check", "config", path, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    services = {d["metadata"]["name"]: d for f in ("worker.yaml", "api.yaml")
                for d in yaml.safe_load_all((REPO_ROOT / "deploy/k8s" / f).read_text())
                if d and d["kind"] == "Service"}
    for job in cfg["scrape_configs"]:
        (sd,) = job["dns_sd_configs"]
        svc_name, namespace = sd["names"][0].split(".")[:2]
        svc = services[svc_name]
        assert namespace == "stream-app" and svc["spec"]["clusterIP"] == "None"
        assert svc["spec"]["selector"]["app.kubernetes.io/name"] == job["job_name"]
        assert sd["port"] in (6066, 8080)


@needs_promtool
def test_promtool_rule_unit_tests_pass() -> None:
    tests = sorted((PROM_DIR / "tests").glob("*.yml"))
    assert tests
    res = promtool("test", "rules", *tests)
    assert res.returncode == 0, res.stdout + res.stderr


def test_rules_use_only_defined_metrics() -> None:
    for r in _rules():
        assert not unknown_names(r["expr"]), (r.get("record") or r.get("alert"), r["expr"])


def test_unknown_metric_names_are_caught() -> None:
    assert unknown_names("rate(stream_app_made_up_total[5m])") == {"stream_app_made_up_total"}
    made_up = "job:nothing_records_this:rate5m"
    assert unknown_names(f"{made_up} > 1") == {made_up}
    assert not unknown_names(
        'sum by (le) (rate(stream_app_e2e_latency_seconds_bucket{le="2.5"}[5m]))')


def test_every_required_alert_exists_with_severity_and_zh_en_summary() -> None:
    alerts = {r["alert"]: r for r in _rules() if "alert" in r}
    for name in ("StreamAppWorkerDown", "StreamAppConsumerLagGrowing", "StreamAppDLQRateHigh",
                 "StreamAppLatencySLOFastBurn", "StreamAppLatencySLOSlowBurn",
                 "StreamAppModelGateClosed", "StreamAppMetricAnomaly"):
        assert name in alerts, name
    for name, r in alerts.items():
        assert r["labels"]["severity"] in ("page", "ticket", "info"), name
        assert r["annotations"]["summary"] and r["annotations"]["summary_zh"], name


def test_recording_rule_names_follow_the_convention() -> None:
    for name in recorded_names():
        assert name.count(":") == 2 and "stream_app" in name, name


def test_scrape_config_has_one_target_per_worker() -> None:
    cfg = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    targets = jobs["stream-app-worker"]["static_configs"][0]["targets"]
    assert len(targets) == len(set(targets)) >= 2
    assert all(t.endswith(":6066") for t in targets)
    for f in cfg["rule_files"]:
        assert (PROM_DIR / f).is_file(), f
