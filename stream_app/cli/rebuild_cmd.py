"""``stream-app redis-rebuild`` — rebuild the whole Redis projection from the ``users`` table.

The table's changelog topic (``<app_id>-users-changelog``) is read from the beginning with
confluent-kafka (no consumer group, every partition assigned); the last value per key wins
and a tombstone (null value) deletes the user. The projection of every remaining user is
then written through the same operations the worker uses (``change_ops``), so the result is
what the worker would have written: current tags in the user hash, segment sets and numeric
zsets, the tenant's user set, a "why" record for each tag whose rule still gives the
stored value, and the score fields (``score:<target>`` = ``[score, layer, source]``), scored
as of the state's own clock with the models the workers serve (the newest snapshots of
``models.snapshots``; :func:`~stream_app.serving.full_state.state_scores`). Timelines are not
rebuilt (they are a bounded history of ``tags.changes``).

With ``--flush`` (the default) every ``sa:*`` key is deleted first, so users deleted from
the table disappear from Redis too; it works on a fresh, empty Redis.

Example (pure part: the projection of one table record):
    >>> st = {"uid": "u1", "tenant": "t1", "tags": {"activity": "low", "score": 3}}
    >>> sorted({op[0] for op in state_ops(st)})
    ['hset', 'lpush', 'ltrim', 'sadd', 'zadd']
    >>> diff_user(st, {"tag:activity": "low", "tag:score": 3}, {("activity", "low")},
    ...           {"score": 3.0})
    []
    >>> diff_user(st, {"tag:activity": "high"}, set(), {})
    ["u1: hash tags {'activity': 'high'} != table {'activity': 'low', 'score': 3}", ...]
    >>> diff_scores("u1", {"score:convert": (0.2, "low", "rules")}, {})
    (["u1: score:convert missing (the table's state gives [0.2, 'low', 'rules'])"], [])
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

import click
import orjson

from stream_app.cli.option_types import FiniteFloatRange
from stream_app.config import get_settings
from stream_app.serving import keys
from stream_app.serving.full_state import (
    LIVE_PAUSE_MAX_S,
    REPROJECT,
    REPROJECT_BEGIN,
    REPROJECT_FLUSHED,
    TICKS_TOPIC,
    scored_at,
    state_ops,
    state_scores,
    why_records,
)
from stream_app.serving.reader import split_profile
from stream_app.state.codec import merged
from stream_app.state.deletion import is_marker
from stream_app.text import plural

State = dict[str, Any]


def changelog_topic(app_id: str, table: str = "users") -> str:
    """Faust's changelog topic name of ``table``.

    >>> changelog_topic("stream-app")
    'stream-app-users-changelog'
    """
    return f"{app_id}-{table}-changelog"


def decode_key(key: bytes | str | None) -> str:
    """A changelog key as the user id (Faust writes table keys JSON-encoded).

    >>> decode_key(b'"u1"'), decode_key(b"u2")
    ('u1', 'u2')
    """
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
        if isinstance(value, str):
            return value
    return text


class ChangelogTimeout(TimeoutError):
    """A changelog whose read made no progress toward its end for ``timeout`` seconds; says
    how far it got (``records``: offsets read of the ``total`` up to the end as of the start).

    >>> print(ChangelogTimeout("t-changelog", 120, records=1_200_000, total=3_000_000,
    ...                        users=400_000))
    t-changelog not read to its end: no progress for 120 s after 1,200,000 of ~3,000,000 \
records (400,000 users so far)
    >>> ChangelogTimeout("t", 120, records=1_200_000, total=3_000_000, users=1).suggested()
    240
    """

    def __init__(self, topic: str, timeout: float, records: int, total: int,
                 users: int) -> None:
        self.topic, self.timeout = topic, timeout
        self.records, self.total, self.users = records, total, users
        super().__init__(
            f"{topic} not read to its end: no progress for {timeout:g} s after {records:,} "
            f"of ~{plural(total, 'record')} ({plural(users, 'user')} so far)")

    def suggested(self) -> int:
        """A longer ``--timeout`` (seconds without progress) to try: twice this one, in whole
        minutes."""
        return max(60, math.ceil(self.timeout * 2 / 60) * 60)


def changelog_unreadable(topic: str, why: str) -> str:
    """The error of a changelog that cannot be read: what to check.

    >>> print(changelog_unreadable("nope-users-changelog", "it is not on this broker"))
    cannot read the users table's changelog nope-users-changelog: it is not on this broker. \
Is STREAM_APP_APP_ID right, and has a worker of that app run on this broker?
    """
    return (f"cannot read the users table's changelog {topic}: {why}. Is STREAM_APP_APP_ID "
            "right, and has a worker of that app run on this broker?")


def require_changelog(reader: TableReader) -> None:
    """Fail unless the broker has the reader's changelog (QA40 F4: ``--live`` found out only
    when it read the table, after its first requests had held the workers' Redis writes)."""
    if reader.missing:
        raise click.ClickException(
            f"{changelog_unreadable(reader.topic, reader.missing)} Nothing was asked of the "
            "workers or changed")


