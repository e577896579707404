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
from typing import Any


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


def p99_over_time(values: Sequence[float], parts: int = 4) -> list[float]:
    """The p99 of each of ``parts`` consecutive slices of ``values`` (latencies in send
    order): whether a block's tail is a start-up transient or spread over the block.

    Example:
        >>> p99_over_time([100.0] + [1.0] * 99 + [1.0] * 100, parts=2)
        [1.99, 1.0]
    """
    n = len(values)
    if n < parts:
        return []
    cuts = [n * i // parts for i in range(parts + 1)]
    return [percentiles(values[a:b], (99,))["p99"] for a, b in zip(cuts, cuts[1:], strict=False)]


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
                      started: Callable[[int], bool] | None = None,
                      alive: Callable[[], bool] | None = None) -> list[tuple[float, int]]:
    """Poll the counter ``read()`` until it reaches ``target`` or stops moving for ``idle_s``
    (after it started moving), or ``timeout`` passes; return ``(monotonic time, count)``.
    ``alive() == False`` (a measured process exited) raises instead of waiting out the
    timeout.

    Example:
        >>> sample_until_idle(lambda: 0, 10, 5.0, alive=lambda: False)
        Traceback (most recent call last):
        ...
        RuntimeError: a measured process exited during the run
    """
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    last_change = time.monotonic()
    last = -1
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError("a measured process exited during the run")
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


def disk_write_bytes(pid: int) -> int:
    """Bytes process ``pid`` has sent (or dirtied for) storage so far (Linux
    ``/proc/<pid>/io`` ``write_bytes``: files, not sockets); 0 where the kernel does not tell.

    Example:
        >>> import os
        >>> disk_write_bytes(os.getpid()) >= 0
        True
    """
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux ``/proc/<pid>/task/*/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (a wrapper script's
    real server included); 0 for a process that is gone."""
    total = 0.0
    for p in tree_pids(pid):
        try:
            total += cpu_seconds(p)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def machine_cpu_seconds(stat: str | None = None) -> tuple[float, float]:
    """``(busy, idle)`` CPU seconds of the whole machine since boot, summed over its CPUs,
    from the first line of ``/proc/stat`` (idle includes iowait; steal counts as busy: a
    core taken by the host is not ours either).

    Example:
        >>> machine_cpu_seconds("cpu  100 0 50 800 20 0 10 5 0 0\\n")
        (1.65, 8.2)
    """
    import os  # noqa: PLC0415

    if stat is None:
        stat = Path("/proc/stat").read_text()
    f = [int(x) for x in stat.splitlines()[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    idle = f[3] + f[4]
    busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] if len(f) > 7 else 0)
    hz = os.sysconf("SC_CLK_TCK")
    return busy / hz, idle / hz


class CpuProbe:
    """CPU seconds of named processes (each with its descendants) and of the whole machine,
    snapshotted next to a processed-events counter, so a window of the run can be charged
    per processed event.

    ``snap(count)`` records one snapshot; :meth:`window` turns two of them into CPU µs per
    event for each process, the rest of the machine's busy time (work outside the benchmark)
    and the machine's idle share.
    """

    def __init__(self, pids: dict[str, int], self_name: str | None = "bench process") -> None:
        import os  # noqa: PLC0415

        self.pids = dict(pids)
        #: the benchmark process alone: its children are the measured services
        self.self_name = self_name
        if self_name:
            self.pids[self_name] = os.getpid()
        self.snaps: list[tuple[float, int, dict[str, float], tuple[float, float]]] = []

    def snap(self, count: int) -> None:
        cpu = {name: cpu_seconds(pid) if name == self.self_name else tree_cpu_seconds(pid)
               for name, pid in self.pids.items()}
        self.snaps.append((time.monotonic(), count, cpu, machine_cpu_seconds()))

    def index_at(self, count: float) -> int:
        """The first snapshot whose counter reached ``count`` (the last one if none did)."""
        return next((i for i, s in enumerate(self.snaps) if s[1] >= count), len(self.snaps) - 1)

    def window(self, i: int, j: int) -> dict[str, Any]:
        """Per-event CPU between snapshots ``i`` and ``j``; see :func:`cpu_window`."""
        return cpu_window(self.snaps[i], self.snaps[j])


def cpu_window(a: tuple[float, int, dict[str, float], tuple[float, float]],
               b: tuple[float, int, dict[str, float], tuple[float, float]]) -> dict[str, Any]:
    """CPU µs per processed event of each process between two :class:`CpuProbe` snapshots,
    the machine's busy time not accounted to them (``outside``), and its idle share.

    Example:
        >>> a = (0.0, 0, {"w": 1.0, "tansu": 2.0}, (10.0, 10.0))
        >>> b = (2.0, 1000, {"w": 2.0, "tansu": 2.5}, (13.0, 11.0))
        >>> r = cpu_window(a, b)
        >>> r["us_per_event"], r["outside_us_per_event"], r["total_us_per_event"]
        ({'w': 1000.0, 'tansu': 500.0}, 1500.0, 3000.0)
        >>> r["idle_share"], r["busy_cores"], r["events"], r["seconds"]
        (0.25, 1.5, 1000, 2.0)
    """
    events = b[1] - a[1]
    n = max(events, 1)
    per = {k: round((b[2][k] - a[2].get(k, 0.0)) * 1e6 / n, 1) for k in b[2]}
    busy, idle = b[3][0] - a[3][0], b[3][1] - a[3][1]
    ours = sum(b[2][k] - a[2].get(k, 0.0) for k in b[2])
    seconds = b[0] - a[0]
    return {"events": events, "seconds": round(seconds, 2), "us_per_event": per,
            "outside_us_per_event": round(max(busy - ours, 0.0) * 1e6 / n, 1),
            "total_us_per_event": round(busy * 1e6 / n, 1),
            "idle_share": round(idle / (busy + idle), 3) if busy + idle > 0 else None,
            "busy_cores": round(busy / seconds, 2) if seconds > 0 else None}


def two_worker_ceiling(eps_1w: float, us_per_event: float, cores: float,
                       outside_cores: float = 0.0) -> dict[str, float]:
    """The CPU-bound ceiling of a run whose every process shares ``cores``: at ``us_per_event``
    CPU µs per processed event over all of them (workers, broker, Redis, producer), at most
    ``(cores - outside_cores) * 1e6 / us_per_event`` events/s; ``ratio`` is that ceiling over
    the measured 1-worker rate ``eps_1w``.

    One worker is bounded by its own main thread (about ``1e6 / W`` at ``W`` µs per event),
    so with ``O`` µs per event for everything else the 2-worker/1-worker ratio can reach at
    most ``2 W / (W + O)`` on 2 cores: below 2 whatever the code does, and lower for a
    cheaper worker.

    Example (W = 1,400, O = 450, 1 worker at 1e6 / W):
        >>> c = two_worker_ceiling(1e6 / 1400, 1400 + 450, cores=2)
        >>> c["eps"], c["ratio"]
        (1081.1, 1.514)
        >>> two_worker_ceiling(1e6 / 1400, 1850, cores=2, outside_cores=0.5)["ratio"]
        1.135
    """
    eps = max(cores - outside_cores, 0.0) * 1e6 / us_per_event if us_per_event > 0 else 0.0
    return {"eps": round(eps, 1), "ratio": round(eps / eps_1w, 3) if eps_1w > 0 else 0.0}
