"""Workloads, reference results and accounting shared by the fault tests.

The reference for "an uninterrupted run" is the pure :class:`TagEngine` applied to each
user's events in order (what the worker does when nothing fails, the sweep being off).
The worker's result is the ``users`` table, read from its changelog.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream_app.cli.rebuild_cmd import TableReader, changelog_topic
from stream_app.config import Settings
from stream_app.events import Event
from stream_app.kafka_io import make_producer, produce, read_assigned
from stream_app.rules.engine import TagEngine
from stream_app.rules.loader import load_ruleset

DAY = 86_400_000
GRACE_MS = 30 * DAY
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z; each test takes a later range (base_ts)
# not compared: model state (the scorer); "seq" (number of tag changes so far), "now"/"nd"
# and the order of "ids" depend on how the worker interleaved a user's events from different
# topics (Kafka orders only within a partition of one topic), even without any fault. The
# aggregates and the tags are order-independent and must be equal; "ids" as a set.
NOT_COMPARED = {"scores", "sc", "seq", "now", "nd", "ids", "tags"}
# tags evaluated on the worker clock or from model scores (decayed points are rounded at the
# evaluation time; intent uses score.convert from the worker's scorer): not in the pure
# reference; nor demand_stage, whose rule reads tag(intent). Every other tag must be equal.
CLOCK_OR_MODEL_TAGS = {"lead_points", "intent", "demand_stage"}
INPUTS = ("events.click", "events.study", "events.order", "events.profile", "events.label")

TYPES = [  # (stream, type, props factory)
    ("click", "page_view", lambda r: {"page": r.choice(["home", "list", "faq"])}),
    ("click", "course_view", lambda r: {"course_id": r.choice(["py", "java", "pmp"])}),
    ("click", "search", lambda r: {"q": r.choice(["python", "考证", "java"])}),
    ("click", "live_enter", lambda r: {"live_id": "l1"}),
    ("click", "trial_booked", lambda r: {"course_id": "py"}),
    ("click", "consult_request", lambda r: {}),
    ("study", "lesson_attended", lambda r: {"lesson_id": f"l{r.randint(1, 9)}"}),
    ("study", "lesson_missed", lambda r: {"lesson_id": f"l{r.randint(1, 9)}"}),
    ("study", "video_watched", lambda r: {"seconds": r.randint(30, 900),
                                          "pct": round(r.random(), 2)}),
    ("study", "homework_submitted", lambda r: {}),
    ("study", "quiz_scored", lambda r: {"score": r.randint(0, 100)}),
    ("order", "trial_purchased", lambda r: {"amount": 9.9, "category": "python"}),
    ("order", "order_paid", lambda r: {"amount": float(r.choice([1999, 4999, 12800])),
                                       "category": r.choice(["python", "java"])}),
    ("profile", "profile_updated", lambda r: {"region": r.choice(["sh", "bj", "gz"]),
                                              "age_band": "25-34"}),
]

_next_base = [T0]


def base_ts() -> int:
    """Start of a fresh 100-day time range (the worker clock only moves forward)."""
    b = _next_base[0]
    _next_base[0] += 100 * DAY
    return b


def make_events(n_users: int, per_user: int, base: int, span_days: float = 10,
                seed: int = 7, prefix: str = "f") -> list[dict[str, Any]]:
    """Events of ``n_users`` users over ``span_days`` from ``base``, in time order."""
    rnd = random.Random(seed)
    run = uuid.uuid4().hex[:6]
    out = []
    for u in range(n_users):
        uid = f"{prefix}-{run}-{u}"
        for _ in range(rnd.randint(max(1, per_user // 2), per_user * 3 // 2)):
            stream, etype, props = rnd.choice(TYPES)
            ts = base + int(rnd.random() * span_days * DAY)
            out.append({"event_id": uuid.uuid4().hex, "user_id": uid, "ts": ts, "type": etype,
                        "stream": stream, "props": props(rnd)})
    out.sort(key=lambda e: (e["ts"], e["event_id"]))
    return out


def engine(settings: Settings | None = None) -> TagEngine:
    s = settings or Settings()
    return TagEngine(load_ruleset(s.rules_path), day_offset_ms=s.day_offset_ms,
                     retention_days=s.retention_days, dedup_window=s.dedup_window,
                     state_ttl_days=s.state_ttl_days)


def reference(events: list[dict[str, Any]]) -> tuple[dict[str, dict], list[dict]]:
    """States and tag changes of an uninterrupted, in-order run (pure engine)."""
    eng = engine()
    states: dict[str, dict] = {}
    changes: list[dict] = []
    for e in events:
        ev = Event(e["event_id"], e["user_id"], e["ts"], e["type"], e["stream"],
                   props=dict(e["props"]))
        r = eng.on_event(states.get(ev.user_id), ev)
        if r.duplicate:
            continue
        changes.extend(r.changes)
        if r.state is None:
            states.pop(ev.user_id, None)
        else:
            states[ev.user_id] = orjson.loads(orjson.dumps(r.state))
    return states, changes


def comparable_tags(state: dict) -> dict[str, Any]:
    return {k: v for k, v in (state.get("tags") or {}).items() if k not in CLOCK_OR_MODEL_TAGS}


def counted(state: dict | None) -> int:
    """Events a state record has counted (lifetime count per type, summed)."""
    return sum((state or {}).get("n", {}).values())


@dataclass
class Accounting:
    events_in: int
    processed: int = 0
    lost: int = 0
    duplicated: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing_ids: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"in={self.events_in} processed={self.processed} lost={self.lost} "
                f"duplicated={self.duplicated} missing event ids={self.missing_ids[:10]} "
                f"mismatched={self.mismatched[:3]}")


def account(table: dict[str, dict], ref: dict[str, dict], events_in: int) -> Accounting:
    """Compare table records with the reference: counts per user and type, then the state."""
    acc = Accounting(events_in)
    for uid, want in ref.items():
        got = table.get(uid)
        for etype, n in want.get("n", {}).items():
            have = (got or {}).get("n", {}).get(etype, 0)
            acc.lost += max(0, n - have)
            acc.duplicated += max(0, have - n)
        acc.processed += counted(got)
        if got is None:
            acc.mismatched.append(f"{uid}: missing from the table")
            acc.missing_ids.extend(want.get("ids", []))
            continue
        have_ids = set(got.get("ids", []))
        acc.missing_ids.extend(i for i in want.get("ids", []) if i not in have_ids)
        diff = sorted(k for k in want if k not in NOT_COMPARED and got.get(k) != want[k])
        if set(got.get("ids", [])) != set(want.get("ids", [])):
            diff.append("ids")
        if comparable_tags(got) != comparable_tags(want):
            diff.append("tags")
        if diff:
            acc.mismatched.append(f"{uid}: {diff} differ, e.g. {diff[0]}: "
                                  f"table={str(got.get(diff[0]))[:120]} "
                                  f"ref={str(want[diff[0]])[:120]}")
    return acc


class Feeder(threading.Thread):
    """Produces events (keyed by user) at ``rate`` per second in a background thread."""

    def __init__(self, bootstrap: str, events: list[dict[str, Any]], rate: float) -> None:
        super().__init__(daemon=True)
        self.producer = make_producer(bootstrap)
        self.events = events
        self.rate = rate
        self.sent = 0
        self.undelivered = -1

    def run(self) -> None:
        t0 = time.monotonic()
        for i, e in enumerate(self.events):
            due = t0 + i / self.rate
            wait = due - time.monotonic()
            if wait > 0:
                self.producer.poll(0)
                time.sleep(wait)
            doc = {k: v for k, v in e.items() if k != "stream"}
            produce(self.producer, f"events.{e['stream']}", e["user_id"], doc)
            self.sent += 1
        self.undelivered = self.producer.flush(300)


def explain_missing(acc: Accounting, events: list[dict[str, Any]],
                    partition_of: dict[str, int], changes: list[dict] | None = None) -> str:
    """Where the missing events were in the feed (index, user, partition) and whether a
    worker published a tag change they triggered (then they were processed, but the table
    record written last lacks them), for failure messages."""
    pos = {e["event_id"]: (i, e) for i, e in enumerate(events)}
    triggered = {c.get("trigger") for c in changes or ()}
    rows = []
    for eid in acc.missing_ids[:20]:
        i, e = pos.get(eid, (-1, {}))
        seen = " (triggered a published change)" if eid in triggered else ""
        rows.append(f"#{i}/{len(events)} {e.get('user_id')} p{partition_of.get(e.get('user_id'))}"
                    f" {e.get('type')}{seen}")
    return "; ".join(rows)


def fold_changes(changes: list[dict]) -> dict[str, dict[str, Any]]:
    """Current tags per user as a downstream consumer gets them from ``tags.changes``:
    de-duplicate by ``event_id``, apply in ``seq`` order per user."""
    uniq = {c["event_id"]: c for c in changes}
    tags: dict[str, dict[str, Any]] = {}
    for c in sorted(uniq.values(), key=lambda c: (c["user_id"], c["seq"])):
        user = tags.setdefault(c["user_id"], {})
        if c.get("new") is None:
            user.pop(c["tag_id"], None)
        else:
            user[c["tag_id"]] = c["new"]
    return tags


def chain_breaks(changes: list[dict], skip: set[str] | frozenset[str] = frozenset()
                 ) -> list[tuple[str, str, Any, Any]]:
    """Per user and tag (``skip``: tags left out), the changes in ``seq`` order (one per
    ``event_id``) whose ``old`` is not the ``new`` of the change before (``None`` before the
    first): a change that never reached the topic (QA39 F4: after a kill -9 a user's changes
    were lost for good while the table held the new state; the fold alone misses it when a
    later change of the tag repairs the value). Returns (user, tag, expected old, old).

    >>> chain_breaks([{"event_id": "u:1", "user_id": "u", "tag_id": "a", "seq": 1,
    ...                "old": None, "new": 1},
    ...               {"event_id": "u:3", "user_id": "u", "tag_id": "a", "seq": 3,
    ...                "old": 2, "new": 3}])
    [('u', 'a', 1, 2)]
    """
    uniq = {c["event_id"]: c for c in changes if c["tag_id"] not in skip}
    last: dict[tuple[str, str], Any] = {}
    out = []
    for c in sorted(uniq.values(), key=lambda c: (c["user_id"], c["seq"])):
        k = (c["user_id"], c["tag_id"])
        if c.get("old") != last.get(k):
            out.append((k[0], k[1], last.get(k), c.get("old")))
        last[k] = c.get("new")
    return out


def send_all(bootstrap: str, events: list[dict[str, Any]]) -> None:
    f = Feeder(bootstrap, events, rate=1e9)
    f.run()
    assert f.undelivered == 0


class TableWatch:
    """Follows the ``users`` table; waits until the users of a workload are fully counted."""

    def __init__(self, bootstrap: str, partitions: int, app_id: str = "stream-app") -> None:
        self.reader = TableReader(bootstrap, changelog_topic(app_id), partitions)

    @property
    def states(self) -> dict[str, dict]:
        return self.reader.states

    def wait_counted(self, ref: dict[str, dict], timeout: float = 120.0,
                     settle: float = 2.0) -> float:
        """Wait until every reference user has (at least) its count, then ``settle`` s more
        with nothing changing; return the time it took (-1 when not complete in time)."""
        want = {u: counted(s) for u, s in ref.items()}
        t0 = time.monotonic()
        deadline = t0 + timeout
        done_at = None
        while time.monotonic() < deadline:
            before = self.reader.records
            self.reader.poll(0.3)
            ok = all(counted(self.states.get(u)) >= n for u, n in want.items())
            if ok and done_at is None:
                done_at = time.monotonic()
            if ok and self.reader.records == before and time.monotonic() - done_at >= settle:
                return done_at - t0
            if not ok:
                done_at = None
        return -1.0  # not complete: account() tells what is missing

    def close(self) -> None:
        self.reader.close()


class DlqWatch:
    """Reads ``events.dlq`` from the beginning."""

    def __init__(self, bootstrap: str, partitions: int) -> None:
        self.consumer = read_assigned(bootstrap, "events.dlq", partitions)
        self.records: list[dict] = []
        #: consumer errors seen (said by a test that times out, not skipped silently)
        self.errors: list[str] = []

    def poll(self) -> list[dict]:
        for msg in self.consumer.consume(num_messages=10000, timeout=0.3):
            if msg.error():
                self.errors.append(str(msg.error()))
            elif msg.value() is not None:
                self.records.append(orjson.loads(msg.value()))
        return self.records

    def for_keys(self, keys: set[str]) -> list[dict]:
        import base64

        out = []
        for r in self.poll():
            k = r.get("key_b64")
            if k and base64.b64decode(k).decode("utf-8", "replace") in keys:
                out.append(r)
        return out

    def close(self) -> None:
        self.consumer.close()


def end_offsets(bootstrap: str, topics: tuple[str, ...], partitions: int) -> dict:
    """High watermarks {(topic, partition): offset} right now."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex[:6]}",
                  "log_level": 2})
    try:
        return {(t, p): c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                for t in topics for p in range(partitions)}
    finally:
        c.close()


