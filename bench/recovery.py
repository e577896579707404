"""Recovery and memory: a worker holding ``users`` users' state is restarted; how long until it
processes again, and what each user costs in the worker (tables) and in Redis.

Steps on one fresh stack: start a worker; load ``users`` users (their first events) and
measure RSS and Redis memory per user and the mean changelog value (the serialized state
record); restart the worker (graceful stop, start at log level info) and time until it is
ready (group joined, tables recovered) and until it processes a new event again; Faust's
recovery log lines split that into the group join and the table restore. Then a second
restart after ``kill -9``. Both restarts check that the worker holds every user again (the
``stream_app_table_users`` gauge).

``table_store`` is the users table's store (``STREAM_APP_TABLE_STORE``): with
``rocksdb://`` all the workers of a run share one data directory (the same disk), so a
restart reads only the changelog tail past the offset RocksDB persisted.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import systems
from bench.measure import cpu_seconds, rss_bytes, sample_until_idle
from bench.procs import ModuleWorker
from bench.workload import first_events_per_user, produce_records

CHANGELOG = "stream-app-users-changelog"


def redis_used(url: str) -> dict[str, int]:
    import redis  # noqa: PLC0415

    r = redis.Redis.from_url(url)
    info = r.info("memory")
    out = {"used_memory": int(info["used_memory"]), "keys": int(r.dbsize())}
    r.close()
    return out


def changelog_value_bytes(bootstrap: str, partitions: int, limit: int = 2_000_000) -> dict:
    """Mean size of the latest changelog value per key (the serialized user state)."""
    from stream_app.kafka_io import read_assigned  # noqa: PLC0415

    c = read_assigned(bootstrap, CHANGELOG, partitions)
    latest: dict[bytes, int] = {}
    n = 0
    idle = 0
    while n < limit and idle < 6:
        msgs = c.consume(num_messages=10_000, timeout=0.5)
        if not msgs:
            idle += 1
            continue
        idle = 0
        for m in msgs:
            if m.error():
                continue
            n += 1
            latest[m.key()] = len(m.value() or b"")
    c.close()
    sizes = [v for v in latest.values() if v]
    return {"records": n, "keys": len(latest),
            "mean_value_bytes": round(sum(sizes) / max(len(sizes), 1))}


_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] \[\d+\] \[INFO\] (.*)$")


def recovery_marks(log_path: Path) -> dict[str, float]:
    """Wall times of Faust's log lines (worker at ``-l info``): worker start, group join,
    restore start/end, ready.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "w.log"
        >>> _ = p.write_text("[2026-01-01 00:00:01,000] [1] [INFO] [^---Recovery]: "
        ...                  "Restoring state from changelog topics...\\n"
        ...                  "[2026-01-01 00:00:03,500] [1] [INFO] [^---Recovery]: "
        ...                  "Done reading from changelog topics\\n")
        >>> m = recovery_marks(p); round(m["restore_end"] - m["restore_start"], 1)
        2.5
    """
    marks: dict[str, float] = {}
    if not log_path.exists():
        return marks
    for line in log_path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        t = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        text = m.group(2)
        if "[^Worker]: Starting..." in text:
            marks.setdefault("faust_start", t)
        elif "(Re-)joining group" in text:
            marks.setdefault("joining", t)
        elif text.startswith("Joined group"):
            marks.setdefault("joined", t)
        elif "Restoring state from changelog topics" in text:
            marks.setdefault("restore_start", t)
        elif "Done reading from changelog topics" in text:
            marks["restore_end"] = t
        elif "Worker ready" in text:
            marks.setdefault("worker_ready", t)
    return marks


def table_users(worker: ModuleWorker) -> int | None:
    """Keys the worker's users table holds (its ``stream_app_table_users`` gauge), or None.

    Example:
        >>> class W:  # a worker that is not listening
        ...     url = "http://127.0.0.1:9"
        >>> table_users(W()) is None
        True
    """
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as r:  # noqa: S310
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("stream_app_table_users{") and 'table="users"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return None


def wait_table_users(worker: ModuleWorker, expect: int, timeout: float = 40.0) -> int | None:
    """Poll the gauge (updated every 10 s) until it reports ``expect`` keys or ``timeout``."""
    t0 = time.monotonic()
    seen = None
    while time.monotonic() - t0 < timeout:
        seen = table_users(worker)
        if seen == expect:
            break
        time.sleep(1.0)
    return seen


def start_worker(stack: Any, name: str, env: dict[str, str], datadir: Path | None
                 ) -> ModuleWorker:
    """A stream-app worker at log level info; with ``datadir``, that data directory (so
    consecutive workers share their table files, as a restart on the same disk does)."""
    w = ModuleWorker(stack, "stream_app", name, env=env, log_level="info")
    if datadir is not None:
        w.env["STREAM_APP_DATADIR"] = str(datadir)
    return w.start()


def restart(stack: Any, name: str, probe: list | None = None, env: dict[str, str] | None = None,
            datadir: Path | None = None) -> dict[str, Any]:
    """Start a worker (log level info); seconds to ready, to the start and end of the table
    restore, and (with ``probe`` records, sent once ready) to the first processed event."""
    wall0 = time.time()
    t0 = time.monotonic()
    w = start_worker(stack, name, env or {}, datadir)
    ws = [w]
    systems.wait_all_ready(ws)
    out: dict[str, Any] = {"ready_s": round(time.monotonic() - t0, 2),
                           "cpu_to_ready_s": round(cpu_seconds(w.process.pid), 2)}
    if probe:
        produce_records(stack.bootstrap, probe)
        s = sample_until_idle(ws[0].processed, 1, 120, interval=0.05)
        out["processing_s"] = round(s[-1][0] - t0, 2)
    marks = recovery_marks(ws[0].log_path)
    if "restore_start" in marks and "restore_end" in marks:
        out["join_s"] = round(marks["restore_start"] - wall0, 2)  # start to restore start
        if "faust_start" in marks:  # of which Python start-up (imports, rules, models)
            out["startup_s"] = round(marks["faust_start"] - wall0, 2)
        if "joining" in marks and "joined" in marks:  # of which the JoinGroup round
            out["group_join_s"] = round(marks["joined"] - marks["joining"], 2)
        out["restore_s"] = round(marks["restore_end"] - marks["restore_start"], 2)
    out["worker"] = ws[0]
    return out


def run(make_stack: Callable[[], Any], users: int, per_user: int = 1,
        log: Callable[[str], None] = print, table_store: str = "memory://",
        idle_s: float = 20.0) -> dict[str, Any]:
    """Load ``users`` users into one worker, then restart it twice (graceful, then kill -9).

    ``idle_s``: after the load, seconds of CPU sampled with no input (the clock sweep and
    timers over the held users)."""
    wl = first_events_per_user(users, per_user)
    # probe: 100 events sent after the restarts (new users, 50 each)
    recs, probe, probe2 = wl.records[:-100], wl.records[-100:-50], wl.records[-50:]
    stack = make_stack()
    env = {"STREAM_APP_TABLE_STORE": table_store}
    datadir = (stack.workdir / "worker-data").resolve()
    res: dict[str, Any] = {"users": wl.users, "events": len(wl.records), "per_user": per_user,
                           "table_store": table_store}
    try:
        first = restart(stack, "worker-a", env=env, datadir=datadir)
        w = first.pop("worker")
        res["first_start_ready_s"] = first["ready_s"]
        log(f"recovery: worker ready in {first['ready_s']}s; loading {wl.users} users")
        time.sleep(2)
        rss0 = rss_bytes(w.process.pid)
        red0 = redis_used(stack.redis.url)
        t0 = time.monotonic()
        cpu0 = cpu_seconds(w.process.pid)
        produce_records(stack.bootstrap, recs)
        s = sample_until_idle(w.processed, len(recs), 3600, idle_s=15, interval=0.5)
        res["load_s"] = round(s[-1][0] - t0, 1)
        res["load_eps"] = round(s[-1][1] / max(s[-1][0] - t0, 1e-9))
        time.sleep(3)  # Redis projection flush
        cpu1 = cpu_seconds(w.process.pid)
        res["load_cpu_us_per_event"] = round((cpu1 - cpu0) / max(s[-1][1], 1) * 1e6, 1)
        time.sleep(idle_s)
        res["idle_cpu_share"] = round((cpu_seconds(w.process.pid) - cpu1) / (idle_s + 1e-9), 3)
        res["table_users_loaded"] = table_users(w)
        rss1 = rss_bytes(w.process.pid)
        red1 = redis_used(stack.redis.url)
        res["memory"] = {
            "worker_rss_bytes_per_user": round((rss1 - rss0) / wl.users),
            "worker_rss_before": rss0, "worker_rss_after": rss1,
            "redis_bytes_per_user": round((red1["used_memory"] - red0["used_memory"])
                                          / wl.users),
            "redis_keys": red1["keys"],
            "state": changelog_value_bytes(stack.bootstrap, stack.partitions),
        }
        log(f"recovery: memory {res['memory']}")
        # users the worker must hold after each restart: those loaded, plus the probes' users
        held = res["table_users_loaded"] or 0
        t = time.monotonic()
        w.stop(60)
        res["stop_s"] = round(time.monotonic() - t, 2)
        again = restart(stack, "worker-b", probe=probe, env=env, datadir=datadir)
        wb = again.pop("worker")
        again["table_users"] = wait_table_users(wb, held + len(probe))
        log(f"recovery: graceful restart {again}")
        wb.kill()  # crash: no flush, no commit, no clean close of the table files
        crash = restart(stack, "worker-c", probe=probe2, env=env, datadir=datadir)
        wc = crash.pop("worker")
        crash["table_users"] = wait_table_users(wc, held + len(probe) + len(probe2))
        wc.stop(60)
        res["restart"] = again
        res["restart_after_kill"] = crash
        res["restart_ready_s"] = again["ready_s"]
        res["restart_processing_s"] = again.get("processing_s")
        res["state_restore_s"] = again.get("restore_s")
        res["kill_restart_processing_s"] = crash.get("processing_s")
        res["users_held_ok"] = (again["table_users"] == held + len(probe)
                                and crash["table_users"] == held + len(probe) + len(probe2))
        log(f"recovery: {res}")
    finally:
        stack.stop()
    return res
