"""Settings pydantic used to accept and a library refused later (a worker's or the API's
traceback: QA31 F3) are refused when read: one ``Error:`` line naming the variable, exit 1;
so is a setting the app refuses as it is imported (``STREAM_APP_PRODUCER=aiokafka``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stream_app.config import DISABLE_PARTS, Settings
from stream_app.errors import ConfigError

#: a worker that got past its settings would try this broker (nothing listens on port 1)
NOWHERE = {"STREAM_APP_BROKER_URL": "kafka://127.0.0.1:1",
           "STREAM_APP_REDIS_URL": "redis://127.0.0.1:1/0", "STREAM_APP_STOP_TIMEOUT_S": "5"}


def _run(argv: list[str], tmp_path, **settings: str) -> subprocess.CompletedProcess:
    """``stream-app ARGV`` in a fresh process with ``settings`` (environment names)."""
    env = {k: v for k, v in os.environ.items() if k != "STREAM_APP_TRACEBACK"}
    env.update(NOWHERE, STREAM_APP_DATADIR=str(tmp_path), **settings)
    return subprocess.run([sys.executable, "-m", "stream_app", *argv], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name, value, says", [
    ("STREAM_APP_PRODUCER", "foo", "STREAM_APP_PRODUCER='foo': Input should be 'librdkafka' "
     "or 'aiokafka'"),
    ("STREAM_APP_PRODUCER", "aiokafka", "STREAM_APP_PRODUCER='aiokafka': the worker sends "
     "through librdkafka only"),
    ("STREAM_APP_WEB_PORT", "99999", "STREAM_APP_WEB_PORT='99999': Input should be less than "
     "or equal to 65535"),
    ("STREAM_APP_WEB_PORT", "0", "STREAM_APP_WEB_PORT='0': Input should be greater than"),
    ("STREAM_APP_REDIS_URL", "foo", "STREAM_APP_REDIS_URL 'foo': must start with redis://"),
    ("STREAM_APP_STATE_WRITES", "foo", "STREAM_APP_STATE_WRITES='foo': Input should be "
     "'direct' or 'faust'"),
    ("STREAM_APP_DISABLE", "redis,scorin", "STREAM_APP_DISABLE 'redis,scorin': unknown part "
     "'scorin'"),
])
def test_a_worker_with_a_bad_setting_says_one_line(name, value, says, tmp_path) -> None:
    out = _run(["worker", "-l", "warn"], tmp_path, **{name: value})
    assert out.returncode == 1, out.stderr[-2000:]
    assert out.stderr.startswith(f"Error: {says}") or f"): {says}" in out.stderr, out.stderr
    assert len(out.stderr.splitlines()) <= 2 and "Traceback" not in out.stderr, out.stderr


def test_the_api_with_a_port_out_of_range_says_one_line(tmp_path) -> None:
    out = _run(["api"], tmp_path, STREAM_APP_API_PORT="99999")
    assert out.returncode == 1, out.stderr[-2000:]
    assert out.stderr.startswith("Error: invalid settings (STREAM_APP_* variables): "
                                 "STREAM_APP_API_PORT='99999': Input should be less than or "
                                 "equal to 65535"), out.stderr
    assert len(out.stderr.splitlines()) == 2 and "Traceback" not in out.stderr


def test_the_traceback_is_shown_when_asked(tmp_path) -> None:
    out = _run(["worker"], tmp_path, STREAM_APP_PRODUCER="aiokafka", STREAM_APP_TRACEBACK="1")
    assert out.returncode == 1 and "Traceback" in out.stderr
    assert "ConfigError: STREAM_APP_PRODUCER='aiokafka'" in out.stderr


@pytest.mark.parametrize("field, good", [
    ("web_port", [1, 6066, 65535]), ("api_port", [0, 8080, 65535]),
    ("producer", ["librdkafka", "aiokafka"]), ("state_writes", ["direct", "faust"]),
    ("redis_url", ["redis://r:6379/0", "rediss://r:6380/1", "unix:///run/redis.sock"]),
    ("disable", ["", ",".join(DISABLE_PARTS), " redis , scoring "]),
])
def test_the_values_in_use_stay_valid(field, good) -> None:
    for value in good:
        assert getattr(Settings(**{field: value}), field) == value


@pytest.mark.parametrize("field, bad", [
    ("web_port", [0, -1, 65536]), ("api_port", [-1, 65536]),
    ("producer", ["confluent", ""]), ("state_writes", ["table"]),
    ("redis_url", ["127.0.0.1:6379", "http://r:6379", ""]),
    ("disable", ["scorng", "redis,,agents"]),
])
def test_values_a_library_would_refuse_later_are_refused_now(field, bad) -> None:
    for value in bad:
        with pytest.raises((ValueError, ConfigError)):
            Settings(**{field: value})
