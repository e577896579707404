"""``stream-app api`` — serve the HTTP API (profiles, why, timelines, segments) with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import click

from stream_app.config import get_settings

#: uvicorn's log levels (``uvicorn.config.LOG_LEVELS``; not imported: uvicorn loads slowly)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@click.command("api")
@click.option("--host", default=None, help="bind address [default: settings.web_host]")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="port, 0..65535; 0 = a free port the system picks (uvicorn logs which) "
                   "[default: settings.api_port]")
@click.option("--tokens", "tokens", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="YAML map of per-tenant tokens (tenants: {name: [token]})")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="uvicorn worker processes")
@click.option("--follow-rules/--no-follow-rules", default=True, show_default=True,
              help="switch tag definitions to rule sets published with `rules apply`, as the "
                   "workers do (reads rules.versions; without a broker: the local rules)")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
              default="info", show_default=True, help="uvicorn's log level")
def command(host: str | None, port: int | None, tokens: Path | None, workers: int,
            follow_rules: bool, log_level: str) -> None:
    """Serve the read API over Redis (see docs/API.md; OpenAPI at /openapi.json)."""
    import uvicorn  # noqa: PLC0415

    from stream_app.serving.api import FOLLOW_ENV, TOKENS_ENV  # noqa: PLC0415
    from stream_app.serving.auth import load_tenant_tokens  # noqa: PLC0415

    settings = get_settings()
    if tokens is not None:
        load_tenant_tokens(tokens)  # fail now on a bad file, not in every worker
        os.environ[TOKENS_ENV] = str(tokens.resolve())
    os.environ[FOLLOW_ENV] = "1" if follow_rules else "0"
    uvicorn.run("stream_app.serving.api:app_from_env", factory=True,
                host=host or settings.web_host,
                port=settings.api_port if port is None else port,   # an explicit 0 stays 0
                workers=workers, log_level=log_level.lower(), proxy_headers=True)
