"""The simulator: a seeded population of learners interleaved into one event-time-ordered stream.

Pure: no Kafka, no Redis. :meth:`Simulator.events` gives a bulk run (a file, a benchmark);
:meth:`Simulator.live` paces an endless run against the wall clock (``stream-app dev``);
:meth:`Simulator.truth` gives each user's hidden traits and outcomes, and
:meth:`Simulator.ground_truth` adds the injected anomalies. Every call of ``events`` or ``live``
starts a fresh run, so the same seed always gives the same events (ids included).

Example:
    >>> sim = Simulator(load_sim_config(overrides={"users": 50}), seed=7)
    >>> evs = list(sim.events(START, 3 * DAY_MS))
    >>> evs[0]["type"], evs[0]["stream"], evs[0]["event_id"]
    ('ad_landing', 'click', 's7-0-0')
    >>> all(a["ts"] <= b["ts"] for a, b in zip(evs, evs[1:]))
    True
    >>> [e["event_id"] for e in Simulator(sim.config, seed=7).events(START, DAY_MS)][:3] == \\
    ...     [e["event_id"] for e in evs[:3]]
    True
    >>> t = sim.truth()[evs[0]["user_id"]]
    >>> sorted(k for k in t if k in ("intent", "dropout", "converted", "dropped"))
    ['converted', 'dropout', 'dropped', 'intent']
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from stream_app.errors import ConfigError
from stream_app.events import parse_ts
from stream_app.sim.config import SimConfig, load_sim_config
from stream_app.sim.inject import ActiveInjection, Injection, Windows
from stream_app.sim.learner import Behaviour, Item, Learner
from stream_app.sim.rhythm import DAY_MS, HOUR_MS, Rhythm

START = 1_772_380_800_000  # 2026-03-02T00:00:00+08:00, a Monday: the default start of a run

# an arrival: (ts, source order, forced channel, spike index, inviter)
Arrival = tuple[int, int, str | None, int | None, Learner | None]


class _Marker:
    """Heap owner of an arrival (``spawn``: the arrival of an invitee)."""

    __slots__ = ("spawn",)

    def __init__(self, spawn: bool) -> None:
        self.spawn = spawn


_ARRIVAL, _SPAWN = _Marker(False), _Marker(True)


class Simulator:
    """A seeded, simulated education company producing contract-valid input events.

    Parameters:
        config: the simulated world (``load_sim_config()`` reads ``config/simulator.yaml``).
        seed: the same seed gives the same events, event ids and truth.
        injections: anomalies to inject (``parse_injection("spike:start=2d,duration=2h")``);
            relative starts count from the start of the run.
        id_prefix: prepended to user ids and event ids (keeps separate runs apart in one
            broker, e.g. a timestamp in ``stream-app dev``).
    """

    def __init__(self, config: SimConfig | None = None, seed: int = 42, *,
                 injections: list[Injection] | tuple[Injection, ...] = (),
                 id_prefix: str = "") -> None:
        self.config = config if config is not None else load_sim_config()
        self.seed = seed
        self.injections = list(injections)
        for inj in self.injections:   # refused here, before a caller starts anything
            self._check_injection(inj)
        self.id_prefix = id_prefix
        self._learners: dict[str, Learner] = {}
        self._count = 0
        self._keep_finished = True
        self._active: list[ActiveInjection] = []
        self._heap: list[tuple[int, int, Any, Any]] = []
        self._seq: Callable[[], int] = itertools.count().__next__
        self._run_start = self._run_end = None
        #: people a bulk run may still bring in besides spike visitors (None: live, no limit)
        self._places: int | None = None
        self.emitted = 0

    # ---------------------------------------------------------------- public API
    def events(self, start_ms: int | None = None, duration_ms: int | None = None,
               users: int | None = None) -> Iterator[dict[str, Any]]:
        """A bulk run: ``users`` (default ``config.users``) people arriving over
        ``[start_ms, start_ms + duration_ms)``, all their events in that window, in event-time
        order. Defaults: ``config.start`` and ``config.days``.

        Exactly ``users`` people take part (invitees brought by a share included: each takes
        the place of one of the last planned arrivals, and an invitation once every place is
        taken brings nobody); an injected spike's extra visitors come on top of them
        (``truth[uid]["spike"]`` names them).

        >>> sim = Simulator(load_sim_config(overrides={"users": 50}), seed=42)
        >>> _ = sum(1 for _ in sim.events(START, 30 * DAY_MS))
        >>> len(sim.truth()), sum(1 for t in sim.truth().values() if t["inviter_id"]) > 0
        (50, True)
        """
        cfg = self.config
        start = parse_ts(cfg.start) if start_ms is None else start_ms
        dur = int(cfg.days * DAY_MS) if duration_ms is None else duration_ms
        n = cfg.users if users is None else users
        rng = self._reset(cfg, start, start + dur)
        self._places = n
        rh = self._behaviour.rhythm
        arrivals: list[Iterator[Arrival]] = [
            ((ts, 0, None, None, None) for ts in rh.bulk_arrivals(rng, start, start + dur, n))]
        per_hour = n / max(rh.mass(start, start + dur), 1e-9)
        arrivals += self._spike_arrivals(rng, rh, per_hour, start + dur)
        return self._run(heapq.merge(*arrivals), start + dur)

    def live(self, speed: float | None = None, start_ms: int | None = None, *,
             warmup_ms: int | None = None, clock: Callable[[], float] = time.time,
             sleep: Callable[[float], None] | None = time.sleep,
             keep_finished: bool = True) -> Iterator[tuple[float, dict[str, Any]]]:
        """An endless run paced by the wall clock: yields ``(due_wall_time, event)``.

        Simulated time runs ``speed`` x faster than the wall clock (default
        ``config.live.speed``), from ``start_ms`` (default: now), after ``warmup_ms`` of
        simulated history that is emitted at once. New people keep arriving at
        ``config.live.arrivals_per_day``; ``config.live.overrides`` apply. With ``sleep`` (the
        default) the generator waits until each event is due; with ``sleep=None`` it never
        waits and the caller paces (e.g. ``await asyncio.sleep(due - time.time())``).
        ``keep_finished=False`` forgets people whose story has ended (bounded memory for long
        sessions; :meth:`truth` then holds only people still active).
        """
        cfg = self.config
        if cfg.live.overrides:
            cfg = cfg.with_overrides(cfg.live.overrides)
        speed = float(cfg.live.speed if speed is None else speed)
        if speed <= 0:
            raise ConfigError(f"live speed must be > 0, got {speed}")
        wall0 = clock()
        start = int(wall0 * 1000) if start_ms is None else start_ms
        warm = int(cfg.live.warmup_days * DAY_MS) if warmup_ms is None else warmup_ms
        rng = self._reset(cfg, start, None)
        self._keep_finished = keep_finished
        rh = self._behaviour.rhythm
        per_day = cfg.live.arrivals_per_day
        base = ((ts, 0, None, None, None)
                for ts in rh.poisson_arrivals(rng, start - warm, per_day))
        spikes = self._spike_arrivals(rng, rh, per_day / 24, None)
        for ev in self._run(heapq.merge(base, *spikes), None):
            due = wall0 + (ev["ts"] - start) / 1000.0 / speed
            if sleep is not None:
                now = clock()
                if due > now:
                    sleep(due - now)
            yield due, ev

    def truth(self) -> dict[str, dict[str, Any]]:
        """user_id -> hidden traits and outcomes of the last run (as far as it went)."""
        return {uid: dict(u.truth) for uid, u in self._learners.items()}

    def summary(self) -> list[dict[str, Any]]:
        """Per channel of the last run: people, leads, buyers, lead rate and conversion.

        >>> sim = Simulator(load_sim_config(overrides={"users": 200}), seed=1)
        >>> _ = sum(1 for _ in sim.events(duration_ms=5 * DAY_MS))
        >>> rows = sim.summary()
        >>> rows[0]["channel"], sum(r["people"] for r in rows) == len(sim.truth())
        ('all', False)
        >>> rows[0]["people"] == len(sim.truth())
        True
        """
        rows: dict[str, dict[str, Any]] = {}
        for u in self._learners.values():
            t = u.truth
            for key in ("all", t["channel"]):
                r = rows.setdefault(key, {"channel": key, "people": 0, "leads": 0,
                                          "trials": 0, "buyers": 0, "dropped": 0})
                r["people"] += 1
                r["leads"] += t["registered"]
                r["trials"] += t["trial_purchased"]
                r["buyers"] += t["converted"]
                r["dropped"] += t["dropped"]
        out = sorted(rows.values(), key=lambda r: (r["channel"] != "all", -r["people"]))
        for r in out:
            r["lead_rate"] = round(r["leads"] / r["people"], 3) if r["people"] else 0.0
            r["conversion"] = round(r["buyers"] / r["leads"], 3) if r["leads"] else 0.0
        return out

    def ground_truth(self) -> dict[str, Any]:
        """The truth file: run parameters, injected anomalies and per-user truth."""
        return {
            "seed": self.seed,
            "start_ms": self._run_start,
            "end_ms": self._run_end,
            "events": self.emitted,
            "injections": [a.to_dict() for a in self._active],
            "users": self.truth(),
        }

    # ---------------------------------------------------------------- the run
    def _check_injection(self, inj: Injection) -> None:
        """ConfigError unless ``inj``'s channel and funnel step are the config's.

        Example:
            >>> from stream_app.sim import parse_injection
            >>> Simulator(injections=[parse_injection("lead_drop:channel=zzz,start=1d")])
            Traceback (most recent call last):
            ...
            stream_app.errors.ConfigError: injection lead_drop: unknown channel 'zzz' (known: ...
        """
        cfg = self.config
        kind = cfg.anomalies.get(inj.kind)
        if inj.channel is not None and inj.channel not in cfg.channels:
            raise ConfigError(f"injection {inj.kind}: unknown channel {inj.channel!r} "
                              f"(known: {', '.join(cfg.channels)})")
        step = inj.step or (kind.step if kind else None)
        if inj.kind == "funnel_collapse" and step not in cfg.funnel:
            raise ConfigError(f"injection funnel_collapse: unknown step {step!r} "
                              f"(known: {', '.join(cfg.funnel)})")

    def _reset(self, cfg: SimConfig, start: int, end: int | None) -> random.Random:
        rng = random.Random(self.seed)
        self._active = []
        for inj in self.injections:
            kind = cfg.anomalies.get(inj.kind)
            self._active.append(inj.resolve(start, kind.factor if kind else 1.0,
                                            kind.step if kind else None))
        self._windows = Windows(self._active)
        self._behaviour = Behaviour(cfg, rng, self._windows, self._spawn)
        self._rng = rng
        self._learners = {}
        self._count = 0
        self._heap = []
        self._seq = itertools.count().__next__
        self._run_start, self._run_end = start, end
        self._keep_finished = True
        self._places = None
        self.emitted = 0
        return rng

    def _spike_arrivals(self, rng: random.Random, rh: Rhythm, per_hour: float,
                        end: int | None) -> list[Iterator[Arrival]]:
        """Extra arrivals of each spike: (factor - 1) x the normal rate in its window."""
        out: list[Iterator[Arrival]] = []
        shares = {k: c.share for k, c in self._behaviour.cfg.channels.items()}
        total = sum(shares.values())
        for i, a in enumerate(self._active):
            if a.kind != "spike" or a.factor <= 1.0:
                continue
            hi = a.end_ms if end is None else min(a.end_ms, end)
            share = shares.get(a.channel, 0.0) / total if a.channel else 1.0
            n = round(per_hour * rh.mass(a.start_ms, hi) * (a.factor - 1.0) * share)
            times = rh.bulk_arrivals(rng, a.start_ms, hi, n)
            out.append(_tagged(times, i + 1, a.channel, i))
        return out

    def _spawn(self, ts: int, inviter: Learner) -> None:
        heapq.heappush(self._heap, (ts, self._seq(), _SPAWN, (ts, -1, "referral", None, inviter)))

    def _new(self, a: Arrival) -> Learner:
        idx = self._count
        self._count += 1
        p = self.id_prefix
        u = self._behaviour.new_learner(idx, f"{p}u{idx:07d}", f"{p}s{self.seed}-{idx}-",
                                        a[0], channel=a[2], inviter=a[4])
        if a[3] is not None:
            u.truth["spike"] = a[3]
        if a[4] is not None:
            a[4].truth["invited"] += 1
        self._learners[u.uid] = u
        return u

    def _run(self, arrivals: Iterator[Arrival], end: int | None) -> Iterator[dict[str, Any]]:
        heap = self._heap
        seq = self._seq
        push, replace, pop = heapq.heappush, heapq.heapreplace, heapq.heappop
        life = self._behaviour.life
        horizon = (1 << 62) if end is None else end
        first = next(arrivals, None)
        if first is not None:
            push(heap, (first[0], seq(), _ARRIVAL, first))
        n = 0
        while heap:
            ts, _, owner, item = heap[0]
            if ts >= horizon:
                break
            if owner.__class__ is _Marker:
                if self._places is not None and item[3] is None:   # not a spike visitor
                    if self._places <= 0:        # every place is taken: nobody comes
                        pop(heap)
                        if owner is _ARRIVAL:
                            nxt = next(arrivals, None)
                            if nxt is not None:
                                push(heap, (nxt[0], seq(), _ARRIVAL, nxt))
                        continue
                    self._places -= 1
                u = self._new(item)
                gen = u.gen = life(u)
                replace(heap, _entry(next(gen), seq(), u))
                if owner is _ARRIVAL:
                    nxt = next(arrivals, None)
                    if nxt is not None:
                        push(heap, (nxt[0], seq(), _ARRIVAL, nxt))
                continue
            ev = {"event_id": owner.eid + str(owner.n), "user_id": owner.uid, "ts": ts,
                  "type": item[3], "tenant": owner.tenant, "props": item[4],
                  "stream": item[2]}
            owner.n += 1
            if item[5] is not None:
                _mark(owner, item[5], ts, item[4])
            nxt = next(owner.gen, None)
            if nxt is None:
                pop(heap)
                owner.gen = None
                if not self._keep_finished:
                    del self._learners[owner.uid]
            else:
                replace(heap, (nxt[0], seq(), owner, nxt))
            n += 1
            if n & 0x3FF == 0:
                self.emitted = n
            yield ev
        self.emitted = n


def _tagged(times: list[int], order: int, channel: str | None,
            spike: int | None) -> Iterator[Arrival]:
    for ts in times:
        yield (ts, order, channel, spike, None)


def _entry(item: Item, seq: int, u: Learner) -> tuple[int, int, Learner, Item]:
    return (item[0], seq, u, item)


def _mark(u: Learner, mark: str, ts: int, props: dict[str, Any]) -> None:
    """Record in the ground truth what an emitted event reveals."""
    t = u.truth
    if mark == "reg":
        t["registered"], t["registered_ts"] = True, ts
    elif mark == "trial":
        t["trial_purchased"] = True
    elif mark == "conv":
        t["converted"], t["converted_ts"] = True, ts
    elif mark == "lab_conv":
        t["convert_label"] = props["value"]
    elif mark == "drop":
        t["dropped"], t["dropped_ts"] = True, ts
    elif mark == "lab_risk":
        t["at_risk_label"] = props["value"]
    elif mark == "start":
        t["courses"] += 1
    elif mark == "done":
        t["completed"] = True
    elif mark == "refund":
        t["refunded"] = True
    elif mark == "renew":
        t["renewed"] = True
    elif mark == "del":
        t["deleted"] = True


__all__ = ["DAY_MS", "HOUR_MS", "START", "Simulator"]
