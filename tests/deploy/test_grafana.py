"""Grafana dashboards as code: up to date, every query parses and names only known metrics."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from stream_app.config import REPO_ROOT
from tests.deploy.promql import NO_PROMTOOL, PROMTOOL, check_exprs, unknown_names

GRAFANA = REPO_ROOT / "deploy" / "grafana"
VARS = {"$__range": "1h", "$__rate_interval": "1m", "$__interval": "1m",
        "$tenant": ".*", "$channel": ".*"}


def _builder():
    spec = importlib.util.spec_from_file_location("build_dashboards",
                                                  GRAFANA / "build_dashboards.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_dashboards", mod)
    spec.loader.exec_module(mod)
    return mod


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def substitute(expr: str) -> str:
    for k in sorted(VARS, key=len, reverse=True):
        expr = expr.replace(k, VARS[k])
    return expr


def panel_exprs() -> dict[str, str]:
    """``"<file> / <panel title> / <refId>"`` -> PromQL with template variables filled in."""
    out = {}
    for name, d in dashboards().items():
        for p in d["panels"]:
            for t in p["targets"]:
                out[f"{name} / {p['title']} / {t['refId']}"] = substitute(t["expr"])
    return out


def test_three_dashboards_are_checked_in_and_up_to_date() -> None:
    assert set(dashboards()) == {"operations.json", "service-health.json", "models.json"}
    rendered = _builder().render()
    for name, text in rendered.items():
        on_disk = (GRAFANA / "dashboards" / name).read_text(encoding="utf-8")
        assert on_disk == text, f"{name} is stale: run python deploy/grafana/build_dashboards.py"


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_every_panel_query_parses(tmp_path: Path) -> None:
    exprs = panel_exprs()
    assert len(exprs) >= 30
    res = check_exprs(exprs, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_a_broken_query_is_reported(tmp_path: Path) -> None:
    res = check_exprs({"bad": "sum by (x (rate(stream_app_alerts_total[5m]))"}, tmp_path)
    assert res.returncode != 0


def test_every_panel_query_uses_defined_metrics() -> None:
    for where, expr in panel_exprs().items():
        assert not unknown_names(expr), (where, expr)


def test_no_template_variable_is_left_unfilled() -> None:
    for where, expr in panel_exprs().items():
        assert not re.search(r"\$\w+", expr), where


def test_panels_are_bilingual_laid_out_and_use_the_provisioned_datasource() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    for name, d in dashboards().items():
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), name
        for p in d["panels"]:
            en, zh = p["title"].split(" / ", 1)
            assert en and re.search(r"[\u4e00-\u9fff]", zh), p["title"]
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
            assert p["datasource"]["uid"] == uid
            assert all(t["datasource"]["uid"] == uid for t in p["targets"])


def test_dashboard_provider_points_where_compose_mounts_the_json() -> None:
    prov = yaml.safe_load((GRAFANA / "provisioning/dashboards/stream-app.yml").read_text())
    path = prov["providers"][0]["options"]["path"]
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert any(m.split(":")[1] == path and m.split(":")[0].endswith("deploy/grafana/dashboards")
               for m in mounts), mounts
