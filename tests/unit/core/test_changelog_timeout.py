"""A users-table changelog whose read stalls for ``--timeout`` (``rules diff`` or
``redis-rebuild``) is one ``Error:`` line that says how far the read got and names the option
to raise, with a value (QA L7: ``Error: TimeoutError: changelog ... not read to its end in
120s``). The timeout is one of inactivity: a large changelog read at a steady pace is read to
its end however long it takes, and the progress line never passes its total (QA38 F3: the
default 120 s of the whole read was outgrown by ``make run``'s stack within 15 minutes, and
the line said "231,813 of ~217,748"). A fake consumer stands in for the broker."""

from __future__ import annotations

import time

import pytest

from stream_app import kafka_io
from stream_app.cli import main
from stream_app.cli.rebuild_cmd import ChangelogTimeout, TableReader

PARTITIONS = 4


class Msg:
    def __init__(self, n: int) -> None:
        self.n = n

    def error(self) -> None:
        return None

    def key(self) -> bytes:
        return f'"u{self.n}"'.encode()

    def value(self) -> bytes:
        return b'{"uid": "u%d", "tags": {}}' % self.n

    def partition(self) -> int:
        return 0


class SlowChangelog:
    """1,000 records per partition; gives 300 of partition 0, then nothing more."""

    def __init__(self) -> None:
        self.given = 0

    def get_watermark_offsets(self, tp, timeout: float) -> tuple[int, int]:
        return 0, 1000

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        if self.given < 300:
            self.given += 100
            return [Msg(self.given - 100 + i) for i in range(100)]
        time.sleep(timeout)
        return []

    def position(self, tps: list) -> list:
        for tp in tps:
            tp.offset = self.given if tp.partition == 0 else 0
        return tps

    def close(self) -> None:
        pass


class Topic:
    error = None
    partitions = dict.fromkeys(range(PARTITIONS))


class Metadata:
    """The broker's metadata: the changelog is there (``redis-rebuild`` checks it first)."""

    topics: dict = {"stream-app-users-changelog": Topic()}


@pytest.fixture()
def slow_broker(monkeypatch):
    monkeypatch.setattr(kafka_io, "require_broker", lambda bootstrap, **kw: Metadata())
    monkeypatch.setattr(kafka_io, "read_assigned", lambda *a, **kw: SlowChangelog())
    monkeypatch.setenv("STREAM_APP_PARTITIONS", str(PARTITIONS))
    from stream_app.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_timeout_says_how_far_the_read_got(slow_broker) -> None:
    reader = TableReader("b:9092", "stream-app-users-changelog", PARTITIONS)
    t0 = time.monotonic()
    with pytest.raises(ChangelogTimeout) as err:
        reader.read_all(0.5, progress_s=0)
    assert time.monotonic() - t0 < 5
    exc = err.value
    assert (exc.records, exc.total, exc.users) == (300, 4000, 300)
    assert str(exc) == ("stream-app-users-changelog not read to its end: no progress for 0.5 s "
                        "after 300 of ~4,000 records (300 users so far)")
    assert exc.suggested() == 60                # twice 0.5 s, in whole minutes (at least 1)
    assert isinstance(exc, TimeoutError)        # what callers caught before


class Changelog:
    """``ends[p]`` records per partition as of the start; each ``consume`` takes ``pause``
    seconds and gives the next ``step`` records of ``plan`` (partition numbers), whose offsets
    may run past a partition's end (the workers keep writing)."""

    def __init__(self, ends: dict[int, int], plan: list[int], step: int = 100,
                 pause: float = 0.0) -> None:
        self.ends, self.plan, self.step, self.pause = ends, plan, step, pause
        self.offsets = dict.fromkeys(ends, 0)

    def get_watermark_offsets(self, tp, timeout: float) -> tuple[int, int]:
        return 0, self.ends[tp.partition]

    def consume(self, num_messages: int, timeout: float) -> list:
        time.sleep(self.pause or timeout)
        batch, self.plan = self.plan[:self.step], self.plan[self.step:]
        out = []
        for p in batch:
            m = Msg(self.offsets[p] * 10 + p)
            m.partition = lambda p=p: p
            self.offsets[p] += 1
            out.append(m)
        return out

    def position(self, tps: list) -> list:
        for tp in tps:
            tp.offset = self.offsets[tp.partition]
        return tps

    def close(self) -> None:
        pass


def _reader(monkeypatch, changelog: Changelog) -> TableReader:
    monkeypatch.setattr(kafka_io, "require_broker", lambda bootstrap, **kw: Metadata())
    monkeypatch.setattr(kafka_io, "read_assigned", lambda *a, **kw: changelog)
    return TableReader("b:9092", "stream-app-users-changelog", PARTITIONS)


def test_a_steady_read_longer_than_the_timeout_is_read_to_its_end(monkeypatch) -> None:
    """4,000 records, 100 every 50 ms: ~2 s, four times the 0.5 s timeout, never idle."""
    ends = dict.fromkeys(range(PARTITIONS), 1000)
    plan = [p for p in range(PARTITIONS) for _ in range(1000)]
    reader = _reader(monkeypatch, Changelog(ends, plan, step=100, pause=0.05))
    t0 = time.monotonic()
    states = reader.read_all(0.5, tail_s=0.0, progress_s=0)
    assert time.monotonic() - t0 > 1.0
    assert reader.records == 4000 and len(states) == 4000


def test_the_progress_line_never_passes_its_total(monkeypatch, capsys) -> None:
    """Partition 0 is read 2,000 records past its end (written meanwhile) before the others:
    the records read (5,000) pass the 4,000 of the ends as of the start, the progress does
    not."""
    ends = dict.fromkeys(range(PARTITIONS), 1000)
    plan = [0] * 3000 + [p for p in range(1, PARTITIONS) for _ in range(1000)]
    reader = _reader(monkeypatch, Changelog(ends, plan, step=100, pause=0.02))
    reader.read_all(5.0, tail_s=0.0, progress_s=0.05)
    assert reader.records >= 5000
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("reading ")]
    assert len(lines) >= 5, lines
    shown = [tuple(int(x.replace(",", "")) for x in ln.split(": ")[1].split(" records")[0]
                   .split(" of ~")) for ln in lines]
    assert all(done <= total == 4000 for done, total in shown), lines
    assert [d for d, _ in shown] == sorted(d for d, _ in shown), lines
    assert "s to go" in lines[-1], lines


@pytest.mark.parametrize("argv", [
    ["rules", "diff", "config/rules", "--bootstrap", "b:9092", "--timeout", "0.5"],
    ["redis-rebuild", "--bootstrap", "b:9092", "--timeout", "0.5"],
])
def test_the_commands_name_the_option_to_raise(argv, slow_broker, monkeypatch,
                                               capsys) -> None:
    from stream_app import rules_bundle
    from stream_app.rules.loader import load_ruleset

    monkeypatch.setattr(rules_bundle, "live_ruleset",
                        lambda bootstrap, path, *a, **kw: (load_ruleset(path), "local"))
    import redis

    monkeypatch.setattr(redis.Redis, "ping", lambda self: True)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 1
    assert ("Error: changelog stream-app-users-changelog not read to its end: no progress for "
            "0.5 s after 300 of ~4,000 records (300 users so far)") in err
    assert "for --timeout 0.5 s (is it overloaded or down?): try again, or give it more, " \
           "e.g. --timeout 60" in err
    assert "Traceback" not in err and "TimeoutError" not in err
