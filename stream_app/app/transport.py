"""A Faust transport whose consumer fetch wait is a setting, not a fixed 1,500 ms, whose
consumer holds input records back until table recovery is complete (:mod:`.recovery_guard`),
and whose conductor hands raw records over without Faust's registry decode
(:mod:`.fast_conductor`).

Faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500``; on brokers that hold fetches
for the whole wait this sets the end-to-end latency. Registered as the ``streamkafka``
transport (pyproject entry point ``faust.transports``); ``settings.fetch_wait_ms`` sets it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.transport.drivers import aiokafka as driver

from stream_app.app.eager_drain import EagerDrain
from stream_app.app.fast_conductor import LeanConductor
from stream_app.app.producer import FastProducer
from stream_app.app.recovery_guard import RecoveryGuard
from stream_app.config import get_settings
from stream_app.kafka_io import true_end_offsets

log = logging.getLogger(__name__)


class TunedConsumerThread(driver.AIOKafkaConsumerThread):
    """Consumer thread that applies the configured fetch wait and fetch minimum."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        settings = get_settings()
        consumer._fetch_max_wait_ms = settings.fetch_wait_ms
        consumer._fetch_min_bytes = settings.fetch_min_bytes
        return consumer

    async def highwaters(self, *partitions: Any) -> Any:
        """End offsets for table recovery, checked by reading (tansu reports the first offset
        of the last batch: a restore would stop short and lose the tail of the changelog)."""
        reported = await super().highwaters(*partitions)
        settings = get_settings()
        if not settings.verify_end_offsets or not reported:
            return reported
        checked = await asyncio.to_thread(
            true_end_offsets, settings.kafka_bootstrap,
            {(tp.topic, tp.partition): v for tp, v in reported.items()})
        fixed = {tp: checked[(tp.topic, tp.partition)] for tp in reported}
        moved = {f"{tp.topic}[{tp.partition}]": (reported[tp], fixed[tp])
                 for tp in reported if fixed[tp] != reported[tp]}
        if moved:
            log.warning("broker end offsets corrected by reading (reported, real): %s", moved)
        return fixed


class TunedConsumer(RecoveryGuard, EagerDrain, driver.Consumer):
    """aiokafka consumer with the configured fetch wait; input records reach streams only
    after table recovery and the seek to committed offsets (:mod:`.recovery_guard`); each
    fetched batch is handed to the streams in one go (:mod:`.eager_drain`)."""

    eager_drain = get_settings().eager_drain

    def _new_consumer_thread(self) -> TunedConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    """aiokafka transport with a configurable fetch wait; records are sent by librdkafka
    (``STREAM_APP_PRODUCER=aiokafka`` keeps Faust's own producer, for comparison)."""

    Consumer = TunedConsumer
    Conductor = LeanConductor if get_settings().lean_conductor else driver.Transport.Conductor
    Producer = FastProducer if get_settings().producer != "aiokafka" else driver.Producer
