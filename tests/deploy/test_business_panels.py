"""Business panels and recording rules say what they measure (QA37 F4, F6).

* Step ratios whose later step comes hours or days after the earlier one (homework after the
  lesson, the course order after the trial) are not computed over one hour.
* Revenue is trial purchases + course orders + renewals before refunds, and refunds have
  their own recording rule and panel.
"""

from __future__ import annotations

import re

import yaml

from tests.deploy.promql import RULE_FILES
from tests.deploy.test_grafana import dashboards

#: step pairs (later, earlier) -> the shortest range a ratio of them may use
SLOW_PAIRS = {("homework_submitted", "lesson_attended"): "1d",
              ("order_paid", "trial_purchased"): "7d"}
_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def _seconds(rng: str) -> int:
    return int(rng[:-1]) * _SECONDS[rng[-1]]


def _exprs() -> list[tuple[str, str]]:
    out = [(r.get("record") or r.get("alert"), r["expr"]) for f in RULE_FILES
           for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]
    for name, d in dashboards().items():
        for p in d["panels"]:
            out += [(f"{name} / {p['title']}", t["expr"]) for t in p["targets"]]
    return out


def test_slow_step_ratios_are_not_taken_over_an_hour() -> None:
    seen = set()
    for where, expr in _exprs():
        for (later, earlier), shortest in SLOW_PAIRS.items():
            if f'step="{later}"' in expr and f'step="{earlier}"' in expr:
                seen.add(later)
                ranges = re.findall(r"\[(\d+[mhd])\]", expr)
                assert ranges and min(map(_seconds, ranges)) >= _seconds(shortest), (
                    where, expr)
    assert seen == {"homework_submitted", "order_paid"}   # still shown, over a horizon


def test_revenue_scope_is_in_the_titles_and_refunds_have_a_panel() -> None:
    panels = {p["title"]: p for d in dashboards().values() for p in d["panels"]}
    revenue = [p for t, p in panels.items() if "stream_app_biz_revenue" in str(p["targets"])]
    assert revenue
    for p in revenue:
        assert "renewals" in p["title"] and "before refunds" in p["title"], p["title"]
        assert "续费" in p["title"] and "未扣退款" in p["title"], p["title"]
    assert any("stream_app_biz_refunds" in str(p["targets"]) for p in panels.values())
    rules = {r.get("record"): r["expr"] for f in RULE_FILES
             for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]}
    assert "stream_app_biz_refunds_total" in rules["channel:stream_app_biz_refunds:increase1h"]
