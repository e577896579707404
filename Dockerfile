# stream-app image: the worker, the API and the tools share it (`stream-app <command>`).
# The package is installed in editable mode so config/, topics/ and the rules stay at /app
# (settings resolve them from the source tree); mount a ConfigMap over /app/config to change them.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STREAM_APP_WEB_HOST=0.0.0.0 \
    STREAM_APP_DATADIR=/var/lib/stream-app

RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --uid 10001 app \
    && mkdir -p /var/lib/stream-app && chown app /var/lib/stream-app

WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream_app ./stream_app
COPY topics ./topics
COPY config ./config
RUN pip install -e .

USER app
EXPOSE 6066 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
    CMD curl -fsS "http://127.0.0.1:${STREAM_APP_WEB_PORT:-6066}/healthz" || exit 1
ENTRYPOINT ["stream-app"]
# the worker's log level: STREAM_APP_LOG_LEVEL (default warn; a `-l` given here would win)
CMD ["worker"]
