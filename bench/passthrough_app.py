"""The framework's cost: a Faust agent that decodes each input event and forwards it.

Same broker settings, transport (configurable fetch wait), Faust app class and fast paths
(``stream_app.app.faust_app``), topics and serializers as the stream-app worker, nothing
else. Run: ``python -m bench.passthrough_app worker -l warn`` with the ``STREAM_APP_*``
environment of a stack; ``/count`` gives the events forwarded.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import orjson

from stream_app.app import codecs
from stream_app.app.faust_app import FAST_PATHS, StreamApp
from stream_app.config import get_settings
from stream_app.contract import load_contract

OUT_TOPIC = "bench.passthrough.out"

codecs.register()
settings = get_settings()
settings.datadir.mkdir(parents=True, exist_ok=True)
app = StreamApp(
    "bench-passthrough",
    broker=settings.broker_url.replace("kafka://", "streamkafka://", 1),
    store="memory://",
    datadir=str(settings.datadir),
    topic_partitions=settings.partitions,
    consumer_auto_offset_reset="earliest",
    web_port=settings.web_port,
    web_bind=settings.web_host,
    web_in_thread=False,
    broker_commit_interval=1.0,
    stream_buffer_maxsize=8192,
    producer_linger_ms=5,
    key_serializer="utf8",
    value_serializer="raw",
    autodiscover=False,
    **FAST_PATHS,  # the worker's framework setup: Faust's fast paths, no Monitor sensor
    # BENCH_SESSION_TIMEOUT: group session/rebalance timeouts (s), to measure restart joins
    **({"broker_session_timeout": float(os.environ["BENCH_SESSION_TIMEOUT"]),
        "broker_rebalance_timeout": float(os.environ["BENCH_SESSION_TIMEOUT"]),
        "broker_heartbeat_interval": min(3.0, float(os.environ["BENCH_SESSION_TIMEOUT"]) / 3)}
       if os.environ.get("BENCH_SESSION_TIMEOUT") else {}),
)
source = app.topic(*load_contract().input_topics(), key_serializer="raw", value_serializer="raw")
out = app.topic(OUT_TOPIC, key_serializer="raw", value_serializer="raw")
counter = {"n": 0}


@app.agent(source, name="passthrough")
async def passthrough(stream: Any) -> None:
    async for event in stream.events():
        msg = event.message
        ev = orjson.loads(msg.value)
        await out.send(key=msg.key, value=orjson.dumps(ev))
        counter["n"] += 1


@app.task
async def quiet_root_logger() -> None:
    """Same logging as the stream-app worker: undo the root logger at DEBUG that Faust's
    spinner sets (``BENCH_SPINNER_DEBUG=1`` keeps it, to measure what it costs)."""
    root = logging.getLogger()
    if os.environ.get("BENCH_SPINNER_DEBUG") == "1":
        return
    if root.level == logging.DEBUG and root.handlers and root.handlers[0].level > logging.DEBUG:
        root.setLevel(root.handlers[0].level)


@app.page("/healthz")
async def healthz(web: Any, request: Any) -> Any:
    return web.json({"status": "ok", "processed": counter["n"]})


@app.page("/ready")
async def ready(web: Any, request: Any) -> Any:
    done = getattr(app.tables.recovery, "completed", None)
    ok = bool(done is not None and done.is_set() and not app.rebalancing)
    return web.json({"ready": ok}, status=200 if ok else 503)


if __name__ == "__main__":
    app.main()
