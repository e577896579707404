"""The Faust app: configured from settings; agents, timers and pages register on import.

Run a worker with ``stream-app worker -l warn`` (the settings come from ``STREAM_APP_*``).
"""

from __future__ import annotations

from stream_app.app import codecs
from stream_app.app.faust_app import FAST_PATHS, StreamApp, stall_check_options
from stream_app.app.stop_watchdog import Worker
from stream_app.config import get_settings
from stream_app.security.kafka_auth import faust_security_kwargs

codecs.register()
settings = get_settings()
settings.datadir.mkdir(parents=True, exist_ok=True)

app = StreamApp(
    settings.app_id,
    broker=settings.broker_url.replace("kafka://", "streamkafka://", 1),
    store="memory://",
    datadir=str(settings.datadir),
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication,
    table_standby_replicas=0,
    consumer_auto_offset_reset="earliest",
    web_port=settings.web_port,
    web_bind=settings.web_host,
    web_in_thread=False,
    broker_commit_interval=1.0,
    stream_buffer_maxsize=8192,
    producer_linger_ms=settings.producer_linger_ms,
    producer_max_request_size=16 * 1024 * 1024,
    consumer_max_fetch_size=16 * 1024 * 1024,
    key_serializer="utf8",
    value_serializer="raw",
    autodiscover=False,
    origin="stream_app.app",
    Worker=Worker,   # a stop that hangs (broker gone) ends after STREAM_APP_STOP_TIMEOUT_S
    **FAST_PATHS,  # Faust's opt-in fast paths (app/faust_app.py)
    **stall_check_options(settings.faust_monitor),  # needs the Monitor (faust_app.py)
    **faust_security_kwargs(),  # SASL/TLS from STREAM_APP_KAFKA_* (nothing for PLAINTEXT)
)
app.keep_monitor = settings.faust_monitor   # Faust's Monitor sensor: off unless asked for

# register agents, timers and web pages (imports for their side effects)
from stream_app.app import (  # noqa: E402,F401
    agents,
    broadcast,
    business,
    sweep,
    training,
    web,
)
