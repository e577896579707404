"""Grafana dashboards of stream-app, as code.

Run ``python deploy/grafana/build_dashboards.py`` after a change; it rewrites
``deploy/grafana/dashboards/*.json`` (checked in, provisioned by Grafana). A test fails when
the JSON files are out of date, when a query does not parse, or when a query names a metric
that neither ``stream_app/metrics.py`` nor a recording rule defines.

Three dashboards:

* **Operations / 运营看板** — funnel, channel volume and quality, revenue, tag distribution,
  alerts and open metric anomalies (for operations, sales managers, analysts);
* **Service health / 服务健康** — throughput, end-to-end latency and its SLO, consumer lag,
  dead letters, Redis, workers (for whoever is on call);
* **Models / 模型** — quality over time, release gate, serving version, hot-lead alerts.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
SEL = 'tenant=~"$tenant", channel=~"$channel"'
FUNNEL_STEPS = ("visit", "lead", "consult", "trial_booked", "trial_purchased", "order_paid",
                "renewal")


@dataclass
class Panel:
    """One panel: title (en / zh), type, PromQL targets ``(legend, expr)``, width, unit."""

    title: str
    zh: str
    kind: str
    targets: list[tuple[str, str]]
    w: int = 12
    h: int = 8
    unit: str = "short"
    description: str = ""
    instant: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def _panel(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    targets = [{"refId": chr(ord("A") + i), "datasource": DS, "expr": expr,
                "legendFormat": legend, "instant": p.instant, "range": not p.instant}
               for i, (legend, expr) in enumerate(p.targets)]
    out: dict[str, Any] = {
        "id": pid, "type": p.kind, "title": f"{p.title} / {p.zh}", "datasource": DS,
        "description": p.description, "gridPos": {"x": x, "y": y, "w": p.w, "h": p.h},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "options": p.options,
    }
    if p.kind == "table":
        out["transformations"] = [{"id": "merge", "options": {}}]
    return out


def _dashboard(uid: str, title: str, zh: str, panels: list[Panel], variables: list[dict],
               description: str) -> dict[str, Any]:
    laid: list[dict[str, Any]] = []
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        if x + p.w > 24:
            x, y, row_h = 0, y + row_h, 0
        laid.append(_panel(p, i, x, y))
        x += p.w
        row_h = max(row_h, p.h)
    return {
        "uid": uid, "title": f"{title} / {zh}", "description": description,
        "tags": ["stream-app"], "timezone": "browser", "schemaVersion": 39, "version": 1,
        "editable": False, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables}, "panels": laid, "annotations": {"list": []},
    }


def _var(name: str, label: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": name}, "definition": query, "refresh": 2,
            "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"text": "All", "value": "$__all"}, "sort": 1}


BIZ_VARS = [_var("tenant", "Tenant / 租户", "label_values(stream_app_biz_events_total, tenant)"),
            _var("channel", "Channel / 渠道", "label_values(stream_app_biz_events_total, channel)")]


def operations() -> dict[str, Any]:
    steps = "|".join(FUNNEL_STEPS)
    panels = [
        Panel("Funnel (selected range)", "转化漏斗", "bargauge",
              [("{{step}}", f'sum by (step) (increase(stream_app_biz_events_total{{{SEL}, '
                            f'step=~"{steps}"}}[$__range]))')],
              w=8, instant=True, options={"orientation": "horizontal", "displayMode": "gradient"},
              description="Events per funnel step over the dashboard range, summed over workers."),
        Panel("New leads per hour by channel", "各渠道每小时新线索", "timeseries",
              [("{{channel}}", f'sum by (channel) (channel:stream_app_biz_events:increase1h{{'
                               f'{SEL}, step="lead"}})')], w=8),
        Panel("Revenue per hour by channel (trials + orders + renewals, before refunds)",
              "各渠道每小时营收（体验课+正价课+续费，未扣退款）", "timeseries",
              [("{{channel}}", f"sum by (channel) (channel:stream_app_biz_revenue:increase1h{{"
                               f"{SEL}}})")], w=8, unit="currencyCNY",
              description="Paid amounts of trial purchases, course orders and renewals; "
                          "refunds are not deducted (see Refunds per hour). QA37 F6."),
        Panel("Channel quality: funnel conversion (last hour)", "渠道质量：漏斗转化（近1小时）",
              "table",
              [("lead→trial", f"channel:stream_app_funnel_lead_to_trial:ratio1h{{{SEL}}}"),
               ("trial→purchase",
                f"channel:stream_app_funnel_trial_to_purchase:ratio1h{{{SEL}}}"),
               ("purchase→order (7d)",
                f"channel:stream_app_funnel_purchase_to_order:ratio7d{{{SEL}}}"),
               ("leads", f'sum by (tenant, channel) (channel:stream_app_biz_events:increase1h{{'
                         f'{SEL}, step="lead"}})')],
              w=12, unit="percentunit", instant=True,
              description="Ratios of step counts per channel over the same range (flow ratios, "
                          "not cohort conversions; can exceed 1): last hour, purchase→order "
                          "over 7 days (orders come days after the trial)."),
        Panel("Funnel step conversion over time", "漏斗各步转化率趋势", "timeseries",
              [("lead→trial", f"sum(increase(stream_app_biz_events_total{{{SEL}, "
                              f'step="trial_booked"}}[1h])) / sum(increase('
                              f'stream_app_biz_events_total{{{SEL}, step="lead"}}[1h]))'),
               ("trial→purchase", f"sum(increase(stream_app_biz_events_total{{{SEL}, "
                                  f'step="trial_purchased"}}[1h])) / sum(increase('
                                  f'stream_app_biz_events_total{{{SEL}, step="trial_booked"}}'
                                  f"[1h]))")],
              w=12, unit="percentunit",
              description="Events of the later step / events of the earlier step in the same "
                          "hour (flow ratios, not cohort conversions; can exceed 1)."),
        Panel("Learning: attendance (1h) and homework per attended lesson (24h)",
              "学情：到课率（1小时）与作业提交率（近24小时）", "timeseries",
              [("attendance", 'tenant:stream_app_attendance:ratio1h{tenant=~"$tenant"}'),
               ("homework (24h)", 'tenant:stream_app_homework:ratio1d{tenant=~"$tenant"}')],
              w=8, unit="percentunit",
              description="Homework is handed in about 16 h after the lesson: submissions / "
                          "attended lessons over the trailing 24 h (a flow ratio, not a "
                          "cohort). QA37 F4."),
        Panel("Tag changes by family", "各标签族变更速率", "timeseries",
              [("{{family}}", "sum by (family) (family:stream_app_tag_changes:rate5m)")],
              w=8, unit="ops"),
        Panel("Top tags (selected range)", "变更最多的标签", "bargauge",
              [("{{family}} {{tag}}", "topk(15, sum by (family, tag) "
                                      "(increase(stream_app_tag_changes_total[$__range])))")],
              w=8, instant=True, options={"orientation": "horizontal"}),
        Panel("Alerts per hour by kind", "各类提醒每小时数量", "timeseries",
              [("{{kind}}", "sum by (kind) (increase(stream_app_alerts_total[1h]))")], w=8),
        Panel("Open metric anomalies", "当前指标异常", "stat",
              [("open", "stream_app:metric_anomaly:count")], w=4, instant=True,
              description="Business series whose anomaly alarm is open now."),
        Panel("Open anomalies by metric over time", "各指标异常数时间线", "timeseries",
              [("{{metric}}", f"sum by (metric) (stream_app_metric_anomaly{{{SEL}}})")],
              w=8, description="Series (channels x windows) of each metric whose anomaly "
                               "alarm is open."),
        Panel("Anomaly scores of watched series", "监控指标异常分数", "table",
              [("z", f"max by (metric, tenant, channel, window) (stream_app_anomaly_score{{"
                     f"{SEL}}})")],
              w=12, instant=True,
              description="Robust z of the last closed window; |z| large and an open alarm "
                          "mean the series left its learned range (see alerts.metric_anomaly)."),
        Panel("Refunds per hour by channel", "各渠道每小时退款金额", "timeseries",
              [("{{channel}}", f"sum by (channel) (channel:stream_app_biz_refunds:increase1h{{"
                               f"{SEL}}})")], w=12, unit="currencyCNY",
              description="Refunded amounts (not deducted from revenue; net = revenue - "
                          "refunds). QA37 F6."),
    ]
    return _dashboard("stream-app-operations", "Operations", "运营看板", panels, BIZ_VARS,
                      "Funnel, channel quality, tag distribution and alerts.")


def service_health() -> dict[str, Any]:
    panels = [
        Panel("Events consumed by stream", "各事件流消费速率", "timeseries",
              [("{{stream}}", "stream:stream_app_events_consumed:rate1m")], w=8, unit="ops"),
        Panel("Events consumed by worker", "各节点消费速率", "timeseries",
              [("{{instance}}", "sum by (instance) "
                                "(rate(stream_app_events_consumed_total[$__rate_interval]))")],
              w=8, unit="ops"),
        Panel("Workers up / ready", "节点存活 / 就绪", "timeseries",
              [("up {{instance}}", 'up{job="stream-app-worker"}'),
               ("ready {{instance}}", 'stream_app_ready{job="stream-app-worker"}')], w=8),
        Panel("End-to-end latency p50 / p99", "端到端时延 p50 / p99", "timeseries",
              [("p50 {{output}}", "output:stream_app_e2e_latency_seconds:p50_5m"),
               ("p99 {{output}}", "output:stream_app_e2e_latency_seconds:p99_5m")],
              w=8, unit="s"),
        Panel("Latency SLO: share of outputs slower than 2.5 s", "时延 SLO：超过 2.5 秒的输出占比",
              "timeseries",
              [("5m", "stream_app:e2e_latency_slo:error_ratio_rate5m"),
               ("1h", "stream_app:e2e_latency_slo:error_ratio_rate1h")],
              w=8, unit="percentunit", description="Budget: 1 % (SLO 99 % within 2.5 s)."),
        Panel("Consumer lag by topic", "各主题消费积压", "timeseries",
              [("{{topic}}", "topic:stream_app_consumer_lag:sum")], w=8),
        Panel("Dead letters by reason", "死信（按原因）", "timeseries",
              [("{{reason}}", "reason:stream_app_dlq_records:rate5m")], w=8, unit="ops"),
        Panel("Dead-letter ratio", "死信占比", "timeseries",
              [("{{job}}", "job:stream_app_dlq_records:ratio_rate5m")], w=8, unit="percentunit"),
        Panel("Late, duplicate and unknown-type events", "迟到 / 重复 / 未知类型事件", "timeseries",
              [("late {{stream}}", "sum by (stream) (rate(stream_app_late_events_total"
                                   "[$__rate_interval]))"),
               ("duplicate {{stream}}", "sum by (stream) (rate(stream_app_duplicate_events_total"
                                        "[$__rate_interval]))"),
               ("unknown type {{stream}}", "sum by (stream) (rate("
                                           "stream_app_events_unknown_type_total"
                                           "[$__rate_interval]))")],
              w=8, unit="ops"),
        Panel("Redis projection: write p99, buffered", "Redis 投影：写入 p99、待写入", "timeseries",
              [("write p99", "stream_app:redis_write_seconds:p99_5m"),
               ("buffered {{instance}}", "stream_app_redis_buffered")], w=8),
        Panel("Redis errors", "Redis 错误", "timeseries",
              [("{{op}}", "sum by (op) (rate(stream_app_redis_errors_total[$__rate_interval]))")],
              w=8, unit="ops"),
        Panel("Users in state tables", "状态表用户数", "timeseries",
              [("{{instance}} {{table}}", "stream_app_table_users")], w=8),
    ]
    return _dashboard("stream-app-service", "Service health", "服务健康", panels, [],
                      "Throughput, latency, lag, dead letters, Redis and workers.")


def models() -> dict[str, Any]:
    panels = [
        Panel("Model quality over time", "模型质量趋势", "timeseries",
              [("{{target}} {{metric}}", "max by (target, metric) (stream_app_model_quality)")],
              w=12, unit="percentunit",
              description="AUC, precision and recall of the latest evaluation per target."),
        Panel("Release gate open", "发布门槛（1 = 机器学习评分上线）", "timeseries",
              [("{{target}}", "max by (target) (stream_app_model_gate_open)")], w=12),
        Panel("Serving model version", "在线模型版本", "table",
              [("version", "max by (target, version) (stream_app_model_info)")],
              w=12, instant=True),
        Panel("Hot-lead and at-risk alerts per hour", "高意向 / 流失风险提醒每小时数量",
              "timeseries",
              [("{{kind}}", 'sum by (kind) (increase(stream_app_alerts_total{'
                            'kind=~"hot_lead|at_risk"}[1h]))')], w=12),
    ]
    return _dashboard("stream-app-models", "Models", "模型", panels, [],
                      "Model quality over time and the release gate.")


DASHBOARDS = {"operations.json": operations, "service-health.json": service_health,
              "models.json": models}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: json.dumps(build(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
            for name, build in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, text in render().items():
        path = OUT / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)} (run python {Path(__file__).name})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