def read_table(reader: TableReader, timeout: float) -> dict[str, State]:
    """``reader.read_all(timeout)`` for a command with a ``--timeout`` option: a changelog
    whose read stalls is an ``Error:`` line that says how far it got and what to raise."""
    try:
        return reader.read_all(timeout)
    except ChangelogTimeout as exc:
        raise click.ClickException(
            f"changelog {exc}. The broker gave nothing more of it for --timeout "
            f"{exc.timeout:g} s (is it overloaded or down?): try again, or give it more, "
            f"e.g. --timeout {exc.suggested()}") from None


def progress_of(positions: dict[int, int], lows: dict[int, int], ends: dict[int, int]) -> int:
    """Offsets read toward the end as of the start of a read, over every partition: a
    partition counts from its first offset (``lows``) up to its end (``ends``), never past
    it (records the workers write meanwhile are read too but are not the way to the end),
    so it never exceeds ``sum(ends - lows)``. A position below 0 (nothing fetched yet,
    librdkafka's invalid offset) counts as 0.

    >>> progress_of({0: 150, 1: -1001, 2: 70}, {0: 0, 1: 0, 2: 50}, {0: 100, 1: 80, 2: 90})
    120
    """
    return sum(max(0, min(positions.get(p, -1), end) - lows.get(p, 0))
               for p, end in ends.items())


class TableReader:
    """Follows a Faust table changelog from the beginning: ``states`` is the table's content.

    ``poll()`` reads what is new (call it repeatedly to follow the table while it changes);
    ``read_all()`` reads up to the current end of every partition.
    """

    def __init__(self, bootstrap: str, topic: str, partitions: int,
                 client_config: dict[str, Any] | None = None) -> None:
        from stream_app.kafka_io import read_assigned, require_broker  # noqa: PLC0415

        # none answering: a clear error, not a consumer's traceback
        found = require_broker(bootstrap).topics.get(topic)
        if found is not None and not found.error and len(found.partitions) != partitions:
            # reading fewer would leave users out (a rebuild deletes them all first), more
            # fails on the missing ones: the setting must match the topic
            raise click.ClickException(
                f"{topic} has {plural(len(found.partitions), 'partition')} but "
                f"STREAM_APP_PARTITIONS is "
                f"{partitions}: set it to {len(found.partitions)} (the workers and every tool "
                "must agree); nothing was read or changed")
        #: why the changelog cannot be read, from the broker's metadata (None: it is there);
        #: :func:`require_changelog` says so before anything is asked or deleted
        self.missing = ("it is not on this broker" if found is None
                        else found.error.str() if found.error else None)
        self.topic = topic
        self.partitions = partitions
        self.consumer = read_assigned(bootstrap, topic, partitions, **(client_config or {}))
        self.states: dict[str, State] = {}
        self.partition_of: dict[str, int] = {}
        self.tombstones: set[str] = set()
        self.records = 0

    def poll(self, timeout: float = 0.2) -> dict[str, State]:
        self._poll(timeout)
        return self.states

    def _poll(self, timeout: float) -> int:
        """Apply what is new; the number of records read."""
        msgs = self.consumer.consume(num_messages=10000, timeout=timeout)
        for msg in msgs:
            if msg.error():
                continue
            self._apply(msg)
        return len(msgs)

    def _apply(self, msg: Any) -> None:
        uid = decode_key(msg.key())
        self.records += 1
        self.partition_of[uid] = msg.partition()
        value = msg.value()
        if value is None:
            self.states.pop(uid, None)
            self.tombstones.add(uid)
            return
        state = orjson.loads(value)   # (the whole record: its cold block back in "sc")
        if isinstance(state, dict):
            state = merged(state)
        if state is None or is_marker(state):   # a deleted user's marker reads as deleted
            self.states.pop(uid, None)
            self.tombstones.add(uid)
        else:
            self.states[uid] = state
            self.tombstones.discard(uid)

    def read_all(self, timeout: float = 60.0, tail_s: float = 1.0,
                 progress_s: float = 5.0) -> dict[str, State]:
        """Read every partition up to its end offset as of now (a line on stderr every
        ``progress_s`` while it takes longer than that; 0: none). ``timeout`` is a limit of
        inactivity, not of the whole read: a read that makes no progress toward those ends
        for ``timeout`` seconds stops with :class:`ChangelogTimeout`, with how far it got; a
        large changelog read at a steady pace takes what it takes (QA38 F3: a 120 s limit of
        the whole read was outgrown by ``make run``'s stack within 15 minutes).

        Progress is counted in offsets toward the ends as of the call (:func:`progress_of`),
        so the progress line's "N of ~M records" never passes its M (it did when it counted
        the records the workers wrote meanwhile: "231,813 of ~217,748").

        tansu reports a partition's end as the first offset of its last record batch
        (``kafka_io.true_end_offsets``), so reaching it may leave the rest of that batch in
        the consumer's queue: once every reported end is reached, what is queued or arrives
        within ``tail_s`` is read too (bounded: a changelog the workers keep writing is
        never quiet). Reading past the end as of the call only gives newer states."""
        from confluent_kafka import KafkaException, TopicPartition  # noqa: PLC0415

        ends, lows = {}, {}
        for p in range(self.partitions):
            try:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(self.topic, p), timeout=10)
            except KafkaException as exc:
                raise click.ClickException(changelog_unreadable(
                    f"{self.topic} (partition {p})",
                    exc.args[0].str() if exc.args else str(exc))) from exc
            ends[p], lows[p] = high, max(0, min(low, high))
        started = time.monotonic()
        total, said = sum(ends[p] - lows[p] for p in ends), started
        done, moved = 0, started
        while True:
            self.poll(0.2)
            now = time.monotonic()
            pos = {tp.partition: tp.offset for tp in self.consumer.position(
                [TopicPartition(self.topic, p) for p in range(self.partitions)])}
            reached = progress_of(pos, lows, ends)
            if reached > done:
                done, moved = reached, now
            if all(ends[p] <= 0 or pos.get(p, -1) >= ends[p] for p in ends):
                tail_end = time.monotonic() + tail_s
                while self._poll(0.1) and time.monotonic() < tail_end:
                    pass
                return self.states
            if now - moved >= timeout:
                raise ChangelogTimeout(self.topic, timeout, done, total, len(self.states))
            if progress_s and now - said >= progress_s:
                said = now
                click.echo(f"reading {self.topic}: {done:,} of ~{plural(total, 'record')}, "
                           f"{plural(len(self.states), 'user')} so far "
                           f"({_elapsed_and_left(now - started, done, total)})", err=True)

    def close(self) -> None:
        self.consumer.close()


