"""The lean conductor (``stream_app.app.fast_conductor``): a record of a partition read by one
raw-bytes channel reaches the channel's queue as the same event Faust's compiled decode builds,
the handler lookup waits while Faust holds the index lock, a full queue still waits for room,
and every other partition keeps Faust's own handler. Both the worker and the pass-through app
use it (same transport)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types import TP, Message
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.app.fast_conductor import LeanCompiler, LeanConductor, is_raw_channel
from tests.unit.app.snippet import last_line

APP = faust.App("test-lean-conductor", broker="kafka://127.0.0.1:1", store="memory://",
                stream_buffer_maxsize=4)
APP.flow_control.resume()   # a worker resumes it once its partitions are assigned
RAW = APP.topic("in.raw", key_serializer="raw", value_serializer="raw")
TP0 = TP("in.raw", 0)


def _raw_topic() -> Any:
    """A fresh raw channel as an agent iterates it (its queue binds to the loop that waits)."""
    return APP.topic("in.raw", key_serializer="raw", value_serializer="raw").clone(
        is_iterator=True)


def _message(key: bytes | None, value: bytes | None, headers: Any = (), offset: int = 0) -> Message:
    return Message("in.raw", 0, offset, 1.0, 0, headers, key, value, None,
                   len(key or b""), len(value or b""), tp=TP0)


def _fields(ev: Any) -> tuple:
    return ev.key, ev.value, ev.headers, ev.message


def test_which_channels_are_raw() -> None:
    assert is_raw_channel(RAW)
    assert not is_raw_channel(APP.topic("a", key_serializer="utf8", value_serializer="raw"))
    assert not is_raw_channel(APP.topic("b", key_serializer="raw", value_serializer="json"))
    assert not is_raw_channel(APP.topic("c", key_type=str, key_serializer="raw",
                                        value_serializer="raw"))
    assert not is_raw_channel(object())


@settings(max_examples=200, deadline=None)
@given(key=st.none() | st.binary(max_size=40), value=st.none() | st.binary(max_size=300),
       headers=st.lists(st.tuples(st.text(max_size=5), st.binary(max_size=5)), max_size=3))
def test_the_lean_event_is_fausts_decoded_event(key, value, headers) -> None:
    async def run() -> tuple:
        msg = _message(key, value, headers)
        expected = await RAW.decode(msg, propagate=True)   # Faust's compiled raw decode
        conductor = LeanConductor(APP)
        handler = LeanCompiler().build(conductor, TP0, {RAW})
        queue = RAW.queue
        while not queue.empty():
            queue.get_nowait()
        before = msg.refcount
        await handler(msg)
        got = queue.get_nowait()
        return _fields(got), _fields(expected), msg.refcount - before, type(got)

    got, expected, refs, kind = asyncio.run(run())
    assert got == expected
    assert kind is type(APP.create_event(None, None, None, None))
    assert refs == 1


def test_other_partitions_keep_fausts_handler() -> None:
    conductor = LeanConductor(APP)
    lean = LeanCompiler().build(conductor, TP0, {RAW})
    json_topic = APP.topic("in.json", key_serializer="raw", value_serializer="json")
    two = LeanCompiler().build(conductor, TP0, {RAW, APP.topic("in.raw", key_serializer="raw",
                                                              value_serializer="raw")})
    other = LeanCompiler().build(conductor, TP("in.json", 0), {json_topic})
    assert lean.__qualname__.startswith("LeanCompiler.")
    assert two.__qualname__.startswith("ConductorCompiler.")
    assert other.__qualname__.startswith("ConductorCompiler.")


def test_the_lookup_waits_while_faust_holds_the_index_lock() -> None:
    async def run() -> tuple[bool, bool, int]:
        raw = _raw_topic()
        conductor = LeanConductor(APP)
        conductor._tp_to_callback[TP0] = LeanCompiler().build(conductor, TP0, {raw})
        queue = raw.queue
        lock = conductor._tp_to_callback_lock
        await lock.acquire()
        task = asyncio.ensure_future(conductor.on_message(_message(b"k", b"v")))
        await asyncio.sleep(0.01)
        waited = not task.done()
        lock.release()
        await asyncio.wait_for(task, 1)
        # with the lock free: straight to the handler
        await conductor.on_message(_message(b"k", b"w", offset=1))
        return waited, task.done(), queue.qsize()

    waited, done, size = asyncio.run(run())
    assert waited and done
    assert size == 2


def test_a_full_queue_waits_for_room() -> None:
    async def run() -> tuple[bool, list[bytes]]:
        raw = _raw_topic()
        conductor = LeanConductor(APP)
        handler = LeanCompiler().build(conductor, TP0, {raw})
        queue = raw.queue
        for i in range(queue.maxsize):
            await handler(_message(b"k", str(i).encode(), offset=i))
        task = asyncio.ensure_future(handler(_message(b"k", b"last", offset=99)))
        await asyncio.sleep(0.01)
        blocked = not task.done()
        got = [queue.get_nowait().value]
        await asyncio.wait_for(task, 1)
        while not queue.empty():
            got.append(queue.get_nowait().value)
        return blocked, got

    blocked, got = asyncio.run(run())
    assert blocked
    assert got == [b"0", b"1", b"2", b"3", b"last"]


def test_worker_and_pass_through_use_it_and_the_setting_turns_it_off(tmp_path) -> None:
    code = ("from stream_app.app.main import app\n"
            "from bench.passthrough_app import app as pt\n"
            "print(type(app.topics).__name__, type(pt.topics).__name__)\n")
    outs = [last_line(code, tmp_path, STREAM_APP_LEAN_CONDUCTOR=value)
            for value in ("true", "false")]
    assert outs == ["LeanConductor LeanConductor", "Conductor Conductor"]
