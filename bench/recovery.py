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
restart after a graceful stop reads only the changelog tail past the offset RocksDB
persisted; after ``kill -9`` the store has no clean-stop marker and is rebuilt from the whole
changelog (``stream_app.app.store_marker``). Each restart records the markers the stop left
and what the start kept or deleted (``store_check``).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import systems
from bench.measure import cpu_seconds, rss_bytes, sample_until_idle
from bench.procs import ModuleWorker
from bench.workload import Record, first_events_per_user, produce_records

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
        elif text.startswith("due index rebuilt:"):
            marks.setdefault("due_rebuilt", t)
            m2 = re.search(r"in ([\d.]+) s", text)
            if m2:
                marks.setdefault("due_rebuild_s", float(m2.group(1)))
    return marks


_CHECK = re.compile(r"clean-stop check in ([\d.]+)s: kept \[([\d, ]*)\], wiped \[([\d, ]*)\]")


def store_check(log_path: Path) -> dict[str, Any] | None:
    """What the worker's start did with its rocksdb:// partition stores (its info log line),
    or None (memory://, or no such line).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "w.log"
        >>> _ = p.write_text("[2026-01-01 00:00:01,000] [1] [INFO] table users: clean-stop "
        ...                  "check in 0.002s: kept [0, 1], wiped [2], in use [] \\n")
        >>> store_check(p)
        {'seconds': 0.002, 'kept': [0, 1], 'wiped': [2]}
    """
    if not log_path.exists():
        return None
    for line in log_path.read_text(errors="replace").splitlines():
        m = _CHECK.search(line)
        if m:
            def parts(g: str) -> list[int]:
                return [int(x) for x in g.split(",") if x.strip()]
            return {"seconds": float(m.group(1)), "kept": parts(m.group(2)),
                    "wiped": parts(m.group(3))}
    return None


def clean_markers(datadir: Path) -> int:
    """Clean-stop markers in a worker data directory's partition stores.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); (d / "v1/tables/users-0.db").mkdir(parents=True)
        >>> _ = (d / "v1/tables/users-0.db/STREAM_APP_CLEAN_STOP").write_text("{}")
        >>> clean_markers(d), clean_markers(d / "nothing")
        (1, 0)
    """
    from stream_app.app.store_marker import MARKER_NAME  # noqa: PLC0415

    return len(list(Path(datadir).glob(f"v1/tables/*.db/{MARKER_NAME}")))


def wait_table_users(worker: ModuleWorker, expect: int, timeout: float = 120.0) -> int | None:
    """Poll the gauge (updated every 10 s) until it reports ``expect`` keys or ``timeout``."""
    t0 = time.monotonic()
    seen = None
    while time.monotonic() - t0 < timeout:
        seen = worker.held_users()
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
    stack.workers.append(w)  # stopped with the stack, also when the phase fails
    return w.start()


def restart(stack: Any, name: str, probe: list | None = None, env: dict[str, str] | None = None,
            datadir: Path | None = None) -> dict[str, Any]:
    """Start a worker (log level info); seconds to ready, to the start and end of the table
    restore, and (with ``probe`` records) to the first processed event. The probe is produced
    while no worker runs (as live traffic keeps arriving during a restart), so
    ``processing_s`` is when the worker really processes again; ``ready_s`` is when the bench
    saw ``/ready`` four polls in a row (0.5 s apart), which lags behind that."""
    if probe:
        produce_records(stack.bootstrap, probe)
    wall0 = time.time()
    t0 = time.monotonic()
    w = start_worker(stack, name, env or {}, datadir)
    ws = [w]
    processing_s = None
    if probe:
        s = sample_until_idle(w.processed, 1, 600, interval=0.05)
        processing_s = round(s[-1][0] - t0, 2)
    systems.wait_all_ready(ws)
    out: dict[str, Any] = {"ready_s": round(time.monotonic() - t0, 2),
                           "cpu_to_ready_s": round(cpu_seconds(w.process.pid), 2)}
    if processing_s is not None:
        out["processing_s"] = processing_s
    marks = recovery_marks(ws[0].log_path)
    if "faust_start" in marks:  # Python start-up (imports, rules, models)
        out["startup_s"] = round(marks["faust_start"] - wall0, 2)
    if "joining" in marks and "joined" in marks:  # the JoinGroup round
        out["group_join_s"] = round(marks["joined"] - marks["joining"], 2)
    if "worker_ready" in marks:  # Faust's "Worker ready" (the HTTP check can lag behind it)
        out["ready_log_s"] = round(marks["worker_ready"] - wall0, 2)
        if "joined" in marks:  # assignment, store check, end offsets, restore, seek
            out["joined_to_ready_s"] = round(marks["worker_ready"] - marks["joined"], 2)
    if "due_rebuild_s" in marks:  # the sweep's first pass over every held user
        out["due_rebuild_s"] = marks["due_rebuild_s"]
    if "restore_start" in marks and "restore_end" in marks:
        out["join_s"] = round(marks["restore_start"] - wall0, 2)  # start to restore start
        out["restore_s"] = round(marks["restore_end"] - marks["restore_start"], 2)
    check = store_check(ws[0].log_path)
    if check is not None:
        out["store_check"] = check
    out["worker"] = ws[0]
    return out