def _elapsed_and_left(elapsed: float, done: int, total: int) -> str:
    """The progress line's time: seconds so far and, at the pace so far, about how long
    is left.

    >>> _elapsed_and_left(60.0, 300_000, 450_000), _elapsed_and_left(3.0, 0, 10)
    ('60 s, about 30 s to go', '3 s')
    """
    if not 0 < done < total:
        return f"{elapsed:.0f} s"
    return f"{elapsed:.0f} s, about {elapsed * (total - done) / done:.0f} s to go"


def flush_projection(r: Any) -> int:
    """Delete every key of the projection (``sa:*``); return how many."""
    n = 0
    batch: list[bytes] = []
    for k in r.scan_iter(match=f"{keys.PREFIX}:*", count=1000):
        batch.append(k)
        if len(batch) >= 1000:
            n += r.delete(*batch)
            batch = []
    if batch:
        n += r.delete(*batch)
    return n


def write_ops(r: Any, ops: Iterable[tuple[Any, ...]], batch: int = 5000) -> int:
    """Write operations in pipelines; return the number written."""
    from stream_app.serving.projection import _apply  # noqa: PLC0415

    pipe = r.pipeline(transaction=False)
    n = pending = 0
    for op in ops:
        _apply(pipe, op)
        pending += 1
        if pending >= batch:
            pipe.execute()
            n += pending
            pending = 0
            pipe = r.pipeline(transaction=False)
    if pending:
        pipe.execute()
        n += pending
    return n


def rebuild(r: Any, states: dict[str, State], engine: Any = None, flush: bool = True,
            why: str = "compact", timeline: int = keys.TIMELINE_MAX,
            scorer: Any = None) -> int:
    """Rewrite the projection of ``states`` into Redis ``r``; return the operations written.
    ``why``/``timeline``: the storage settings (``redis_why``, ``redis_timeline``);
    ``scorer``: scores each user as of its state's clock for its score fields
    (:func:`~stream_app.serving.full_state.state_scores`; None: no score fields)."""
    if flush:
        flush_projection(r)

    def ops() -> Iterable[tuple[Any, ...]]:
        for st in states.values():
            w = why_records(engine, st) if engine is not None and why != "off" else None
            yield from state_ops(st, w, timeline, state_scores(scorer, st))

    return write_ops(r, ops())


#: seconds between the flush and the table's read in ``--live`` mode (the workers' changelog
#: records of writes made before the flush arrive meanwhile)
LIVE_SETTLE_S = 2.0


def new_request(app_id: str) -> bytes:
    """A ``redis-rebuild --live`` request's id: time and a random part, then ``@`` and the
    app id. The ticks topic is shared by every app on the broker: a worker acts only on its
    own app's requests (QA40 F4: one app's rebuild held every app's Redis writes).

    >>> new_request("stream-app").partition(b"@")[2]
    b'stream-app'
    """
    import uuid  # noqa: PLC0415

    return f"{int(time.time())}-{uuid.uuid4().hex[:6]}@{app_id}".encode()


