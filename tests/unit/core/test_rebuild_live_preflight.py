"""``redis-rebuild --live`` checks what it needs before it asks anything of the workers (QA40
F4): with a wrong ``STREAM_APP_APP_ID`` it sent its ``reproject-begin`` ticks to the ticks
topic (shared by every app on the broker: the real workers held their Redis writes for 2
minutes), never said the changelog was missing, and ended with "did not process 32,279 of
the rebuild's requests" (the topic's backlog; it had sent 4) after one identical progress
line a second (F5.6). Fakes stand in for the broker and Redis."""

from __future__ import annotations

import pytest

from stream_app import kafka_io
from stream_app.cli import main, rebuild_cmd

PARTITIONS = 2


class Topic:
    error = None
    partitions = dict.fromkeys(range(PARTITIONS))


class Delivered:
    """A delivered record as the producer's callback gets it."""

    def __init__(self, partition: int, offset: int) -> None:
        self._p, self._o = partition, offset

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o


class Broker:
    """What the command asks of Kafka and Redis, in order (``seen``); the ticks topic holds
    ``held`` records, the group committed ``committed`` (None: it commits past whatever was
    sent, a running worker)."""

    def __init__(self, topics: dict, committed: dict[int, int] | None, held: int) -> None:
        self.topics, self.committed, self.held = topics, committed, held
        self.seen: list[str] = []
        self.commits_after: int | None = None
        self.ends = dict.fromkeys(range(PARTITIONS), held // PARTITIONS)

    # kafka_io
    def require_broker(self, bootstrap: str, **kw) -> Broker:
        return self

    def read_assigned(self, *a, **kw) -> Changelog:
        return Changelog(self)

    def committed_offsets(self, bootstrap: str, group: str, topic: str,
                          partitions: int) -> dict[int, int]:
        self.seen.append(f"committed {group} {topic}")
        if self.commits_after is not None:   # a worker that commits after a few reads
            self.commits_after -= 1
            if self.commits_after <= 0:
                self.committed = None
        return dict(self.ends) if self.committed is None else dict(self.committed)

    def connected_producer(self, bootstrap: str) -> Broker:
        return self

    def produce(self, producer, topic: str, key, value: bytes, partition: int,
                on_delivery) -> None:
        self.seen.append(f"{topic}[{partition}] {value.decode()}")
        on_delivery(None, Delivered(partition, self.ends[partition]))
        self.ends[partition] += 1

    def flush(self, timeout: float) -> int:
        return 0

    # redis
    def ping(self) -> bool:
        self.seen.append("redis ping")
        return True

    def scan_iter(self, **kw) -> list:
        self.seen.append("redis delete")
        return []

    def set(self, *a) -> None:
        pass


class Changelog:
    """An empty changelog (and the ticks topic's watermarks)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def get_watermark_offsets(self, tp, timeout: float) -> tuple[int, int]:
        self.broker.seen.append(f"read {tp.topic}")
        return 0, self.broker.ends[tp.partition] if tp.topic == "internal.ticks" else 0

    def consume(self, num_messages: int, timeout: float) -> list:
        return []

    def position(self, tps: list) -> list:
        return tps

    def close(self) -> None:
        pass


@pytest.fixture()
def broker(monkeypatch):
    """A broker whose changelog topics are set by the test (``broker(topics, committed,
    held)``); STREAM_APP_APP_ID is ``nope``."""
    import redis

    from stream_app.config import get_settings

    monkeypatch.setenv("STREAM_APP_APP_ID", "nope")
    monkeypatch.setenv("STREAM_APP_PARTITIONS", str(PARTITIONS))
    get_settings.cache_clear()
    made: list[Broker] = []

    def make(topics: dict, committed: dict[int, int] | None = None, held: int = 0) -> Broker:
        b = Broker(topics, committed, held)
        for name in ("require_broker", "read_assigned", "committed_offsets",
                     "connected_producer", "produce"):
            monkeypatch.setattr(kafka_io, name, getattr(b, name))
        monkeypatch.setattr(kafka_io, "true_end_offsets", lambda bootstrap, ends: ends)
        monkeypatch.setattr(redis.Redis, "from_url", lambda *a, **kw: b)
        clock = Clock()
        monkeypatch.setattr(rebuild_cmd.time, "monotonic", clock.monotonic)
        monkeypatch.setattr(rebuild_cmd.time, "sleep", clock.sleep)
        made.append(b)
        return b

    yield make
    get_settings.cache_clear()


def run(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        main(["redis-rebuild", "--bootstrap", "b:9092", *args])
    return stop.value.code, capsys.readouterr().err


def test_a_wrong_app_id_is_the_missing_changelog_and_nothing_is_sent(broker, capsys) -> None:
    b = broker({"stream-app-users-changelog": Topic()}, held=32_279)
    code, err = run(capsys, "--live", "--timeout", "20")
    assert code == 1
    assert ("Error: cannot read the users table's changelog nope-users-changelog: it is not "
            "on this broker. Is STREAM_APP_APP_ID right, and has a worker of that app run on "
            "this broker? Nothing was asked of the workers or changed") in err
    assert b.seen == []                        # no tick sent, Redis untouched
    assert "waiting for the workers" not in err and "Traceback" not in err


def test_a_group_that_never_processed_the_ticks_topic_is_refused(broker, capsys) -> None:
    """The changelog is there (an app that ran once), but no worker of the group reads the
    ticks topic, which holds records: refused after --timeout, and no request is sent."""
    b = broker({"nope-users-changelog": Topic()}, committed={0: -1, 1: -1}, held=32_278)
    code, err = run(capsys, "--live", "--timeout", "20")
    assert code == 1
    assert ("Error: no worker of group 'nope' processed internal.ticks within 20 s (it holds "
            "32,278 records; the group committed none): is STREAM_APP_APP_ID right") in err
    assert "run redis-rebuild without --live" in err
    assert err.count("  waiting for group 'nope' to process internal.ticks (32,278 records, "
                     "none committed yet)") == 2                    # at 0 and 10 s
    assert not [s for s in b.seen if s.startswith("internal.ticks[")]
    assert "redis delete" not in b.seen


def test_a_running_worker_that_has_not_committed_yet_is_waited_for(broker, capsys) -> None:
    """Its first ticks just arrived: it commits within seconds, then the rebuild goes on."""
    b = broker({"nope-users-changelog": Topic()}, committed={0: -1, 1: -1}, held=24)
    b.commits_after = 3
    with pytest.raises(SystemExit) as stop:
        main(["redis-rebuild", "--bootstrap", "b:9092", "--live", "--timeout", "20"])
        raise SystemExit(0)
    assert stop.value.code == 0, capsys.readouterr().err
    assert [s for s in b.seen if s.startswith("internal.ticks[")]


def test_the_checks_come_first_and_the_requests_name_the_app(broker, capsys) -> None:
    b = broker({"nope-users-changelog": Topic()})
    with pytest.raises(SystemExit) as stop:   # (the command returns: exit 0)
        main(["redis-rebuild", "--bootstrap", "b:9092", "--live"])
        raise SystemExit(0)
    assert stop.value.code == 0, capsys.readouterr().err
    sent = [s for s in b.seen if s.startswith("internal.ticks[")]
    assert b.seen.index("redis ping") < b.seen.index("committed nope internal.ticks") \
        < b.seen.index(sent[0])
    begin, flushed = sent[:PARTITIONS], sent[PARTITIONS:]
    assert len(flushed) == PARTITIONS and b.seen.index("redis delete") \
        < b.seen.index(flushed[0])
    request = begin[0].split("reproject-begin:")[1]
    assert request.endswith("@nope")          # only app nope's workers act on it
    assert all(s.endswith(f"reproject-begin:{request}") for s in begin)
    assert all(s.endswith(f"reproject-flushed:{request}") for s in flushed)


def test_an_empty_ticks_topic_does_not_stop_the_rebuild(broker, capsys) -> None:
    """Nothing to commit yet proves nothing: the wait for the requests tells."""
    b = broker({"nope-users-changelog": Topic()}, committed={0: -1, 1: -1}, held=0)
    rebuild_cmd.require_workers("b:9092", "nope", PARTITIONS, 20)
    assert "read internal.ticks" in b.seen


class Clock:
    """``time.monotonic`` advanced one second by each ``time.sleep``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def wait(monkeypatch, capsys, committed: list[dict[int, int]], sent: dict[int, list[int]],
         timeout: float) -> tuple[str | None, list[str]]:
    """Run the wait with the group's committed offsets read in turn from ``committed`` (the
    last one again once they run out); the error (None: done) and the progress lines."""
    clock = Clock()
    monkeypatch.setattr(rebuild_cmd.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(rebuild_cmd.time, "sleep", clock.sleep)
    reads = iter(committed)
    last: list[dict[int, int]] = []

    def offsets(*a) -> dict[int, int]:
        last[:] = [next(reads, last[0] if last else {})]
        return last[0]

    monkeypatch.setattr(kafka_io, "committed_offsets", offsets)
    import click

    try:
        rebuild_cmd._wait_processed("b:9092", "nope", PARTITIONS, sent, timeout,
                                    "nothing was deleted")
        error = None
    except click.ClickException as exc:
        error = exc.message
    return error, [ln for ln in capsys.readouterr().err.splitlines() if ln]


def test_the_wait_counts_the_rebuilds_own_requests(monkeypatch, capsys) -> None:
    """The group never committed: the rebuild's 4 requests to go, not the topic's whole
    backlog."""
    sent = {0: [16_000, 16_001], 1: [16_279, 16_280]}
    error, lines = wait(monkeypatch, capsys, [{0: -1, 1: -1}], sent, 20)
    assert error == ("the workers did not process 4 of the rebuild's 4 requests: none for "
                     "20 s: are workers running (group 'nope')? nothing was deleted. The "
                     "requests stay queued and run when one starts; without workers, run "
                     "redis-rebuild without --live")
    # F5.6: a line at the start and one every 10 s while the count does not move (one a
    # second before: 21 here)
    assert lines == ["  waiting for the workers: 4 of 4 requests to go"] * 3


def test_the_progress_line_follows_the_count(monkeypatch, capsys) -> None:
    """Records of others on the topic (16,002 on partition 0: the workers' clock ticks) are
    not waited for; a line each time the count moves."""
    sent = {0: [16_000, 16_001], 1: [16_279, 16_280]}
    reads = [{0: 15_000, 1: 16_000}, {0: 15_000, 1: 16_000}, {0: 16_001, 1: 16_000},
             {0: 16_002, 1: 16_281}]
    error, lines = wait(monkeypatch, capsys, reads, sent, 20)
    assert error is None
    assert lines == ["  waiting for the workers: 4 of 4 requests to go",
                     "  waiting for the workers: 3 of 4 requests to go"]


def test_outstanding_counts_records_at_or_past_the_committed_offset() -> None:
    sent = {0: [3, 7, 9], 1: [4]}
    assert rebuild_cmd.outstanding(sent, {0: -1, 1: -1}) == 4
    assert rebuild_cmd.outstanding(sent, {0: 7, 1: 5}) == 2      # 7 is the next to read
    assert rebuild_cmd.outstanding(sent, {0: 10, 1: 5}) == 0
    assert rebuild_cmd.outstanding(sent, {}) == 4