def highwater_gap(bootstrap: str, records: int = 5_000, topic: str = "bench.hw-check") -> dict:
    """Produce ``records`` in batches to a 1-partition topic, read them back, and compare
    the broker's high watermark (ListOffsets latest) with the last offset + 1. Faust reads a
    changelog up to high watermark - 1, so a positive ``gap`` is records a restore skips.
    (tansu 0.6.0: the high watermark is the first offset of the last batch.)"""
    from confluent_kafka import TopicPartition  # noqa: PLC0415
    from confluent_kafka.admin import AdminClient, NewTopic  # noqa: PLC0415

    from stream_app.kafka_io import make_producer, produce, read_assigned  # noqa: PLC0415

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={"retention.ms": "-1",
                                                       "retention.bytes": "-1"})])[topic].result()
    p = make_producer(bootstrap, **{"linger.ms": 50})
    for i in range(records):
        produce(p, topic, str(i).encode(), b"x" * 1000)
    p.flush(60)
    c = read_assigned(bootstrap, topic, 1)
    last, idle = -1, 0
    while idle < 3:
        msgs = c.consume(num_messages=10_000, timeout=1.0)
        idle = 0 if msgs else idle + 1
        last = max([last] + [m.offset() for m in msgs if not m.error()])
    _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    c.close()
    return {"records": records, "last_offset": last, "high_watermark": high,
            "gap": last + 1 - high}


def seed_states(users: int, templates: int = 5_000) -> list[Record]:
    """Changelog records of ``users`` user states: the tag engine's state after each of
    ``templates`` simulated users' first event, cloned under the keys ``seed<i>``.

    Example:
        >>> recs = seed_states(30, templates=10)
        >>> len(recs), recs[29][1], recs[0][0] == CHANGELOG
        (30, b'"seed29"', True)
    """
    from stream_app.app.runtime import build_engine  # noqa: PLC0415
    from stream_app.config import Settings  # noqa: PLC0415
    from stream_app.events import parse_event  # noqa: PLC0415

    wl = first_events_per_user(templates, 1, seed=11, template_users=templates)
    engine = build_engine(Settings())
    blobs = []
    for topic, _key, value, _ in wl.records:
        result = engine.on_event(None, parse_event(value, topic.split(".", 1)[1]))
        if result.state is not None:
            blobs.append(orjson.dumps(result.state))
    # Faust encodes the table's keys and values with its "json" codec (a Table's serializers
    # come from key_type/value_type, not from schema=): a key is the JSON string "seed<i>"
    return [(CHANGELOG, orjson.dumps(f"seed{i}"), blobs[i % len(blobs)], "")
            for i in range(users)]


