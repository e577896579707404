"""Helpers of the deploy tests: metric names used by PromQL, and promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from stream_app.config import REPO_ROOT
from stream_app.metrics import METRIC_NAMES

PROM_DIR = REPO_ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
PROMTOOL = shutil.which("promtool")
NO_PROMTOOL = "promtool is not installed (apt-get install -y prometheus); CI installs it"

_RAW = re.compile(r"(?<![:\w])stream_app_[a-z0-9_]+(?![:\w])")
_RECORDED = re.compile(r"\b[a-z_]+:[a-z0-9_]+(?::[a-z0-9_]+)*\b")
_FUNCS = {"sum", "by", "rate", "increase", "max", "min", "avg", "on", "and", "or"}


def recorded_names() -> set[str]:
    names: set[str] = set()
    for f in RULE_FILES:
        for g in yaml.safe_load(f.read_text())["groups"]:
            names.update(r["record"] for r in g["rules"] if "record" in r)
    return names


def unknown_names(expr: str) -> set[str]:
    """Series names in ``expr`` that neither stream_app.metrics nor a recording rule defines."""
    expr = re.sub(r'"[^"]*"', '""', expr)          # label values may contain anything
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)        # ranges like [5m:1m]
    raw = set(_RAW.findall(expr)) - METRIC_NAMES
    rec = {n for n in _RECORDED.findall(expr) if n.split(":")[0] not in _FUNCS}
    return raw | (rec - recorded_names())


def promtool(*args: str | Path, cwd: Path = PROM_DIR) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, NO_PROMTOOL
    return subprocess.run([PROMTOOL, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def check_exprs(exprs: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """Parse every expression with ``promtool check rules`` (one recording rule each)."""
    rules = [{"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(exprs.values())]
    path = tmp / "exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}))
    return promtool("check", "rules", path, cwd=tmp)
