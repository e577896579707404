"""Restarts of a worker whose users table is on disk (rocksdb://), on the real broker and Redis.

A graceful stop leaves a clean-stop marker in every partition store and the restarted worker
keeps the files (shown by a sentinel key written into them while the worker was down: it is
still held after the restart, so the table was not rebuilt from the changelog). A SIGKILL
leaves no marker: the restarted worker deletes the files (the sentinel is gone) and restores
every user from the changelog. Users' history survives both: their activity tag moves
low -> medium -> high over four active days spread across the two restarts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import rocksdict

from stream_app.app.store_marker import MARKER_NAME, partition_dirs
from tests.helpers import (
    DAY,
    TIMELESS_ENV,
    Harness,
    TopicReader,
    event,
    running_stack,
    uid,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent.parent
USERS = 12


@pytest.fixture(scope="module")
def disk_stack():
    yield from running_stack(
        ROOT / "var" / f"test-store-{os.getpid()}", partitions=2, worker_timeout=240,
        env={"STREAM_APP_TABLE_STORE": "rocksdb://", **TIMELESS_ENV})


def stores(worker) -> dict[int, Path]:
    return partition_dirs(worker.workdir / worker.name / "v1" / "tables", "users")


def plant_sentinel(db_dir: Path, name: str) -> None:
    """Write one more user into a stopped worker's partition store (a copy of a held user's
    state under a key no event ever used): only a kept store can still hold it."""
    opts = rocksdict.Options(raw_mode=True)
    db = rocksdict.Rdict(str(db_dir), options=opts)
    try:
        key, value = next((k, v) for k, v in db.items() if not k.startswith(b"__faust"))
        new_key = f'"{name}"'.encode() if key.startswith(b'"') else name.encode()
        db[new_key] = value
    finally:
        db.close()


def test_graceful_restart_keeps_the_disk_and_kill_restores_from_changelog(disk_stack):
    h = Harness(disk_stack)
    reader = TopicReader(disk_stack.bootstrap, "tags.changes", disk_stack.partitions)
    try:
        worker = disk_stack.workers[0]
        users = [uid("disk") for _ in range(USERS)]
        t = h.base_ts()

        def day(n: int, old: str | None, new: str) -> None:
            for u in users:
                h.send("click", event(u, "page_view", t + n * DAY))
            for u in users:
                [rec] = reader.wait_for(timeout=120, user_id=u, tag_id="activity", new=new)
                assert rec["old"] == old, (u, rec)

        day(0, None, "low")
        wait_until(lambda: worker.held_users() == USERS, 60, 1.0, "gauge: all users held")

        # graceful stop: every partition store gets a marker
        worker.stop()
        dirs = stores(worker)
        assert sorted(dirs) == [0, 1]
        assert all((d / MARKER_NAME).exists() for d in dirs.values())
        for p, d in dirs.items():
            plant_sentinel(d, f"sentinel-graceful-{p}")
        worker.start()
        worker.wait_ready(240)
        # the files were kept (both sentinels held) and no user is missing
        wait_until(lambda: worker.held_users() == USERS + 2, 60, 1.0, "users + 2 sentinels")
        assert not any((d / MARKER_NAME).exists() for d in stores(worker).values())
        day(1, "low", "medium")  # day 0 was remembered

        # crash: no marker, so the restart deletes the files and reads the changelog
        worker.kill()
        dirs = stores(worker)
        assert not any((d / MARKER_NAME).exists() for d in dirs.values())
        for p, d in dirs.items():
            plant_sentinel(d, f"sentinel-kill-{p}")
        worker.start()
        worker.wait_ready(240)
        # every sentinel is gone (the graceful ones were never on the changelog either),
        # every user is back
        wait_until(lambda: worker.held_users() == USERS, 60, 1.0, "exactly the users")
        for u in users:
            h.send("click", event(u, "page_view", t + 2 * DAY))
        day(3, "medium", "high")  # four active days: days 0 and 1 came from the changelog
    finally:
        reader.close()
        h.close()
