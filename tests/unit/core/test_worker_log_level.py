"""``STREAM_APP_LOG_LEVEL`` is the worker's log level when its command line gives none; an
explicit ``-l``/``--loglevel`` wins (QA31 F4: the setting was read by nothing)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from stream_app.cli import with_log_level
from stream_app.config import Settings
from stream_app.errors import ConfigError
from stream_app.services.process import free_port


def _banner_log_line(tmp_path, *flags: str, **settings: str) -> str:
    """The ``| log`` line of the startup banner of ``stream-app worker FLAGS`` (stopped as
    soon as it is printed; nothing listens at the broker address)."""
    env = {k: v for k, v in os.environ.items() if k != "STREAM_APP_LOG_LEVEL"}
    env.update(STREAM_APP_DATADIR=str(tmp_path), STREAM_APP_BROKER_URL="kafka://127.0.0.1:1",
               STREAM_APP_WEB_PORT=str(free_port()), STREAM_APP_STOP_TIMEOUT_S="3", **settings)
    proc = subprocess.Popen([sys.executable, "-m", "stream_app", "worker", *flags], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    try:
        for line in proc.stdout:   # type: ignore[union-attr]
            if line.startswith("| log") or time.monotonic() > deadline:
                return line.strip()
        return ""
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.parametrize("flags, setting, shown", [
    ((), "info", "(info)"),
    ((), None, "(warn)"),                       # the default
    (("-l", "warn"), "debug", "(warn)"),        # the command line wins
    (("--loglevel=error",), "info", "(error)"),
])
def test_the_worker_starts_at_the_settings_log_level(flags, setting, shown, tmp_path) -> None:
    settings = {} if setting is None else {"STREAM_APP_LOG_LEVEL": setting}
    line = _banner_log_line(tmp_path, *flags, **settings)
    assert line.startswith("| log") and shown in line, line


def test_the_level_goes_after_worker_only_without_one_on_the_command_line() -> None:
    assert with_log_level(["worker"], "debug") == ["worker", "-l", "debug"]
    assert with_log_level(["worker", "-lerror"], "debug") == ["worker", "-lerror"]
    assert with_log_level(["worker", "--web-port", "6067", "-l", "info"], "debug") == [
        "worker", "--web-port", "6067", "-l", "info"]
    assert with_log_level(["send", "events.click", "{}"], "debug") == [
        "send", "events.click", "{}"]


def test_a_log_level_faust_would_refuse_is_refused_when_read() -> None:
    assert Settings(log_level=" Critical ").log_level == "crit"
    with pytest.raises(ConfigError, match="STREAM_APP_LOG_LEVEL 'trace'"):
        Settings(log_level="trace")