#: seconds between the workers' answer to the first requests and the deletion (a Redis
#: write the writer had begun before it paused ends meanwhile)
LIVE_PAUSE_SETTLE_S = 1.0


#: Offsets of the records a command sent, per partition, sorted
Sent = dict[int, list[int]]


def _send_ticks(bootstrap: str, ticks: Iterable[tuple[bytes, bytes, int]]) -> Sent:
    """Send ``(key, value, partition)`` records to the ticks topic, all delivered; the
    offsets they were written at (what :func:`outstanding` counts)."""
    from stream_app.kafka_io import connected_producer, produce  # noqa: PLC0415

    sent: Sent = {}
    failed: list[Any] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(err)
        else:
            sent.setdefault(msg.partition(), []).append(msg.offset())

    producer = connected_producer(bootstrap)
    for key, value, partition in ticks:
        produce(producer, TICKS_TOPIC, key, value, partition=partition, on_delivery=delivered)
    if producer.flush(30) or failed:
        raise click.ClickException("the rebuild's requests to the workers were not all "
                                   "delivered")
    for offsets in sent.values():
        offsets.sort()
    return sent


def _send_phase(bootstrap: str, value: bytes, partitions: int) -> Sent:
    """One tick of value ``value`` on every partition of the ticks topic."""
    return _send_ticks(bootstrap, ((b"~redis-rebuild", value, p) for p in range(partitions)))


def outstanding(sent: Sent, committed: dict[int, int]) -> int:
    """How many of the records ``sent`` the group has not processed: those at or past its
    committed offset (the next one it reads; -1: none committed) on their partition.
    Records of others on the topic (the workers' clock ticks, other apps' requests) are not
    counted (QA40 F4: a group that never committed was said to owe "32,279 of the
    rebuild's requests", the topic's whole backlog, when 4 had been sent).

    >>> outstanding({0: [5, 9], 1: [3]}, {0: 6, 1: -1})
    2
    """
    return sum(len(offsets) - bisect_left(offsets, committed.get(p, -1))
               for p, offsets in sent.items())


def _ticks_held(bootstrap: str, partitions: int) -> int:
    """How many records the ticks topic holds (its true ends less its first offsets)."""
    from confluent_kafka import KafkaException, TopicPartition  # noqa: PLC0415

    from stream_app.kafka_io import read_assigned, true_end_offsets  # noqa: PLC0415

    c = read_assigned(bootstrap, TICKS_TOPIC, partitions, from_beginning=False)
    try:
        marks = {p: c.get_watermark_offsets(TopicPartition(TICKS_TOPIC, p), timeout=10)
                 for p in range(partitions)}
    except KafkaException:   # no such topic: nothing held (nor processed)
        return 0
    finally:
        c.close()
    ends = true_end_offsets(bootstrap, {(TICKS_TOPIC, p): hi for p, (_, hi) in marks.items()})
    return sum(max(0, (ends[(TICKS_TOPIC, p)] or 0) - max(lo, 0))
               for p, (lo, _) in marks.items())


#: seconds between two progress lines of a wait for the workers while nothing moves (a
#: line at once when their count of requests to go does)
WAIT_PROGRESS_S = 10.0


def require_workers(bootstrap: str, group: str, partitions: int, timeout: float) -> None:
    """Fail unless the workers' group processes the ticks topic, where ``--live`` asks them.
    A running worker reads it from its beginning and commits what it processed within
    seconds, so a group that commits nothing for ``timeout`` seconds on a topic that holds
    records has no worker (a wrong ``STREAM_APP_APP_ID``, or no worker of that app ever ran
    on this broker; progress on stderr). An empty topic proves nothing either way: the wait
    for the requests tells."""
    from stream_app.kafka_io import committed_offsets  # noqa: PLC0415

    held, started, said = None, time.monotonic(), None
    while not any(o >= 0 for o in committed_offsets(bootstrap, group, TICKS_TOPIC,
                                                    partitions).values()):
        if held is None:
            held = _ticks_held(bootstrap, partitions)
        if not held:
            return
        now = time.monotonic()
        if now - started >= timeout:
            raise click.ClickException(
                f"no worker of group {group!r} processed {TICKS_TOPIC} within {timeout:g} s "
                f"(it holds {plural(held, 'record')}; the group committed none): is "
                "STREAM_APP_APP_ID right, and do its workers run on this broker? Nothing was "
                "asked of the workers or changed; without workers, run redis-rebuild without "
                "--live")
        if said is None or now - said >= WAIT_PROGRESS_S:
            said = now
            click.echo(f"  waiting for group {group!r} to process {TICKS_TOPIC} "
                       f"({plural(held, 'record')}, none committed yet)", err=True)
        time.sleep(1.0)


