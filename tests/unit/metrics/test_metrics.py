"""Collectors in stream_app.metrics: names, bounded labels, exposition."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client import REGISTRY

from stream_app import metrics as m


def _value(name: str, **labels: str) -> float:
    v = REGISTRY.get_sample_value(name, labels)
    return 0.0 if v is None else v


def test_every_collector_is_prefixed_and_listed() -> None:
    for name in m.__all__:
        obj = getattr(m, name)
        if hasattr(obj, "_name"):
            assert obj._name.startswith("stream_app_"), name
            assert obj._name in m.METRIC_NAMES


def test_label_policy_maps_unknown_values_to_other(tmp_path) -> None:
    cfg = tmp_path / "a.yaml"
    cfg.write_text("labels:\n  tenants: [t1]\n  channels: [{id: douyin}]\n  steps: [lead]\n")
    p = m.LabelPolicy.from_yaml(cfg)
    assert p.tenant("t1") == "t1" and p.tenant("default") == "default"
    assert p.tenant("t9") == "other"
    assert p.channel("douyin") == "douyin" and p.channel("spam-123") == "other"
    assert p.step("lead") == "lead" and p.step("weird") == "other"
    assert p.channel("") == "unknown"


def test_biz_event_uses_bounded_labels() -> None:
    m.set_label_policy(m.LabelPolicy(tenants=frozenset({"default"}),
                                     channels=frozenset({"douyin"}),
                                     steps=frozenset({"lead"})))
    try:
        before = _value("stream_app_biz_events_total", tenant="default", channel="other",
                        step="lead")
        for i in range(50):
            m.biz_event("default", f"random-{i}", "lead")
        after = _value("stream_app_biz_events_total", tenant="default", channel="other",
                       step="lead")
        assert after - before == 50
        assert REGISTRY.get_sample_value("stream_app_biz_events_total",
                                         {"tenant": "default", "channel": "random-3",
                                          "step": "lead"}) is None
    finally:
        m.set_label_policy(m.LabelPolicy.from_yaml())


def test_e2e_latency_lands_in_a_bucket() -> None:
    before = _value("stream_app_e2e_latency_seconds_bucket", output="t-test", le="0.5")
    assert m.observe_e2e("t-test", broker_ts_ms=10_000, now_ms=10_300) == 0.3
    assert m.observe_e2e("t-test", broker_ts_ms=10_000, now_ms=9_000) == 0.0  # clock skew
    after = _value("stream_app_e2e_latency_seconds_bucket", output="t-test", le="0.5")
    assert after - before == 2


def test_set_model_keeps_one_version_per_target() -> None:
    m.set_model("t-conv", "v1", {"auc": 0.8}, gate_open=False)
    m.set_model("t-conv", "v2", {"auc": 0.85, "precision": 0.6}, gate_open=True)
    assert _value("stream_app_model_info", target="t-conv", version="v2") == 1
    assert REGISTRY.get_sample_value("stream_app_model_info",
                                     {"target": "t-conv", "version": "v1"}) is None
    assert _value("stream_app_model_quality", target="t-conv", metric="auc") == 0.85
    assert _value("stream_app_model_gate_open", target="t-conv") == 1


def test_metrics_server_serves_this_process() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, _thread = m.start_metrics_server(port, addr="127.0.0.1")
    try:
        m.set_ready(True)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b"stream_app_ready 1.0" in body
    finally:
        server.shutdown()


def test_every_simulated_channel_and_funnel_step_has_its_own_label() -> None:
    """A channel or step missing from the allow-list would be reported as "other"."""
    from stream_app.business import load_business_spec
    from stream_app.sim.config import load_sim_config

    policy = m.LabelPolicy.from_yaml()
    for channel in load_sim_config().channels:
        assert policy.channel(channel) == channel, channel
    for step in set(load_business_spec().steps.values()):
        assert policy.step(step) == step, step


def test_consumer_lag_forgets_partitions_moved_to_another_worker() -> None:
    m.set_consumer_lag({("t-lag", 0): 100, ("t-lag", 1): 50})
    assert _value("stream_app_consumer_lag", topic="t-lag", partition="0") == 100
    m.set_consumer_lag({("t-lag", 1): 70, ("t-lag", 2): -5})
    assert REGISTRY.get_sample_value("stream_app_consumer_lag",
                                     {"topic": "t-lag", "partition": "0"}) is None
    assert _value("stream_app_consumer_lag", topic="t-lag", partition="1") == 70
    assert _value("stream_app_consumer_lag", topic="t-lag", partition="2") == 0
    m.set_consumer_lag({})


def test_an_observation_sets_both_gauges_under_its_own_labels_and_counts_an_opened_alarm():
    from stream_app.anomaly.monitor import Observation
    from stream_app.business import SeriesPoint

    point = SeriesPoint("leads", "default", "all", "1h", 0, 3_600_000, 4, 4, "count")
    alerts = m.ALERTS.labels(kind="metric_anomaly")
    before = alerts._value.get()
    for z, anomalous, change in ((1.5, False, None), (-7.25, True, "open")):
        m.publish_observation(Observation(point, z, 10.0, 8.0, 12.0, anomalous, False,
                                          record={} if change else None, change=change))
    lbl = {"metric": "leads", "tenant": "default", "channel": "all", "window": "1h"}
    assert m.ANOMALY_SCORE.labels(**lbl)._value.get() == -7.25
    assert m.METRIC_ANOMALY.labels(**lbl)._value.get() == 1.0
    assert alerts._value.get() == before + 1


def test_label_caches_follow_a_new_label_policy() -> None:
    """The per-series caches of raw label values are emptied when the policy changes."""
    m.biz_event("default", "douyin-cache-test", "lead")   # cached under the file's policy
    m.set_label_policy(m.LabelPolicy(tenants=frozenset({"default"}),
                                     channels=frozenset({"douyin-cache-test"}),
                                     steps=frozenset({"lead"})))
    try:
        before = _value("stream_app_biz_events_total", tenant="default",
                        channel="douyin-cache-test", step="lead")
        m.biz_event("default", "douyin-cache-test", "lead")
        assert _value("stream_app_biz_events_total", tenant="default",
                      channel="douyin-cache-test", step="lead") == before + 1
    finally:
        m.set_label_policy(m.LabelPolicy.from_yaml())
