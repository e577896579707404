"""One running stack per work directory: a lock file in the directory holds its owner.

A :class:`~stream_app.services.stack.Stack` cleans its work directory before it starts (the
workers' table stores, the logs). Started a second time on the directory of a stack that
still runs (a second ``stream-app dev`` or ``make run`` with the default ``var/dev``), it
would delete the running stack's stores and logs under it. So the stack first takes
``<workdir>/stack.lock``:

* the file is locked with ``flock`` for as long as the stack runs: the kernel releases the
  lock when its process ends, however it ends (``kill -9`` included), so a lock is never
  held by a process that is gone, whatever pid the file names;
* the file holds the owner's record (pid, command, start time and the pids of the services
  it started), for the message that names the running stack;
* a lock that is taken (a live owner) raises :class:`~stream_app.errors.WorkdirBusyError`
  before anything in the directory is touched; a record left by a run that is gone (killed,
  or a stack never stopped) is taken over, and :attr:`WorkdirLock.previous` tells the caller
  so, with the services of that run that still run (they run in process groups of their own:
  a ``kill -9`` of the owner leaves them running).

Example:
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> lock = WorkdirLock(d).acquire()
    >>> lock.owner()["pid"] == os.getpid(), lock.previous
    (True, None)
    >>> WorkdirLock(d).acquire()   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    stream_app.errors.WorkdirBusyError: ... is in use by a running stack (pid ...
    >>> lock.release()
    >>> WorkdirLock(d).acquire().previous is None     # a clean stop leaves no owner behind
    True
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import sys
from pathlib import Path
from typing import Any

from stream_app.errors import WorkdirBusyError

#: the lock file's name inside the work directory (kept when the directory is cleaned)
LOCK_NAME = "stack.lock"


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat``,
    field 22), to tell a live process from a later one that got the same pid; None where
    there is no ``/proc`` or no such process.

    >>> process_start(os.getpid()) == process_start(os.getpid())
    True
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:   # the command name (field 2) may hold spaces and parentheses: split after it
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def is_running(pid: Any, start: Any = None) -> bool:
    """Whether process ``pid`` runs, and is the one that started at ``start`` (when known).

    >>> is_running(os.getpid()), is_running(None), is_running(os.getpid(), start=-1)
    (True, False, False)
    """
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: it exists
        pass
    if start is None:
        return True
    now = process_start(pid)
    return now is None or now == start


def describe(owner: dict[str, Any]) -> str:
    """``pid 123: stream-app dev --workers 2, started 2026-12-04 23:35:27 UTC``.

    >>> describe({"pid": 7, "command": "stream-app dev", "started": "2026-12-04 23:35:27 UTC"})
    'pid 7: stream-app dev, started 2026-12-04 23:35:27 UTC'
    >>> describe({})
    'pid ?'
    """
    text = f"pid {owner.get('pid', '?')}"
    if owner.get("command"):
        text += f": {owner['command']}"
    if owner.get("started"):
        text += f", started {owner['started']}"
    return text


def _command() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("stream-app", "__main__.py")):
        argv[0] = "stream-app"
    return " ".join(argv)[:300]


class WorkdirLock:
    """The lock of one work directory (see the module docstring)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.path = self.workdir / LOCK_NAME
        self._fh: Any = None
        #: the record of a run that is gone, taken over by :meth:`acquire` (None: none)
        self.previous: dict[str, Any] | None = None
        #: the services of that run that still run: ``[{"name", "pid"}]``
        self.leftovers: list[dict[str, Any]] = []
        self._record: dict[str, Any] = {}

    @property
    def held(self) -> bool:
        return self._fh is not None

    def acquire(self) -> WorkdirLock:
        """Take the directory (created if missing) or raise ``WorkdirBusyError``."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        fh = os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), "r+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:   # held by a live process (this one too, through another stack)
            owner = _parse(fh.read())
            fh.close()
            pid = owner.get("pid")
            raise WorkdirBusyError(
                f"{self.workdir} is in use by a running stack ({describe(owner)}): starting "
                "another one there would delete its worker stores and logs. "
                "Stop that one first (Ctrl-C where it runs"
                + (f", or `kill {pid}`" if isinstance(pid, int) else "") + "), or give this "
                "one a work directory of its own", self.workdir, owner) from None
        previous = _parse(fh.read())
        if previous:
            self.previous = previous
            self.leftovers = [s for s in previous.get("services") or []
                              if isinstance(s, dict)
                              and is_running(s.get("pid"), s.get("start"))]
        self._fh = fh
        self._record = {"pid": os.getpid(), "start": process_start(os.getpid()),
                        "command": _command(),
                        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                        "services": []}
        self._write()
        return self

    def note_services(self, services: list[tuple[str, int]]) -> None:
        """Record the ``(name, pid)`` of the services the stack started."""
        if not self.held:
            return
        self._record["services"] = [{"name": name, "pid": pid, "start": process_start(pid)}
                                    for name, pid in services]
        self._write()

    def owner(self) -> dict[str, Any]:
        """The record this lock wrote."""
        return dict(self._record)

    def release(self) -> None:
        """Empty the record and unlock (the file stays: removing it would let two runs lock
        two different files of the same name)."""
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        try:
            fh.seek(0)
            fh.truncate()
            fh.flush()
        finally:
            fh.close()   # closing the file releases the lock

    def _write(self) -> None:
        fh = self._fh
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(self._record) + "\n")
        fh.flush()


def _parse(text: str) -> dict[str, Any]:
    """The owner's record; ``{}`` for an empty or unreadable file (an owner that stopped
    cleanly, or one that died while writing it).

    >>> _parse(""), _parse("{not json"), _parse('{"pid": 5}')
    ({}, {}, {'pid': 5})
    """
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
