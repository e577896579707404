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


def test_the_future_guard_reads_the_clock_the_settings_give(tmp_path) -> None:
    """The worker judges far-future events against the wall clock, or (dev) against a clock
    running STREAM_APP_CLOCK_SPEED times as fast from STREAM_APP_CLOCK_ORIGIN_MS."""
    code = ("import os, time\n"
            "from stream_app.app import agents\n"
            "origin, speed = int(os.environ['STREAM_APP_CLOCK_ORIGIN_MS']), "
            "float(os.environ['STREAM_APP_CLOCK_SPEED'])\n"
            "got, wall = agents.NOW_MS(), time.time() * 1000\n"
            "print(round((got - (origin + (wall - origin) * speed)) / 1000),"
            " round((got - wall) / 86_400_000))\n")
    origin = int((__import__("time").time() - 60) * 1000)      # a minute ago
    for speed, days_ahead in (("1", "0"), ("1440", "1")):      # a day per wall minute
        env = {**os.environ, "STREAM_APP_DATADIR": str(tmp_path), "STREAM_APP_CLOCK_SPEED":
               speed, "STREAM_APP_CLOCK_ORIGIN_MS": str(origin)}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        off_s, days = out.stdout.strip().splitlines()[-1].split()
        assert abs(int(off_s)) <= 1 * int(float(speed)), (speed, out.stdout)
        assert days == days_ahead or speed == "1440" and int(days) >= 1, (speed, out.stdout)