def live_delete(bootstrap: str, r: Any, request: bytes, partitions: int, timeout: float,
                group: str) -> int:
    """Delete the projection while the workers run; the number of keys deleted.

    1. A ``reproject-begin`` tick on every partition of the ticks topic; wait until the
       workers have processed them (with no worker answering, fail: nothing is deleted).
       Each worker then holds its Redis writes, and writes whole what it writes (no cache
       of what Redis holds) until the request's re-projection reaches it.
    2. Delete every ``sa:*`` key: no worker write interleaves with the deletion.
    3. A ``reproject-flushed`` tick on every partition: the workers write again.
    """
    sent = _send_phase(bootstrap, REPROJECT_BEGIN + request, partitions)
    _wait_processed(bootstrap, group, partitions, sent, timeout, "nothing was deleted")
    time.sleep(LIVE_PAUSE_SETTLE_S)
    t0 = time.monotonic()
    try:
        n = flush_projection(r)
    finally:
        _send_phase(bootstrap, REPROJECT_FLUSHED + request, partitions)
    took = time.monotonic() - t0
    if took > LIVE_PAUSE_MAX_S:
        click.echo(f"warning: the deletion took {took:.0f}s, longer than the workers hold "
                   f"their writes ({LIVE_PAUSE_MAX_S:.0f}s): run redis-rebuild --live again "
                   "if --check-only finds differences", err=True)
    return n


def _wait_processed(bootstrap: str, group: str, partitions: int, sent: Sent, timeout: float,
                    outcome: str) -> None:
    """Wait until the workers' group has committed past every record ``sent`` (progress on
    stderr: a line when the count moves, else one every ``WAIT_PROGRESS_S``; QA40 F5.6: one
    a second, 110 identical lines before a timeout); ``outcome``: what the error says of
    the state left behind. ``timeout`` is a limit of inactivity: the wait fails once the
    workers have processed none of the requests for that long (many users take as long as
    they take)."""
    from stream_app.kafka_io import committed_offsets  # noqa: PLC0415

    total = sum(len(offsets) for offsets in sent.values())
    least, moved = None, time.monotonic()
    said: tuple[int, float] | None = None
    while True:
        behind = outstanding(sent, committed_offsets(bootstrap, group, TICKS_TOPIC,
                                                     partitions))
        if not behind:
            return
        now = time.monotonic()
        if least is None or behind < least:
            least, moved = behind, now
        elif now - moved > timeout:
            raise click.ClickException(
                f"the workers did not process {behind:,} of the rebuild's "
                f"{plural(total, 'request')}: none for {timeout:.0f} s: are workers running "
                f"(group {group!r})? {outcome}. The requests stay queued and run when one "
                "starts; without workers, run redis-rebuild without --live")
        if said is None or said[0] != behind or now - said[1] >= WAIT_PROGRESS_S:
            said = behind, now
            click.echo(f"  waiting for the workers: {behind:,} of "
                       f"{plural(total, 'request')} to go", err=True)
        time.sleep(1.0)


def live_rebuild(bootstrap: str, reader: TableReader, timeout: float, group: str,
                 request: bytes) -> None:
    """Ask the running workers to rewrite every user of the table: one reproject tick per
    user, on the user's partition of the ticks topic, so its owner handles it in order with
    the user's events and queues the writes after its own earlier ones. Waits until the
    workers' group has committed past every tick (progress on stderr)."""
    t0 = time.monotonic()
    value = REPROJECT + request
    sent = _send_ticks(bootstrap, ((uid.encode("utf-8"), value, reader.partition_of[uid])
                                   for uid in reader.states))
    _wait_processed(bootstrap, group, reader.partitions, sent, timeout,
                    "users not re-projected yet may be missing from Redis")
    time.sleep(1.0)   # the workers write Redis every STREAM_APP_REDIS_FLUSH_MS (100 ms)
    click.echo(f"re-projected {plural(len(reader.states), 'user')} through the running "
               f"workers ({plural(reader.records, 'changelog record')}) in "
               f"{time.monotonic() - t0:.1f}s")


def load_scorer(bootstrap: str, settings: Any, timeout: float) -> Any:
    """The scorer of the score fields a rebuild writes and ``--check-only`` compares: the
    scoring config with the models the workers serve (the newest snapshots published on
    ``models.snapshots``; a target without one: its rule points); None when the workers
    score nothing (``STREAM_APP_DISABLE=scoring``). Says on stderr what it scores with."""
    if settings.disabled("scoring"):
        click.echo("scoring is disabled (STREAM_APP_DISABLE): no score fields", err=True)
        return None
    from stream_app.scoring.config import load_scoring_config  # noqa: PLC0415
    from stream_app.serving.served_models import served_scorer  # noqa: PLC0415

    config = load_scoring_config(day_offset_minutes=settings.day_offset_minutes)
    scorer, served = served_scorer(bootstrap, config, timeout)
    click.echo(f"score fields as of each user's clock, with {served}", err=True)
    return scorer


