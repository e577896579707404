"""A Faust transport whose consumer fetch wait is a setting, not a fixed 1,500 ms, and whose
consumer holds input records back until table recovery is complete (:mod:`.recovery_guard`).

Faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500``; on brokers that hold fetches
for the whole wait this sets the end-to-end latency. Registered as the ``streamkafka``
transport (pyproject entry point ``faust.transports``); ``settings.fetch_wait_ms`` sets it.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver

from stream_app.app.producer import FastProducer
from stream_app.app.recovery_guard import RecoveryGuard
from stream_app.config import get_settings


class TunedConsumerThread(driver.AIOKafkaConsumerThread):
    """Consumer thread that applies the configured fetch wait."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = get_settings().fetch_wait_ms
        return consumer


class TunedConsumer(RecoveryGuard, driver.Consumer):
    """aiokafka consumer with the configured fetch wait; input records reach streams only
    after table recovery and the seek to committed offsets (:mod:`.recovery_guard`)."""

    def _new_consumer_thread(self) -> TunedConsumerThread:
        return TunedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    """aiokafka transport with a configurable fetch wait; records are sent by librdkafka."""

    Consumer = TunedConsumer
    Producer = FastProducer
