"""Faust's built-in Monitor sensor is left out of the worker unless asked for
(``STREAM_APP_FAUST_MONITOR``): it is called four times per event for statistics stream-app
does not serve."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = ("from stream_app.app.main import app\n"
        "list(app.on_init_dependencies())\n"
        "print(app.monitor in set(app.sensors), len(set(app.sensors)))\n")


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
    assert _sensors(tmp_path, None) == ["False", "0"]


def test_the_setting_keeps_it(tmp_path) -> None:
    assert _sensors(tmp_path, "true") == ["True", "1"]
