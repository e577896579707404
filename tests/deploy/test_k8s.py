"""Kubernetes manifests in deploy/k8s: complete, consistent with the app and the repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stream_app.config import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "k8s"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _docs() -> list[dict]:
    docs = []
    for res in KUSTOMIZATION["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / res).read_text()) if d]
    return docs


def _by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _docs() if d["kind"] == kind}


def _env() -> dict[str, str]:
    return _by_kind("ConfigMap")["stream-app-env"]["data"]


def test_every_document_has_the_basics() -> None:
    for d in _docs():
        assert d.get("apiVersion") and d.get("kind") and d["metadata"].get("name"), d


def test_generated_configmaps_hold_existing_files_and_every_rule_file() -> None:
    listed: dict[str, list[Path]] = {}
    for gen in KUSTOMIZATION["configMapGenerator"]:
        listed[gen["name"]] = [(K8S / f).resolve() for f in gen["files"]]
        for f in listed[gen["name"]]:
            assert f.is_file(), f
    rules = {p.resolve() for p in (REPO_ROOT / "config" / "rules").glob("*.yaml")}
    assert rules == set(listed["stream-app-rules"]), "config/rules and the ConfigMap differ"
    assert (REPO_ROOT / "config/anomaly.yaml").resolve() in listed["stream-app-config"]


def _containers(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize("kind,name,port", [("StatefulSet", "stream-app-worker", 6066),
                                            ("Deployment", "stream-app-api", 8080)])
def test_probes_limits_and_ports(kind: str, name: str, port: int) -> None:
    w = _by_kind(kind)[name]
    (c,) = _containers(w)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port in ports.values()
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("livenessProbe", "readinessProbe"):
        p = c[probe]["httpGet"]["port"]
        assert (ports.get(p) if isinstance(p, str) else p) == port
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][part]), part
    ann = w["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/port"] == str(port)
    assert ann["prometheus.io/path"].rstrip("/") == "/metrics"
    assert {"configMapRef": {"name": "stream-app-env"}} in c["envFrom"]
    assert w["spec"]["selector"]["matchLabels"].items() <= \
        w["spec"]["template"]["metadata"]["labels"].items()


def test_mounts_reference_declared_volumes_and_configmaps() -> None:
    cms = set(_by_kind("ConfigMap")) | {g["name"] for g in KUSTOMIZATION["configMapGenerator"]}
    for w in [*_by_kind("StatefulSet").values(), *_by_kind("Deployment").values()]:
        spec = w["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        for c in spec["containers"]:
            for m in c.get("volumeMounts", []):
                assert m["name"] in vols or m["name"] in claims, m
        for v in vols.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in cms, v


def test_every_stream_app_container_that_mounts_the_config_also_mounts_the_rules() -> None:
    """A ConfigMap mounted over /app/config hides the image's config/rules; the rules
    ConfigMap must be mounted over it in every stream-app container (the API Deployment
    lacked it: its pods exited at start with "no such rule file or directory")."""
    checked = []
    for w in [*_by_kind("StatefulSet").values(), *_by_kind("Deployment").values()]:
        spec = w["spec"]["template"]["spec"]
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            mounts = {m["mountPath"]: vols.get(m["name"], {}) for m in c.get("volumeMounts", [])}
            if "/app/config" not in mounts:
                continue
            rules = mounts.get("/app/config/rules", {})
            assert rules.get("configMap", {}).get("name") == "stream-app-rules", (
                w["metadata"]["name"], c["name"], sorted(mounts))
            checked.append(w["metadata"]["name"])
    assert sorted(checked) == ["stream-app-api", "stream-app-worker"]


def test_workers_never_outnumber_partitions() -> None:
    partitions = int(_env()["STREAM_APP_PARTITIONS"])
    sts = _by_kind("StatefulSet")["stream-app-worker"]
    hpa = _by_kind("HorizontalPodAutoscaler")["stream-app-worker"]
    assert sts["spec"]["replicas"] <= partitions
    assert hpa["spec"]["maxReplicas"] <= partitions
    assert hpa["spec"]["scaleTargetRef"]["name"] == "stream-app-worker"
    svc = _by_kind("Service")[sts["spec"]["serviceName"]]
    assert svc["spec"]["clusterIP"] == "None"


def test_env_binds_http_to_all_interfaces_and_names_a_kafka_url() -> None:
    env = _env()
    assert env["STREAM_APP_WEB_HOST"] == "0.0.0.0"
    assert env["STREAM_APP_BROKER_URL"].startswith("kafka://")
    assert env["STREAM_APP_WEB_PORT"] == "6066"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds() -> None:
    res = subprocess.run(["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone",
                          str(K8S)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(res.stdout) if d]
    assert kinds.count("ConfigMap") == 4 and "StatefulSet" in kinds


def test_scrape_targets_include_pods_that_are_not_ready() -> None:
    """Prometheus finds the workers and API pods through their headless Services' DNS
    (deploy/prometheus/prometheus-k8s.yml); without publishNotReadyAddresses that DNS lists
    only ready pods, so a worker whose /ready fails would leave the targets within a minute
    and StreamAppWorkerNotReady (stream_app_ready == 0 for 5m) / StreamAppWorkerDown could
    never fire (QA29 F4)."""
    prom = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus-k8s.yml")
                          .read_text())
    services = _by_kind("Service")
    scraped = [name.split(".")[0] for job in prom["scrape_configs"]
               for sd in job.get("dns_sd_configs", []) for name in sd["names"]]
    assert sorted(scraped) == ["stream-app-api-pods", "stream-app-worker"]
    for name in scraped:
        spec = services[name]["spec"]
        assert spec["clusterIP"] == "None", name
        assert spec.get("publishNotReadyAddresses") is True, name


def test_worker_pods_create_the_contracts_topics_before_the_worker_starts() -> None:
    """docker compose runs a one-shot `topics create` the workers wait for; the Kubernetes
    path had none, so workers came up ready with the output topics missing and had the broker
    auto-create scoring.training / metrics.partials with its default partition count (QA31
    F6). Each worker pod now runs it first, in an init container with the workers' image and
    environment (STREAM_APP_PARTITIONS, STREAM_APP_REPLICATION, the broker)."""
    from stream_app.cli.topics_cmd import command as topics

    spec = _by_kind("StatefulSet")["stream-app-worker"]["spec"]["template"]["spec"]
    (worker,) = spec["containers"]
    inits = {c["name"]: c for c in spec.get("initContainers", [])}
    assert "topics" in inits, "no init container creates the contract's topics"
    init = inits["topics"]
    assert init["args"][:2] == ["topics", "create"]
    assert init["image"] == worker["image"]
    assert init["envFrom"] == worker["envFrom"] and init.get("env") == worker.get("env")
    assert int(_env()["STREAM_APP_REPLICATION"]) >= 1
    assert int(_env()["STREAM_APP_PARTITIONS"]) >= 1
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(init["resources"][part]), part
    # the arguments are the command's own (a typo would stop every worker pod at init)
    ctx = topics.make_context("topics", list(init["args"][1:]), resilient_parsing=True)
    create = topics.get_command(ctx, init["args"][1])
    assert create is not None
    create.make_context("create", list(init["args"][2:]))


def test_the_workers_log_level_comes_from_the_configmap() -> None:
    """QA31 F4: the ConfigMap's STREAM_APP_LOG_LEVEL was beaten by ``-l warn`` in the args."""
    [worker] = [c for c in _by_kind("StatefulSet")["stream-app-worker"]["spec"]["template"]
                ["spec"]["containers"] if c["args"][0] == "worker"]
    assert not {"-l", "--loglevel"} & set(worker["args"])
    assert not any(a.startswith(("-l", "--loglevel=")) for a in worker["args"][1:])
    assert _env()["STREAM_APP_LOG_LEVEL"] in ("crit", "error", "warn", "info", "debug")
