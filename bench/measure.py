"""Small measuring helpers: percentiles, rates from counter samples, process memory, timers.

Example:
    >>> percentiles([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (50, 99))
    {'p50': 5.5, 'p99': 9.91}
    >>> rate_between([(0.0, 0), (1.0, 100), (2.0, 300), (3.0, 400)], 0.05, 0.95)
    138.46...
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path


def percentiles(values: Iterable[float], ps: Sequence[float] = (50, 99, 99.9)) -> dict[str, float]:
    """Linear-interpolated percentiles (``p50``, ``p99``, ``p99.9``) of ``values``."""
    xs = sorted(values)
    out: dict[str, float] = {}
    if not xs:
        return {f"p{p:g}": float("nan") for p in ps}
    for p in ps:
        k = (len(xs) - 1) * p / 100
        lo = int(k)
        hi = min(lo + 1, len(xs) - 1)
        out[f"p{p:g}"] = round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 3)
    return out


def _cross(samples: Sequence[tuple[float, int]], level: float) -> float:
    """Interpolated time at which the counter reached ``level``."""
    prev_t, prev_c = samples[0]
    for t, c in samples:
        if c >= level:
            if c == prev_c:
                return t
            return prev_t + (t - prev_t) * (level - prev_c) / (c - prev_c)
        prev_t, prev_c = t, c
    return samples[-1][0]


def rate_between(samples: Sequence[tuple[float, int]], lo: float = 0.05,
                 hi: float = 0.95) -> float:
    """Events/s between the times the counter passed ``lo`` and ``hi`` of its final value.

    Leaves out the start (partition assignment, first fetches) and the tail (the last
    partitions draining alone), so the figure is the steady processing rate.
    """
    total = samples[-1][1]
    if total <= 0:
        return 0.0
    t0, t1 = _cross(samples, total * lo), _cross(samples, total * hi)
    return total * (hi - lo) / (t1 - t0) if t1 > t0 else 0.0


def sample_until_idle(read: Callable[[], int], target: int, timeout: float,
                      idle_s: float = 5.0, interval: float = 0.1,
                      started: Callable[[int], bool] | None = None) -> list[tuple[float, int]]:
    """Poll the counter ``read()`` until it reaches ``target`` or stops moving for ``idle_s``
    (after it started moving), or ``timeout`` passes; return ``(monotonic time, count)``."""
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    last_change = time.monotonic()
    last = -1
    while time.monotonic() < deadline:
        try:
            c = read()
        except Exception:  # noqa: BLE001 - the page is not up yet
            time.sleep(interval)
            continue
        now = time.monotonic()
        samples.append((now, c))
        if c != last:
            last, last_change = c, now
        if c >= target:
            break
        if c > 0 and now - last_change > idle_s:
            break
        time.sleep(interval)
    # trim the idle wait before the first event so rates start at the first move
    first = next((i for i, (_, c) in enumerate(samples) if c > 0), len(samples))
    return samples[max(first - 1, 0):] or [(time.monotonic(), 0)]


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (Linux ``/proc``), children not included."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (all its threads).

    CPU time per event is steadier than events/s on a shared machine: waiting for a core
    does not count.
    """
    import os  # noqa: PLC0415

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
