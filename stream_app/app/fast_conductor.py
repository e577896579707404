"""Faust's conductor with a lean hand-over for a partition read by one raw-bytes channel.

Why (measured, docs/PERFORMANCE.md item 33): for every fetched record Faust's conductor takes
an ``asyncio.Lock`` to look up the partition's handler, awaits the flow-control and
producer-buffer checks as coroutines, builds a set and a list for the channels it delivered
to, and decodes the record through the serializer registry (key and value each through
``Registry.loads_*``, the codec chain and ``_prepare_payload``: ~3.2 µs per record measured
in-process, for topics whose key and value stay raw bytes). stream-app's worker reads all its
inputs through one channel with raw key and value, so that work buys nothing there.

How: :class:`LeanConductor` looks the handler up without the lock when the lock is free (it
is held only while the subscription index is rebuilt; a record that arrives then takes Faust's
locked path). For a partition with exactly one channel whose key and value are raw bytes with
no model, the handler checks flow control and the producer buffer synchronously (awaiting only
when they would block, as Faust does), and builds the event directly: ``app.create_event(key,
value, headers, message)``, which is what Faust's compiled raw decode returns. A full queue, a
second channel, or any other schema goes through Faust's own handler, unchanged.
``STREAM_APP_LEAN_CONDUCTOR=false`` restores Faust's conductor.

Example (which channels take the lean path):
    >>> import faust
    >>> app = faust.App("doc-lean", broker="kafka://127.0.0.1:1")
    >>> is_raw_channel(app.topic("t", key_serializer="raw", value_serializer="raw"))
    True
    >>> is_raw_channel(app.topic("t", key_serializer="utf8", value_serializer="raw"))
    False
"""

from __future__ import annotations

from collections.abc import MutableSet
from typing import Any

from faust.serializers.schemas import Schema
from faust.transport.conductor import Conductor, ConductorCompiler
from faust.types import TP, Message


def is_raw_channel(chan: Any) -> bool:
    """True if ``chan`` decodes a record to its raw key and value bytes (no model, the plain
    schema, ``raw`` serializers): then Faust's decode is ``create_event(key, value, ...)``."""
    schema = getattr(chan, "schema", None)
    return (type(schema) is Schema and schema.key_type is None and schema.value_type is None
            and schema.key_serializer == "raw" and schema.value_serializer == "raw")


class LeanCompiler(ConductorCompiler):
    """Builds the lean handler for a one-raw-channel partition, Faust's otherwise."""

    def build(self, conductor: Conductor, tp: TP, channels: MutableSet[Any]) -> Any:
        """The partition's handler. ``channels`` is never changed after a build: Faust makes
        new sets when it re-indexes and builds every handler again."""
        if len(channels) != 1 or not is_raw_channel(next(iter(channels))):
            return super().build(conductor, tp, channels)
        (chan,) = channels
        app = conductor.app
        flow = app.flow_control
        flow_active, acquire_flow = flow.is_active, flow.acquire
        buffer = app.producer.buffer
        create_event = app.create_event
        on_topic_buffer_full = app.sensors.on_topic_buffer_full
        on_buffer_full, on_buffer_drop = app.consumer.on_buffer_full, app.consumer.on_buffer_drop

        def on_pressure_high() -> None:
            on_topic_buffer_full(tp)
            on_buffer_full(tp)

        def on_pressure_drop() -> None:
            on_buffer_drop(tp)

        async def on_message(message: Message) -> None:
            if not flow_active():
                await acquire_flow()
            if buffer.size > buffer.max_messages:
                await buffer.wait_until_ebb()
            message.incref(1)
            event = create_event(message.key, message.value, message.headers, message)
            queue = chan.queue
            if queue.full():
                on_topic_buffer_full(tp)
                await chan.put(event)
                return
            queue.put_nowait_enhanced(event, on_pressure_high=on_pressure_high,
                                      on_pressure_drop=on_pressure_drop)

        return on_message


class LeanConductor(Conductor):
    """Faust's conductor with the lock-free handler lookup and :class:`LeanCompiler`."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._compiler = LeanCompiler()

    def _compile_message_handler(self) -> Any:
        if self.app.client_only:
            return super()._compile_message_handler()
        locked_path = super()._compile_message_handler()
        lock = self._tp_to_callback_lock
        handlers = self._tp_to_callback

        async def on_message(message: Message) -> None:
            if lock.locked():
                return await locked_path(message)
            return await handlers[message.tp](message)

        return on_message
