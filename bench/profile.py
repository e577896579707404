"""Where a worker's time goes: py-spy samples of a running process, summarised.

``Sampler(pid, path).start()`` runs ``py-spy record`` (raw collapsed stacks, aggregated by
function, idle samples left out) until :meth:`Sampler.stop`; :func:`summarize` turns the
stacks into inclusive and self shares per function.

Example:
    >>> lines = ["a (x.py:1);b (y.py:2) 3", "a (x.py:1);c (z.py:5) 1"]
    >>> s = summarize_lines(lines)
    >>> s["total"], s["inclusive"][0], s["self"][0]
    (4, ('a (x.py:1)', 1.0), ('b (y.py:2)', 0.75))
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    """Path of the py-spy binary (next to this Python, or on PATH)."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Sampler:
    """``py-spy record`` of one process, stopped with SIGINT (which writes the file)."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self.proc: subprocess.Popen | None = None

    def start(self) -> Sampler:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", "raw",
             "--function", "--nonblocking", "--output", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def summarize_lines(lines: Iterable[str], top: int = 40) -> dict[str, Any]:
    """Inclusive and self sample shares per frame of collapsed stacks (``a;b;c N``)."""
    incl: Counter = Counter()
    self_: Counter = Counter()
    total = 0
    for line in lines:
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        for f in set(frames):
            incl[f] += count
        self_[frames[-1]] += count
    share = (lambda c: [(f, round(v / total, 4)) for f, v in c.most_common(top)]) if total \
        else (lambda c: [])
    return {"total": total, "inclusive": share(incl), "self": share(self_)}


def summarize(path: Path, top: int = 40) -> dict[str, Any]:
    with path.open() as f:
        return summarize_lines(f, top)


def render(summary: dict[str, Any]) -> str:
    """A text table of the summary (for ``docs/PERFORMANCE.md`` and the run log)."""
    out = [f"{summary['total']} samples", "", "inclusive:"]
    out += [f"  {v:6.1%}  {f}" for f, v in summary["inclusive"]]
    out += ["", "self:"]
    out += [f"  {v:6.1%}  {f}" for f, v in summary["self"]]
    return "\n".join(out)


if __name__ == "__main__":  # python -m bench.profile FILE.raw
    print(render(summarize(Path(sys.argv[1]))))
