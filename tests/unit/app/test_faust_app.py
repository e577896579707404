"""The worker's Faust setup (``stream_app.app.faust_app``): the built-in Monitor sensor is left
out unless asked for (``STREAM_APP_FAUST_MONITOR``: four calls per event for statistics
stream-app does not serve), and Faust's Cython fast paths are on, in the worker and in the
benchmark's pass-through app alike."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = ("from stream_app.app.main import app\n"
        "list(app.on_init_dependencies())\n"
        "print(app.monitor in set(app.sensors), len(set(app.sensors)),\n"
        "      app.conf.stream_processing_timeout)\n")


def _sensors(tmp_path, value: str | None) -> list[str]:
    env = {**os.environ, "STREAM_APP_DATADIR": str(tmp_path)}
    env.pop("STREAM_APP_FAUST_MONITOR", None)
    if value is not None:
        env["STREAM_APP_FAUST_MONITOR"] = value
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1].split()


def test_the_monitor_is_off_by_default(tmp_path) -> None:
    # and with it Faust's stalled-partition check, which reads the Monitor's inbound times
    # (QA29 F1: without them every busy partition was logged as stalled after 5 minutes)
    assert _sensors(tmp_path, None) == ["False", "0", "315360000.0"]


def test_the_setting_keeps_it(tmp_path) -> None:
    assert _sensors(tmp_path, "true") == ["True", "1", "300.0"]


def test_the_cython_fast_paths_are_on_in_worker_and_pass_through(tmp_path) -> None:
    code = ("import faust._cython.streams\n"          # the extension the setting switches
            "from faust.utils.optin import cython_optimizations_enabled as on\n"
            "from stream_app.app.main import app\n"
            "from bench.passthrough_app import app as pt\n"
            "print(on(app.conf), on(pt.conf), type(pt).__name__)\n")
    env = {**os.environ, "STREAM_APP_DATADIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1].split() == ["True", "True", "StreamApp"]
