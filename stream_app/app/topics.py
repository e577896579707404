"""Faust topic objects, built from the topic contract (``topics/topics.yaml``)."""

from __future__ import annotations

from stream_app.app.main import app
from stream_app.contract import load_contract
from stream_app.serving.full_state import TICKS_TOPIC
from stream_app.ticks import tick_time, tick_value  # noqa: F401 - the sweep's and agent's

contract = load_contract()
TICKS = TICKS_TOPIC
#: the value of a tick that re-evaluates a user after a rule-set change (a backfill)
BACKFILL_TICK = b"backfill"

#: every input stream plus the clock ticks: one co-partitioned source for one agent
source_topic = app.topic(*contract.input_topics(), TICKS,
                         key_serializer="raw", value_serializer="raw")

tags_topic = app.topic("tags.changes", key_serializer="utf8", value_serializer="orjson")
dlq_topic = app.topic("events.dlq", key_serializer="utf8", value_serializer="orjson")
ticks_topic = app.topic(TICKS, key_serializer="utf8", value_serializer="raw")
hot_lead_topic = app.topic("alerts.hot_lead", key_serializer="utf8", value_serializer="orjson")
at_risk_topic = app.topic("alerts.at_risk", key_serializer="utf8", value_serializer="orjson")
alert_topics = {"hot_lead": hot_lead_topic, "at_risk": at_risk_topic}
training_topic = app.topic("scoring.training", key_serializer="utf8", value_serializer="orjson",
                           partitions=1)
snapshots_topic = app.topic("models.snapshots", key_serializer="utf8", value_serializer="raw",
                            partitions=1)
anomaly_topic = app.topic("alerts.metric_anomaly", key_serializer="utf8",
                          value_serializer="orjson")


def input_topic(stream: str):  # noqa: ANN201 - faust TopicT
    """The topic object of an input stream, for re-keying and derived events."""
    return app.topic(contract.stream_topic(stream), key_serializer="utf8",
                     value_serializer="raw")