def load_by_changelog(stack: Any, users: int, env: dict[str, str], datadir: Path,
                      res: dict[str, Any], log: Callable[[str], None]) -> ModuleWorker:
    """State of ``users`` users written straight to the changelog (no pipeline run), then a
    worker started on it: its start-up is a full restore. Returns that worker."""
    first = restart(stack, "worker-0", env=env, datadir=datadir)  # creates the changelog
    w0 = first.pop("worker")
    res["first_start_ready_s"] = first["ready_s"]
    time.sleep(2)
    rss0 = rss_bytes(w0.process.pid)
    w0.stop(60)
    recs = seed_states(users)
    produce_records(stack.bootstrap, recs)
    log(f"recovery: {users} user states on the changelog; full restore")
    full = restart(stack, "worker-a", env=env, datadir=datadir)
    w = full.pop("worker")
    full["table_users"] = wait_table_users(w, users)
    res["full_restore"] = full
    res["table_users_loaded"] = full["table_users"]
    time.sleep(5)
    rss1 = rss_bytes(w.process.pid)
    res["memory"] = {
        "worker_rss_bytes_per_user": round((rss1 - rss0) / users),
        "worker_rss_before": rss0, "worker_rss_after": rss1,
        "state": {"records": len(recs), "keys": users,
                  "mean_value_bytes": round(sum(len(r[2]) for r in recs) / len(recs))},
    }
    log(f"recovery: full restore {full}; memory {res['memory']}")
    return w


def run(make_stack: Callable[[], Any], users: int, per_user: int = 1,
        log: Callable[[str], None] = print, table_store: str = "memory://",
        idle_s: float = 20.0, seed: str = "events") -> dict[str, Any]:
    """Load ``users`` users into one worker, then restart it twice (graceful, then kill -9).

    ``idle_s``: after the load, seconds of CPU sampled with no input (the clock sweep and
    timers over the held users). ``seed="changelog"`` writes the users' states straight to
    the changelog instead of running their events through the pipeline (minutes instead of
    an hour at 100k users on a busy machine); the restarts are measured the same way."""
    wl = first_events_per_user(100 if seed == "changelog" else users, per_user)
    # probe: 100 events sent after the restarts (new users, 50 each)
    recs, probe, probe2 = wl.records[:-100], wl.records[-100:-50], wl.records[-50:]
    stack = make_stack()
    env = {"STREAM_APP_TABLE_STORE": table_store}
    datadir = (stack.workdir / "worker-data").resolve()
    res: dict[str, Any] = {"users": users if seed == "changelog" else wl.users,
                           "events": len(wl.records), "per_user": per_user,
                           "table_store": table_store, "seed": seed}
    try:
        res["broker_highwater"] = highwater_gap(stack.bootstrap)
        log(f"recovery: broker high watermark check {res['broker_highwater']}")
        if seed == "changelog":
            w = load_by_changelog(stack, users, env, datadir, res, log)
            _restarts(stack, w, res, probe, probe2, env, datadir, log)
            return res
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
        res["table_users_loaded"] = w.held_users()
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
        _restarts(stack, w, res, probe, probe2, env, datadir, log)
    finally:
        stack.stop()
    return res


def _restarts(stack: Any, w: ModuleWorker, res: dict[str, Any], probe: list, probe2: list,
              env: dict[str, str], datadir: Path, log: Callable[[str], None]) -> None:
    """Stop ``w`` gracefully and restart; kill -9 that worker and restart again."""
    # users the worker must hold after each restart: those loaded, plus the probes' users
    held = res["table_users_loaded"] or 0
    t = time.monotonic()
    w.stop(60)
    res["stop_s"] = round(time.monotonic() - t, 2)
    res["markers_after_stop"] = clean_markers(datadir)
    again = restart(stack, "worker-b", probe=probe, env=env, datadir=datadir)
    wb = again.pop("worker")
    again["table_users"] = wait_table_users(wb, held + len(probe))
    log(f"recovery: graceful restart {again}")
    wb.kill()  # crash: no flush, no commit, no clean close of the table files
    res["markers_after_kill"] = clean_markers(datadir)
    crash = restart(stack, "worker-c", probe=probe2, env=env, datadir=datadir)
    wc = crash.pop("worker")
    crash["table_users"] = wait_table_users(wc, held + len(probe) + len(probe2))
    wc.stop(60)
    res["restart"] = again
    res["restart_after_kill"] = crash
    res["restart_ready_s"] = again["ready_s"]
    res["restart_processing_s"] = again.get("processing_s")
    # a kept RocksDB store restores nothing (no Faust restore log lines): the whole step from
    # assignment to ready (store check, end offsets, tail read, seek) bounds it
    res["state_restore_s"] = again.get("restore_s", again.get("joined_to_ready_s"))
    res["kill_restart_processing_s"] = crash.get("processing_s")
    res["users_held_ok"] = (again["table_users"] == held + len(probe)
                            and crash["table_users"] == held + len(probe) + len(probe2))
    log(f"recovery: {res}")