def report_notes(notes: list[str], shown: int = 10) -> None:
    """``--check-only``'s notes (:func:`diff_scores`): score fields a live projection holds
    legitimately, which a rebuild would rewrite; a few of them, then how many."""
    if not notes:
        return
    for note in notes[:shown]:
        click.echo(f"note: {note}")
    click.echo(f"note: {plural(len(notes), 'score field')} from another time or model "
               "version than a rebuild's (models changed since the user's last scored event, "
               "or scored by a clock tick since): not differences")


def _decode(v: bytes) -> Any:
    return orjson.loads(v)


def diff_user(state: State, hash_tags: dict[str, Any], seg_members: set[tuple[str, str]],
              num_members: dict[str, float]) -> list[str]:
    """Differences between one table record and its projection (empty: equal).

    ``seg_members`` holds (tag id, value token) pairs of the segment sets the user is in.
    """
    uid = state["uid"]
    want = {k: v for k, v in (state.get("tags") or {}).items() if v is not None}
    got = {k[4:]: v for k, v in hash_tags.items() if k.startswith("tag:")}
    out = []
    if got != want:
        out.append(f"{uid}: hash tags {got} != table {want}")
    for tag_id, v in want.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            if num_members.get(tag_id) != float(v):
                out.append(f"{uid}: num:{tag_id} is {num_members.get(tag_id)}, table {v}")
        elif (tag_id, keys.value_token(v)) not in {(t, keys.value_token(x))
                                                  for t, x in seg_members}:
            out.append(f"{uid}: not in seg {tag_id}={v}")
    return out


def stored_scores(raw: dict[Any, Any]) -> dict[str, tuple[Any, Any, Any]]:
    """target -> ``(score, layer, source)`` of a user hash as ``HGETALL`` returns it (either
    layout: one ``score:`` field, or the ``score:``/``layer:``/``source:`` fields written
    before session 27), as the API reads it.

    >>> stored_scores({b"score:convert": b'[0.4,"medium","rules"]', b"score:old": b"0.1",
    ...                b"layer:old": b'"low"', b"tag:intent": b'"medium"'})
    {'old': (0.1, 'low', None), 'convert': (0.4, 'medium', 'rules')}
    """
    p = split_profile(raw)
    return {t: (v, p["layers"].get(t), p["sources"].get(t)) for t, v in p["scores"].items()}


