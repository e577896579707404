"""Run a few lines of Python in a fresh interpreter with ``STREAM_APP_*`` settings, as a worker
would start (settings are read once at import, so each setting needs its own process).

Example:
    >>> import tempfile
    >>> last_line("print(6 * 7)", tempfile.gettempdir())
    '42'
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def last_line(code: str, datadir: str | Path, **settings: str) -> str:
    """The last line ``code`` prints, run with ``STREAM_APP_DATADIR=datadir`` and ``settings``
    (environment names and values); fails the test with the child's stderr if it fails."""
    env = {**os.environ, "STREAM_APP_DATADIR": str(datadir), **settings}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]
