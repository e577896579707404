"""The worker refuses Faust's aiokafka producer with a clear error (its agents queue outputs
and state writes on the librdkafka producer); the pass-through bench app may use it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.unit.app.snippet import last_line


def test_worker_refuses_the_aiokafka_producer(tmp_path) -> None:
    env = {**os.environ, "STREAM_APP_PRODUCER": "aiokafka",
           "STREAM_APP_DATADIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", "import stream_app.app.main"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "ConfigError" in out.stderr and "librdkafka only" in out.stderr


def test_the_default_producer_imports(tmp_path) -> None:
    env = {**os.environ, "STREAM_APP_DATADIR": str(tmp_path)}
    env.pop("STREAM_APP_PRODUCER", None)
    out = subprocess.run([sys.executable, "-c", "import stream_app.app.main"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_linger_setting_reaches_the_apps_producer(tmp_path) -> None:
    """``STREAM_APP_PRODUCER_LINGER_MS`` is what the worker's librdkafka producer is built
    with (0 included: no gathering at all)."""
    code = ("from stream_app.app.main import app\n"
            "print(app.producer.rk_config()['linger.ms'])\n")
    for value in ("0", "40"):
        assert last_line(code, tmp_path, STREAM_APP_PRODUCER_LINGER_MS=value) == value


def test_the_fetch_settings_reach_the_workers_consumer(tmp_path) -> None:
    """``STREAM_APP_FETCH_WAIT_MS`` and ``STREAM_APP_FETCH_MIN_BYTES`` are what the worker's
    aiokafka consumer fetches with (Faust hard-codes a 1,500 ms wait and 1 byte)."""
    code = ("import asyncio\n"
            "from stream_app.app.main import app\n"
            "async def main():\n"
            "    t = app.consumer._new_consumer_thread()\n"
            "    c = t._create_worker_consumer(app.transport)\n"
            "    print(c._fetch_max_wait_ms, c._fetch_min_bytes)\n"
            "asyncio.run(main())\n")
    assert last_line(code, tmp_path) == "50 1"
    assert last_line(code, tmp_path, STREAM_APP_FETCH_WAIT_MS="120",
                     STREAM_APP_FETCH_MIN_BYTES="8192") == "120 8192"
