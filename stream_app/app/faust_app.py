"""The Faust ``App`` class of the worker, and of the benchmark's pass-through app, so both
run on the same framework setup.

Two choices, both about work Faust does for every event:

* **No Monitor sensor** (unless ``keep_monitor``): Faust's built-in Monitor records statistics
  of every message and event (four hooks per event, ~3 µs in all) for Faust's own /stats
  pages, which stream-app does not serve; its metrics are the Prometheus ones.
* **Faust's repaired Cython fast paths** (``cython_optimizations=True``, an opt-in setting of
  faust-streaming): the stream iterator takes an event already waiting in the channel's queue
  with ``get_nowait()`` instead of awaiting the channel (an async generator step, a queue
  ``get`` coroutine and their frames per event), as Faust's pure-Python iterator always did.
  The other repaired path (decoding a message once for several channels of one topic) does not
  apply here: every topic has one channel.

Example:
    >>> app = StreamApp("doc-example", broker="kafka://127.0.0.1:1", **FAST_PATHS)
    >>> app.conf.cython_optimizations
    True
"""

from __future__ import annotations

from typing import Any

import faust

#: app options that turn on Faust's opt-in fast paths (see the module docstring)
FAST_PATHS: dict[str, Any] = {"cython_optimizations": True}

#: Faust's ``stream_processing_timeout`` without the Monitor (ten years: never). Faust's
#: check of stalled partitions reads the Monitor's per-partition inbound times; with the
#: Monitor left out they stay empty, so every partition with a backlog at a check was
#: logged as "Stream has not started processing" from 5 minutes after start (QA29 F1),
#: while it processed. Stalls are watched by stream-app's own alerts instead (consumer lag,
#: StreamAppWorkerNotReady: docs/OPERATIONS.md section 3).
NO_STALL_CHECK_S = 10 * 365 * 86_400.0


def stall_check_options(keep_monitor: bool) -> dict[str, Any]:
    """App options of Faust's stalled-partition check: its default with the Monitor, off
    without it (:data:`NO_STALL_CHECK_S`).

    Example:
        >>> stall_check_options(True), stall_check_options(False)
        ({}, {'stream_processing_timeout': 315360000.0})
    """
    return {} if keep_monitor else {"stream_processing_timeout": NO_STALL_CHECK_S}


class StreamApp(faust.App):
    """``faust.App`` whose Monitor sensor is left out unless ``keep_monitor`` is set."""

    keep_monitor: bool = False

    def on_init_dependencies(self):  # noqa: ANN201 - faust's own signature
        deps = super().on_init_dependencies()   # adds the Monitor to the sensors
        if not self.keep_monitor and self.monitor in set(self.sensors):
            self.sensors.remove(self.monitor)
        return deps