def _is_score(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def diff_scores(uid: str, want: dict[str, tuple[float, Any, Any]],
                got: dict[str, tuple[Any, Any, Any]],
                then: dict[str, tuple[float, Any, Any]] | None = None,
                layer_tagged: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """``(differences, notes)`` between the score fields a table record gives and those of
    its user hash. ``want``: the fields as of the state's clock (what a rebuild writes,
    :func:`~stream_app.serving.full_state.state_scores`); ``then``: as of its last scored
    event (what the worker wrote then); ``got``: :func:`stored_scores` of the hash;
    ``layer_tagged``: the targets whose layer is read from a tag (``layer_tag``).

    A difference is a field missing or unreadable, or a layer other than the state's: a
    layer tag's exactly, any other target's the layer of the score it is stored with. A
    note is what a live projection legitimately holds: a source other than the served one
    (a model published, or its gate closed, since the user's last scored event) or a score
    neither as of the clock nor as of the last scored event (scored in between: a clock
    tick that moved a layer tag, or an event older than the last).

    >>> want = {"score:convert": (0.12, "medium", "rules")}
    >>> then = {"score:convert": (0.22, "medium", "rules")}
    >>> diff_scores("u1", want, {"convert": (0.22, "medium", "rules")}, then, ["convert"])
    ([], [])
    >>> diff_scores("u1", want, {"convert": (0.22, "low", "rules")}, then, ["convert"])
    (["u1: layers.convert is 'low', the table's tags give 'medium'"], [])
    >>> diff_scores("u1", want, {"convert": (0.61, "medium", "logreg@80")}, then, [])[1]
    ['u1: score:convert by logreg@80, the served models give rules (models changed since)']
    >>> print(*diff_scores("u1", want, {"convert": (0.17, "medium", "rules")}, then, [])[1])
    u1: score:convert is 0.17, 0.12 as of the state's clock, 0.22 as of its last scored event
    """
    problems: list[str] = []
    notes: list[str] = []
    tagged = set(layer_tagged)
    for field, w in want.items():
        target = field.partition(":")[2]
        g = got.get(target)
        if g is None:
            problems.append(f"{uid}: {field} missing (the table's state gives {list(w)})")
            continue
        score, layer, source = g
        if not _is_score(score) or not isinstance(source, str):
            problems.append(f"{uid}: {field} unreadable: {list(g)}")
            continue
        if target in tagged and layer != w[1]:
            problems.append(f"{uid}: layers.{target} is {layer!r}, the table's tags give "
                            f"{w[1]!r}")
        if source != w[2]:
            notes.append(f"{uid}: {field} by {source}, the served models give {w[2]} "
                         "(models changed since)")
            continue
        t = (then or {}).get(field)
        match = next((x for x in (w, t) if x is not None and x[0] == score), None)
        if match is None:
            notes.append(f"{uid}: {field} is {score}, {w[0]} as of the state's clock"
                         + (f", {t[0]} as of its last scored event" if t else ""))
        elif target not in tagged and layer != match[1]:
            problems.append(f"{uid}: layers.{target} is {layer!r}, its score {score} gives "
                            f"{match[1]!r}")
    return problems, notes


def check_scores(scorer: Any, st: State, raw: dict[Any, Any]
                 ) -> tuple[list[str], list[str]]:
    """:func:`diff_scores` of one table record and its user hash (``raw``), scored with
    ``scorer`` as of the state's clock and as of its last scored event."""
    want = state_scores(scorer, st)
    if not want:
        return [], []
    _, last = scored_at(st)
    return diff_scores(st["uid"], want, stored_scores(raw), state_scores(scorer, st, last),
                       scorer.layer_tags)


def check(r: Any, states: dict[str, State], deleted: Iterable[str] = (),
          tenant_of: dict[str, str] | None = None, scorer: Any = None,
          notes: list[str] | None = None) -> list[str]:
    """Compare Redis with table records (and absent users); return the differences.
    ``scorer``: the score fields are compared too (:func:`check_scores`), and what differs
    legitimately is added to ``notes``."""
    problems: list[str] = []
    for uid, st in states.items():
        tenant = st.get("tenant") or "default"
        raw = r.hgetall(keys.user_key(tenant, uid))
        if scorer is not None:
            found, noted = check_scores(scorer, st, raw)
            problems.extend(found)
            if notes is not None:
                notes.extend(noted)
        hash_tags = {k.decode(): _decode(v) for k, v in raw.items()
                     if k.decode().startswith("tag:")}
        rid = raw.get(keys.ID_FIELD.encode())
        n = int(rid) if rid is not None else None
        if n is not None and r.hget(keys.ids_key(tenant, n), n % keys.IDS_PER_HASH) \
                != uid.encode():
            problems.append(f"{uid}: integer id {n} maps to another user")
        segs: set[tuple[str, str]] = set()
        nums: dict[str, float] = {}
        for tag_id, v in (st.get("tags") or {}).items():
            if n is None:
                continue
            if isinstance(v, int | float) and not isinstance(v, bool):
                score = r.zscore(keys.num_key(tenant, tag_id), n)
                if score is not None:
                    nums[tag_id] = score
            elif r.getbit(keys.seg_key(tenant, tag_id, v), n):
                segs.add((tag_id, keys.value_token(v)))
        problems.extend(diff_user(st, hash_tags, segs, nums))
        if st.get("tags") and (n is None or not r.getbit(keys.users_key(tenant), n)):
            problems.append(f"{uid}: missing from {keys.users_key(tenant)}")
    for uid in deleted:
        tenant = (tenant_of or {}).get(uid, "default")
        left = traces(r, uid, tenant)
        if left:
            problems.append(f"{uid}: deleted from the table but Redis still has {left[:5]}")
    return problems


def traces(r: Any, uid: str, tenant: str = "default") -> list[str]:
    """Every Redis key of the projection that holds something of ``uid``: a key named after
    the user (:func:`~stream_app.serving.keys.user_keys`, matched exactly: ``lead-7`` is not
    ``lead-77``), set member, hash value (the integer id map), or, while the user has an
    integer id, its bit in a segment or bucket bitmap and its member in a numeric sorted set.

    Example (``r``: a client of a Redis holding the projection)::

        traces(r, "lead-7")   # [] once `stream-app forget lead-7` is done
    """
    found = []
    rid = r.hget(keys.user_key(tenant, uid), keys.ID_FIELD)
    n = int(rid) if rid is not None else None
    own = keys.user_keys(tenant, uid)
    for k in r.scan_iter(match=f"{keys.PREFIX}:{tenant}:*", count=1000):
        name = k.decode()
        if name in own:
            found.append(name)
            continue
        kind = r.type(k)
        if kind == b"set":
            member = r.sismember(k, uid)
        elif kind == b"zset":
            member = r.zscore(k, uid) is not None or (
                n is not None and r.zscore(k, n) is not None)
        elif kind == b"hash":
            member = uid.encode() in r.hvals(k)
        elif kind == b"string" and n is not None and (":seg:" in name or ":nb:" in name
                                                      or name.endswith(":users")):
            member = bool(r.getbit(k, n))
        else:
            member = False
        if member:
            found.append(name)
    return found


@click.command("redis-rebuild")
@click.option("--bootstrap", default=None, help="Kafka bootstrap (default: from settings)")
@click.option("--flush/--no-flush", default=True, show_default=True,
              help="delete every sa:* key before writing")
@click.option("--check-only", is_flag=True, help="only compare Redis with the table")
@click.option("--live", is_flag=True,
              help="workers are running: they re-project their own users (in order with "
                   "their live writes) instead of this command writing Redis")
@click.option("--timeout", type=FiniteFloatRange(min=0, min_open=True), default=120.0,
              show_default=True,
              help="seconds without progress before giving up reading the table (and, "
                   "with --live, waiting for the workers); a large table read at a steady "
                   "pace takes what it takes")
def command(bootstrap: str | None, flush: bool, check_only: bool, live: bool,
            timeout: float) -> None:
    """Rebuild the Redis projection (tags, segments, why, scores) from the users table changelog.

    Without --live this command writes Redis itself: for a fresh Redis, or with the workers
    stopped (a worker writing meanwhile can be overwritten by older values). With --live the
    running workers hold their Redis writes while this command deletes the projection, then
    each rewrites its own users after its earlier writes; if no worker answers, nothing is
    deleted. --check-only compares and exits 1 on any difference (docs/OPERATIONS.md
    section 7)."""
    import redis  # noqa: PLC0415

    from stream_app.security.kafka_auth import client_security_config  # noqa: PLC0415

    settings = get_settings()
    bootstrap = bootstrap or settings.kafka_bootstrap
    topic = changelog_topic(settings.app_id)
    t0 = time.monotonic()
    reader = TableReader(bootstrap, topic, settings.partitions,
                         client_config=client_security_config())
    try:   # before anything is asked of the workers or deleted
        require_changelog(reader)
        r = redis.Redis.from_url(settings.redis_url, socket_timeout=10,
                                 socket_connect_timeout=5)
        try:
            r.ping()
        except redis.RedisError as exc:
            raise click.ClickException(f"cannot reach Redis at {settings.redis_url}: {exc} "
                                       "(STREAM_APP_REDIS_URL)") from exc
        if live and not check_only:
            require_workers(bootstrap, settings.app_id, settings.partitions, timeout)
    except BaseException:
        reader.close()
        raise
    request = new_request(settings.app_id)
    started_ms = int(time.time() * 1000)
    if live and flush and not check_only:
        # before the table is read: a user the workers wrote before the flush has its
        # changelog record in what is read (written within a flush interval of its Redis
        # write), so it is re-projected; a user first written later is written whole
        n = live_delete(bootstrap, r, request, settings.partitions, timeout,
                        settings.app_id)
        click.echo(f"deleted {n:,} projection keys", err=True)
        time.sleep(LIVE_SETTLE_S)
    try:
        states = read_table(reader, timeout)
    finally:
        reader.close()
    if check_only:
        notes: list[str] = []
        problems = check(r, states, reader.tombstones,
                         scorer=load_scorer(bootstrap, settings, timeout), notes=notes)
        for p in problems[:50]:
            click.echo(p)
        report_notes(notes)
        click.echo(f"{plural(len(states), 'user')} in the table; "
                   f"{plural(len(problems), 'difference')}")
        if problems:
            raise SystemExit(1)
        return
    if live:
        live_rebuild(bootstrap, reader, timeout, settings.app_id, request)
        r.set(keys.REBUILT_KEY, started_ms)   # a stopped worker's lost writes: covered
        return
    from stream_app.rules.engine import TagEngine  # noqa: PLC0415
    from stream_app.rules_bundle import live_ruleset  # noqa: PLC0415

    try:   # why records: from the rules the workers run (the newest published, else local)
        ruleset, _ = live_ruleset(bootstrap, settings.rules_path)
        engine = TagEngine(ruleset,
                           day_offset_ms=settings.day_offset_ms,
                           retention_days=settings.retention_days,
                           dedup_window=settings.dedup_window,
                           state_ttl_days=settings.state_ttl_days)
    except Exception as exc:  # noqa: BLE001 - rules unreadable: rebuild tags without why
        click.echo(f"rules not loaded ({exc}); why records are skipped", err=True)
        engine = None
    scorer = load_scorer(bootstrap, settings, timeout)   # before anything is deleted
    n = rebuild(r, states, engine, flush=flush, why=settings.redis_why,
                timeline=settings.redis_timeline, scorer=scorer)
    r.set(keys.REBUILT_KEY, started_ms)
    click.echo(f"rebuilt {plural(len(states), 'user')} "
               f"({plural(reader.records, 'changelog record')}, "
               f"{plural(n, 'Redis operation')}) in {time.monotonic() - t0:.1f}s")
