"""Worker HTTP pages: ``/healthz`` (alive), ``/ready`` (tables recovered), ``/metrics``."""

from __future__ import annotations

from typing import Any

from stream_app import metrics
from stream_app.app.context import runtime
from stream_app.app.main import app


def is_ready() -> bool:
    """True once table recovery finished and the worker is not rebalancing."""
    recovery = app.tables.recovery
    done = getattr(recovery, "completed", None)
    return bool(done is not None and done.is_set() and not app.rebalancing)


@app.page("/healthz")
async def healthz(web: Any, request: Any) -> Any:
    return web.json({"status": "ok", "processed": runtime.processed})


@app.page("/ready")
async def ready(web: Any, request: Any) -> Any:
    ok = is_ready()
    metrics.set_ready(ok)
    return web.json({"ready": ok}, status=200 if ok else 503)


@app.page("/metrics")
async def prometheus_metrics(web: Any, request: Any) -> Any:
    body, content_type = metrics.render()
    return web.bytes(body, content_type=content_type)
