"""The benchmark workload: a seeded simulator run encoded once as Kafka records.

Records are ``(topic, key, value, event_id)`` with key = user_id (UTF-8) and value = the event's
JSON, exactly what ``stream-app dev`` produces. The same records feed every system measured.
A workload cached in ``var/bench`` is reused only while the simulator that built it is this
one (:func:`sim_fingerprint`); otherwise it is built again.

Example:
    >>> w = build(users=30, seed=3, days=2)
    >>> len(w.records) > 30, w.records[0][0].startswith("events."), w.users >= 30
    (True, True, True)
    >>> w.head(5).records == w.records[:5]
    True
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from stream_app.config import REPO_ROOT
from stream_app.contract import load_contract
from stream_app.sim import Simulator, load_sim_config

Record = tuple[str, bytes, bytes, str]
DAY_MS = 86_400_000


@dataclass
class Workload:
    """Encoded records of one simulator run, in event-time order."""

    records: list[Record]
    users: int
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)

    def head(self, n: int) -> Workload:
        return Workload(self.records[:n], self.users, self.seed, dict(self.meta))

    def slice(self, start: int, stop: int) -> list[Record]:
        return self.records[start:stop]

    def mean_bytes(self) -> float:
        return sum(len(r[2]) for r in self.records) / max(len(self.records), 1)


def encode(events: Sequence[dict[str, Any]] | Any) -> list[Record]:
    """Kafka records of simulator events (topic from the contract's stream)."""
    contract = load_contract()
    topic_of = {s: contract.stream_topic(s) for s in ("click", "study", "order", "profile",
                                                      "label")}
    out: list[Record] = []
    for ev in events:
        topic = topic_of.get(ev.get("stream", "click")) or contract.stream_topic(ev["stream"])
        out.append((topic, ev["user_id"].encode(), orjson.dumps(ev), ev["event_id"]))
    return out


#: what a workload's events are made of: the simulator's code and its world
SIM_SOURCES = (REPO_ROOT / "stream_app" / "sim", REPO_ROOT / "config" / "simulator.yaml")


@cache
def sim_fingerprint() -> str:
    """A digest of the simulator's code (``stream_app/sim/*.py``) and config
    (``config/simulator.yaml``): the same users, seed and size give the same events only
    while it holds. Stored in ``Workload.meta["sim"]``; :func:`cached` checks it.

    >>> f = sim_fingerprint()
    >>> len(f), f == sim_fingerprint(), int(f, 16) >= 0
    (12, True, True)
    """
    h = hashlib.sha256()
    for src in SIM_SOURCES:
        for p in sorted(src.glob("*.py")) if src.is_dir() else [src]:
            h.update(p.relative_to(REPO_ROOT).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]


def build(users: int = 50_000, seed: int = 42, days: float | None = None,
          max_events: int | None = None) -> Workload:
    """Simulate ``users`` people over ``days`` (default: the simulator's) and encode them."""
    t0 = time.perf_counter()
    sim = Simulator(load_sim_config(overrides={"users": users}), seed=seed)
    dur = None if days is None else int(days * DAY_MS)
    events = []
    for ev in sim.events(duration_ms=dur):
        events.append(ev)
        if max_events is not None and len(events) >= max_events:
            break
    recs = encode(events)
    n_users = len({r[1] for r in recs})
    return Workload(recs, users=n_users, seed=seed,
                    meta={"simulated_users": users, "days": days, "events": len(recs),
                          "build_s": round(time.perf_counter() - t0, 2),
                          "sim": sim_fingerprint()})


def load(path: Path) -> Workload | None:
    """The pickled workload at ``path`` if this simulator built it, else None (none there,
    or one of another simulator: its events are not what ``build`` gives now).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "w.pkl"
    >>> load(p) is None
    True
    >>> _ = p.write_bytes(pickle.dumps(Workload([], 0, 1, {"sim": "0123456789ab"})))
    >>> load(p) is None                 # built by another simulator
    True
    >>> _ = p.write_bytes(pickle.dumps(Workload([], 0, 1, {"sim": sim_fingerprint()})))
    >>> load(p).seed
    1
    """
    if not path.exists():
        return None
    with path.open("rb") as f:
        w = pickle.load(f)  # noqa: S301 - our own cache file
    made_by = getattr(w, "meta", {}).get("sim")
    if made_by != sim_fingerprint():
        print(f"{path}: built by another simulator ({made_by or 'no fingerprint'}, now "
              f"{sim_fingerprint()}): not used", file=sys.stderr)
        return None
    return w


def cached(path: Path, make: Callable[[], Workload | None]) -> Workload:
    """The workload at ``path`` if this simulator built it (:func:`load`), else one built
    with ``make`` and stored there (replacing a stale one)."""
    w = load(path)
    if w is not None:
        return w
    w = make()
    if w is None:
        raise FileNotFoundError(f"{path}: no workload of this simulator (sim "
                                f"{sim_fingerprint()}) and nothing to build it with")
    w.meta.setdefault("sim", sim_fingerprint())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(w, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return w


def first_events_per_user(users: int, per_user: int, seed: int = 7,
                          template_users: int = 100_000) -> Workload:
    """The first ``per_user`` events of each of ``users`` people: a state-loading workload
    (every user gets a state record) that costs few events per user.

    Up to ``template_users`` people are simulated (all arriving within one hour); beyond that
    their event sequences are cloned under new user and event ids, in rounds.

    Example:
        >>> w = first_events_per_user(40, 2, template_users=20)
        >>> w.users, len(w.records) <= 80
        (40, True)
    """
    sim = Simulator(load_sim_config(overrides={"users": min(users, template_users)}), seed=seed)
    seen: dict[str, int] = {}
    events = []
    for ev in sim.events(duration_ms=3_600_000, users=min(users, template_users)):
        n = seen.get(ev["user_id"], 0)
        if n < per_user:
            seen[ev["user_id"]] = n + 1
            events.append(ev)
    templates = list(events)
    n_users = len(seen)
    k = 0
    while n_users < users:
        k += 1
        clones = set()
        for ev in templates:
            if n_users + len(clones) >= users and ev["user_id"] not in clones:
                continue
            clones.add(ev["user_id"])
            events.append({**ev, "user_id": f"c{k}-{ev['user_id']}",
                           "event_id": f"c{k}-{ev['event_id']}"})
        n_users += len(clones)
    return Workload(encode(events), users=n_users, seed=seed,
                    meta={"per_user": per_user, "events": len(events), "sim": sim_fingerprint()})


def event_ts(record: Record) -> int:
    """Event time of an encoded record."""
    return int(orjson.loads(record[2])["ts"])


def restamp(value: bytes, ts_ms: int) -> bytes:
    """An encoded event with event time ``ts_ms``; the event-time fields in its ``props``
    (a label's ``event_ts``: when the labelled event happened) move by the same amount, so
    they keep their distance to ``ts``.

    Example:
        >>> v = b'{"ts": 5000, "props": {"event_ts": 4000, "value": 1}}'
        >>> restamp(v, 9000)
        b'{"ts":9000,"props":{"event_ts":8000,"value":1}}'
    """
    ev = orjson.loads(value)
    delta = ts_ms - int(ev["ts"])
    ev["ts"] = ts_ms
    props = ev.get("props")
    if isinstance(props, dict):
        for k in EVENT_TIME_PROPS:
            if isinstance(props.get(k), int):
                props[k] += delta
    return orjson.dumps(ev)


#: props that hold an event time (epoch ms): moved with ``ts`` by :func:`restamp`
EVENT_TIME_PROPS = ("event_ts",)


class WallStamper:
    """Re-stamps events at their produce time: event time = wall time at the send + a fixed
    offset, never moving back (equal stamps keep the send order), as events arrive live.

    With ``continue_from=(ts_ms, wall_s)`` the offset makes the stamps continue from event
    time ``ts_ms`` seen at wall time ``wall_s`` (what the worker's hybrid clock shows: its
    last event time plus the wall time since), so the stream does not jump from the
    workload's simulated dates to today, which would roll every user's day and close every
    window at once in the first second. Without it the offset is 0: the real wall clock.

    Example:
        >>> s = WallStamper(continue_from=(1_000_000, 50.0))
        >>> [orjson.loads(s(b'{"ts": 1}', w))["ts"] for w in (52.0, 52.5, 52.4)]
        [1002000, 1002500, 1002500]
        >>> WallStamper().offset_ms
        0
    """

    def __init__(self, continue_from: tuple[int, float] | None = None) -> None:
        self.offset_ms = 0 if continue_from is None else int(
            continue_from[0] - continue_from[1] * 1000)
        self.last = -1

    def __call__(self, value: bytes, wall_s: float) -> bytes:
        ts = max(int(wall_s * 1000) + self.offset_ms, self.last)
        self.last = ts
        return restamp(value, ts)


def event_time_speedup(records: Sequence[Record], rate: float) -> float:
    """How much faster than wall time the records' event time runs when they are sent at
    ``rate`` per second (1.0: live traffic).

    Example:
        >>> r = [("t", b"u", b'{"ts": %d}' % t, "e") for t in (0, 60_000, 120_000)]
        >>> event_time_speedup(r, 2.0)    # 2 minutes of event time in 1 s
        120.0
    """
    if len(records) < 2 or rate <= 0:
        return 1.0
    wall_s = (len(records) - 1) / rate
    return round((event_ts(records[-1]) - event_ts(records[0])) / 1000 / wall_s, 1)


def produce_records(bootstrap: str, records: Sequence[Record]) -> float:
    """Produce ``records`` as fast as possible (murmur2 partitioner, like Faust); seconds."""
    from stream_app.kafka_io import make_producer, produce  # noqa: PLC0415

    p = make_producer(bootstrap)
    t0 = time.perf_counter()
    for i, (topic, key, value, _) in enumerate(records):
        produce(p, topic, key, value)
        if i % 10_000 == 0:
            p.poll(0)
    left = p.flush(120)
    if left:
        raise RuntimeError(f"{left} records not delivered")
    return time.perf_counter() - t0