def scrape(url: str, name: str) -> float:
    """Sum of a Prometheus metric's samples (all labels) on a worker's /metrics page."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:  # noqa: S310
            text = resp.read().decode()
    except OSError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


class FaultReport:
    """Rows of the fault report (one per fault)."""

    COLUMNS = ("fault", "events_in", "processed", "in_dlq", "lost", "duplicated",
               "recovery_s", "notes")

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, fault: str, events_in: int, processed: int, in_dlq: int, lost: int,
            duplicated: int, recovery_s: float | None, notes: str = "") -> None:
        row = {"fault": fault, "events_in": events_in, "processed": processed,
               "in_dlq": in_dlq, "lost": lost, "duplicated": duplicated,
               "recovery_s": None if recovery_s is None else round(recovery_s, 1),
               "notes": notes}
        self.rows.append(row)
        print(f"\n[fault] {row}")

    def markdown(self) -> str:
        head = "| " + " | ".join(self.COLUMNS) + " |"
        sep = "|" + "---|" * len(self.COLUMNS)
        lines = [head, sep]
        for r in self.rows:
            lines.append("| " + " | ".join("" if r[c] is None else str(r[c])
                                           for c in self.COLUMNS) + " |")
        return "\n".join(lines)


def log_tail(worker: Any, lines: int = 25) -> str:
    """The last lines of a worker's log (for a failing test's message)."""
    try:
        text = worker.process.log.read_text(errors="replace")
    except OSError as exc:
        return f"{worker.name}: no log ({exc})"
    return f"--- {worker.name} log ---\n" + "\n".join(text.splitlines()[-lines:])


def live_workers(stack: Any) -> list[Any]:
    """The stack's workers that are running (stopped ones stay in ``stack.workers``)."""
    return [w for w in stack.workers if w.alive()]


def write_jsonl(path: Any, events: list[dict[str, Any]]) -> None:
    with open(path, "wb") as fh:
        for e in events:
            fh.write(orjson.dumps(e) + b"\n")

