"""``stream-app dev`` — the whole thing, embedded: broker, Redis, worker(s), simulator, summary."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from stream_app.cli.option_types import FiniteFloatRange
from stream_app.text import plural

#: seconds between two summary lines (not a terminal) and two backlog readings
SUMMARY_EVERY_S = 10.0

#: prefix of the live simulator's user ids and event ids (``live-u0000000``,
#: ``live-s42-0-0``): ``stream-app simulate`` writes ``u0000000`` and ``s42-0-0`` with the
#: same seed, so a simulated file replayed into this stack would otherwise be taken for
#: duplicates of the live events (same event ids) and merged into unrelated live users (QA38 F1)
LIVE_ID_PREFIX = "live-"

#: people a live run is checked for when its ``--id-prefix`` must fit the event schema
LIVE_PEOPLE_CHECKED = 10**9


def build_simulator(arrivals: float | None, seed: int, inject: tuple[str, ...],
                    warmup_days: float | None = None,
                    id_prefix: str = LIVE_ID_PREFIX) -> Any:
    """The live simulator of ``dev``, built from its options before any service starts, so
    a bad ``--inject`` or a simulator config that does not load is an ``Error:`` line at
    once, not a thread's traceback once the stack runs (ConfigError naming the option).
    Its ids start with ``id_prefix`` (:data:`LIVE_ID_PREFIX`), apart from ``simulate``'s.

    >>> sim = build_simulator(None, 42, ())
    >>> sim.id_prefix
    'live-'
    """
    from stream_app.cli.simulate_cmd import id_problem  # noqa: PLC0415
    from stream_app.errors import ConfigError  # noqa: PLC0415
    from stream_app.sim import Simulator, load_sim_config, parse_injection  # noqa: PLC0415

    injections = []
    for spec in inject:
        try:
            injections.append(parse_injection(spec))
        except ConfigError as exc:
            raise ConfigError(f"--inject: {exc}") from None
    overrides: dict[str, float] = {}
    if arrivals is not None:
        overrides["live.arrivals_per_day"] = arrivals
    if warmup_days is not None:
        overrides["live.warmup_days"] = warmup_days
    origins = {"live.arrivals_per_day": "the --arrivals option",
               "live.warmup_days": "the --warmup-days option"}
    problem = id_problem(id_prefix, seed, LIVE_PEOPLE_CHECKED)
    if problem:
        raise click.BadParameter(problem, param_hint="--id-prefix")
    return Simulator(load_sim_config(overrides=overrides or None, origins=origins), seed=seed,
                     injections=injections, id_prefix=id_prefix)


def _produce_simulation(stack, sim: Any, speed: float | None, stop: threading.Event,
                        stats: Counter, failed: list[BaseException]) -> None:
    """Produce the simulator's live stream until ``stop`` is set; an exception that ends it
    goes to ``failed`` (the summary loop reports it as an ``Error:`` line)."""
    try:
        _produce(stack, sim, speed, stop, stats)
    except Exception as exc:  # noqa: BLE001 - reported by the main thread
        failed.append(exc)


def _produce(stack, sim: Any, speed: float | None, stop: threading.Event,
             stats: Counter) -> None:
    import orjson  # noqa: PLC0415

    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.kafka_io import make_producer, produce  # noqa: PLC0415

    contract = load_contract()
    producer = make_producer(stack.bootstrap)
    for wall_due, ev in sim.live(speed=speed, sleep=None, keep_finished=False):
        if stop.is_set():
            break
        delay = wall_due - time.time()
        if delay > 0:
            producer.poll(0)
            if stop.wait(delay):
                break
        stream = ev.get("stream", "click")
        produce(producer, contract.stream_topic(stream), ev["user_id"], orjson.dumps(ev))
        stats["events"] += 1
        stats[f"stream:{stream}"] += 1
    producer.flush(10)


class Backlog:
    """The workers' backlog for the summary: input events produced but not processed yet
    (end offsets minus the group's committed offsets, ``kafka_io.group_backlog``), measured
    by :meth:`run` in a background thread, a reading started every ``every_s`` seconds (once
    per summary line; back to back when one takes longer), so the summary never waits on the
    broker. A backlog that keeps growing means the worker(s) do not keep up.

    Each reading is shown with its change since the reading before, over the seconds between
    the two. A reading ``every_s`` seconds old or more (the next one is late: a loaded broker
    answers slowly) is shown with its age instead of that change: a summary line never repeats
    an old reading as if it were new (QA40 F5.4: under load 10 of 64 lines repeated the one
    before verbatim, "backlog 290,669 events (+3,324 in 10s)" twice).

    Example (``clock``: seconds, as :func:`time.monotonic`):
        >>> readings, t = iter([1200, 1500, 900]), [0.0]
        >>> b = Backlog(lambda: next(readings), every_s=10.0, clock=lambda: t[0])
        >>> b.text()
        'backlog ?'
        >>> b.update(); b.text()
        'backlog 1,200 events'
        >>> t[0] = 10.0; b.update(); b.text()
        'backlog 1,500 events (+300 in 10s)'
        >>> t[0] = 24.0; b.update(); b.text()
        'backlog 900 events (-600 in 14s)'
        >>> t[0] = 38.0; b.text()
        'backlog 900 events (reading 14 s old)'
    """

    def __init__(self, measure: Callable[[], int], every_s: float = SUMMARY_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.measure, self.every_s, self.clock = measure, every_s, clock
        #: (events not processed, change since the reading before, when it was taken,
        #: seconds since the reading before) or None before the first; the change and the
        #: seconds are None for the first reading
        self.reading: tuple[int, int | None, float, float | None] | None = None

    def update(self) -> None:
        """Take one reading; a failed one (broker busy) keeps the last (which then ages)."""
        try:
            n = self.measure()
        except Exception:  # noqa: BLE001 - a summary detail must not stop dev
            return
        at, last = self.clock(), self.reading
        self.reading = (n, None, at, None) if last is None else (n, n - last[0], at,
                                                                 at - last[2])

    def run(self, stop: threading.Event) -> None:
        """Read now, then start a reading every ``every_s`` seconds (at once when the last
        took longer) until ``stop`` is set."""
        while not stop.is_set():
            began = self.clock()
            self.update()
            if stop.wait(max(0.0, self.every_s - (self.clock() - began))):
                return

    def text(self) -> str:
        """``backlog N events`` with the change since the reading before (none when 0), or
        the reading's age when it is ``every_s`` seconds old or more."""
        if self.reading is None:
            return "backlog ?"
        n, change, at, between = self.reading
        age = self.clock() - at
        if age >= self.every_s:
            return f"backlog {plural(n, 'event')} (reading {age:.0f} s old)"
        trend = f" ({change:+,} in {between:.0f}s)" if change and between is not None else ""
        return f"backlog {plural(n, 'event')}{trend}"


def _render(stats: Counter, tag_feed: deque, alert_feed: deque, started: float,
            rate: float, backlog: Backlog | None = None,
            workers: str = ""):  # noqa: ANN202
    from rich.console import Group  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    head = Table(title=f"stream-app dev ({time.time() - started:,.0f}s)", show_header=False)
    head.add_column(style="bold")
    head.add_column(justify="right")
    for label, value in [("workers", Text(workers, style="red") if workers else "up"),
                         ("events produced", f"{stats['events']:,}"),
                         ("events/s", f"{rate:,.0f}"),
                         ("not processed yet (backlog)",
                          Text(backlog.text().removeprefix("backlog ")) if backlog else "?"),
                         ("tag changes", f"{stats['tags']:,}"),
                         ("hot-lead alerts", f"{stats['alert:hot_lead']:,}"),
                         ("at-risk alerts", f"{stats['alert:at_risk']:,}"),
                         ("metric anomalies", f"{stats['alert:metric_anomaly']:,}"),
                         ("dead-lettered", f"{stats['dlq']:,}")]:
        head.add_row(label, value)
    fam = Table(title="tag changes by family", show_header=False)
    for key, n in sorted(((k, v) for k, v in stats.items() if k.startswith("family:")),
                         key=lambda kv: -kv[1])[:10]:
        fam.add_row(Text(key[7:]), f"{n:,}")
    top = Table.grid(padding=(0, 2))
    top.add_row(head, fam)
    tags = Table(title="latest tag changes", show_header=False, box=None)
    for line in list(tag_feed)[-8:]:
        tags.add_row(_literal(line))
    alerts = Table(title="latest alerts", show_header=False, box=None)
    for line in list(alert_feed)[-6:]:
        alerts.add_row(_literal(line))
    return Group(top, tags, alerts)


def _literal(line: Any) -> Any:
    """A feed line as rich renders it: a :class:`~rich.text.Text` as it is, any other value
    as literal text (never read as console markup: the lines carry data from events)."""
    from rich.text import Text  # noqa: PLC0415

    return line if isinstance(line, Text) else Text(str(line))


def _describe(topic: str, rec: dict) -> Any:
    """One line of the feeds for a record of ``topic``, as a :class:`~rich.text.Text`: the
    record's data (user ids, tag values, DLQ details quote the input) is shown literally,
    only the fixed parts are styled, so ``[/]`` in an event can neither break nor restyle it.

    Example:
        >>> line = _describe("events.dlq", {"reason": "bad_ts",
        ...                                 "detail": "ts '[/]2024' is not ISO-8601"})
        >>> line.plain, [(s.start, s.end, str(s.style)) for s in line.spans]
        ("DLQ bad_ts: ts '[/]2024' is not ISO-8601", [(0, 3, 'red')])
    """
    from rich.text import Text  # noqa: PLC0415

    if topic == "tags.changes":
        return Text.assemble((str(rec.get("user_id")), "cyan"), f" {rec.get('tag_id')}: "
                             f"{rec.get('old')} -> ", (str(rec.get("new")), "bold"),
                             f"  ({str(rec.get('reason', ''))[:60]})")
    if topic == "events.dlq":
        return Text.assemble(("DLQ", "red"),
                             f" {rec.get('reason')}: {str(rec.get('detail', ''))[:60]}")
    reasons = rec.get("reasons") or []
    why = "; ".join(str(r.get("en") or r.get("text") or r) for r in reasons[:2])
    who = rec.get("user_id") or rec.get("metric")
    score, points = rec.get("score"), rec.get("points")
    if rec.get("basis") == "points" and isinstance(points, int | float):
        score_txt = f" points {points:g}"       # hot because of its lead points
    else:
        score_txt = f" score {score:.2f}" if isinstance(score, int | float) else ""
    return Text.assemble((topic.split(".")[-1], "magenta"), f" {who}{score_txt}: {why[:90]}")


class PlainFeed:
    """What ``dev`` shows when its output is not a terminal (a pipe, a log file, CI): one
    summary line every ``every_s`` seconds and the alerts that came since, instead of a live
    table that a non-terminal would only get at the end. With a :class:`Backlog`, the line
    ends with the events not processed yet; with a
    :class:`~stream_app.services.supervisor.Supervisor`, with the workers that are down.
    The events per second of a line are those produced since the line before, over the time
    since it (the first line: since the start), not the rate of the last second (QA38 F4: a
    1-second figure jumped between 57 and 1,211/s while ~900/s flowed).

    Example:
        >>> from rich.console import Console
        >>> feed = PlainFeed(Console(width=200), started=0.0, every_s=0.0)
        >>> feed.alerts.append("hot lead u1")
        >>> feed.update(Counter(events=120, tags=30, **{"alert:hot_lead": 1}), now=12.0)
        12s: 120 events (10/s), 30 tag changes, alerts 1 hot-lead 0 at-risk 0 anomaly, 0 DLQ
          hot lead u1
        >>> feed.backlog = Backlog(lambda: 35)
        >>> feed.backlog.update()
        >>> feed.update(Counter(events=150, tags=31), now=14.0)
        14s: 150 events (15/s), 31 tag changes, alerts 0 hot-lead 0 at-risk 0 anomaly, 0 DLQ,
        backlog 35 events
        >>> class Down:
        ...     def status(self): return "worker-1 restarting (not processing)"
        >>> feed.workers = Down()
        >>> feed.update(Counter(events=160, tags=31), now=15.0)
        15s: 160 events (10/s), 31 tag changes, alerts 0 hot-lead 0 at-risk 0 anomaly, 0 DLQ,
        backlog 35 events, worker-1 restarting (not processing)
    """

    def __init__(self, console: Any, started: float, every_s: float = SUMMARY_EVERY_S,
                 backlog: Backlog | None = None, workers: Any = None) -> None:
        self.console, self.started, self.every_s = console, started, every_s
        self.backlog = backlog
        #: a Supervisor (its ``status()``: the workers that are down), or None
        self.workers = workers
        self.last = started
        #: events produced as of the last line (its rate is over the time since that one)
        self.last_events = 0
        self.alerts: list[str] = []

    def __enter__(self) -> PlainFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, stats: Counter, rate: float | None = None,
               now: float | None = None) -> None:
        """Print a line if ``every_s`` has passed since the last one. ``rate`` (the live
        table's rate of the last second) is not used: the line shows the rate over the
        interval it covers."""
        from rich.text import Text  # noqa: PLC0415

        now = time.time() if now is None else now
        if now - self.last < self.every_s:
            return
        elapsed = now - self.last
        events = stats["events"]
        rate = (events - self.last_events) / elapsed if elapsed > 0 else 0.0
        self.last, self.last_events = now, events
        self.console.print(
            f"{now - self.started:.0f}s: {plural(stats['events'], 'event')} ({rate:,.0f}/s), "
            f"{plural(stats['tags'], 'tag change')}, alerts {stats['alert:hot_lead']:,} hot-lead "
            f"{stats['alert:at_risk']:,} at-risk {stats['alert:metric_anomaly']:,} anomaly, "
            f"{stats['dlq']:,} DLQ" + (f", {self.backlog.text()}" if self.backlog else "")
            + (f", {down}" if self.workers is not None and (down := self.workers.status())
               else ""),
            markup=False, highlight=False, soft_wrap=True)
        for line in self.alerts[-5:]:
            self.console.print(Text.assemble("  ", _literal(line)), highlight=False,
                               soft_wrap=True)
        self.alerts.clear()


#: seconds between two looks at the worker processes (a dead one is reported and restarted)
WORKER_CHECK_EVERY_S = 1.0


def _supervise(supervisor: Any, console: Any, alert_feed: deque) -> None:
    """One look at the workers (:meth:`Supervisor.check`): what it finds (a worker that
    exited, its restart, its return) is printed at once and shown in the feed of alerts; a
    worker that keeps exiting stops the run (``Error:`` line, exit status 1).

    Example:
        >>> from rich.console import Console
        >>> class Sup:
        ...     def check(self): return ["worker-1 exited unexpectedly (exit status 1)"]
        >>> feed = deque()
        >>> _supervise(Sup(), Console(width=120), feed)
        worker-1 exited unexpectedly (exit status 1)
        >>> feed[0].plain, str(feed[0].style)
        ('worker-1 exited unexpectedly (exit status 1)', 'bold red')
    """
    from rich.text import Text  # noqa: PLC0415

    from stream_app.errors import ServiceError  # noqa: PLC0415

    try:
        notices = supervisor.check()
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    for line in notices:
        style = "green" if " is back " in line else "red"
        text = Text(line, style=f"bold {style}")
        console.print(text, highlight=False, soft_wrap=True)
        alert_feed.append(text)


def done_line(stats: Counter) -> str:
    """The summary ``dev`` prints when it stops (``--duration``, Ctrl-C, SIGTERM).

    >>> done_line(Counter(events=1200, tags=1, **{"alert:hot_lead": 3}))
    'done: 1,200 events, 1 tag change, 3 hot-lead alerts, 0 at-risk alerts, 0 DLQ records'
    """
    return (f"done: {plural(stats['events'], 'event')}, "
            f"{plural(stats['tags'], 'tag change')}, "
            f"{plural(stats['alert:hot_lead'], 'hot-lead alert')}, "
            f"{plural(stats['alert:at_risk'], 'at-risk alert')}, "
            f"{plural(stats['dlq'], 'DLQ record')}")


#: the example of a second stack's work directory in ``dev``'s refusal
SECOND_WORKDIR = "var/dev-2"


@click.command("dev")
@click.option("--arrivals", type=FiniteFloatRange(min=0, min_open=True), default=None,
              help="new simulated learners per simulated day (default: config/simulator.yaml)")
@click.option("--speed", type=FiniteFloatRange(min=0, min_open=True), default=None,
              help="simulated seconds per wall second, e.g. 1440 = a day per minute "
                   "(default: config/simulator.yaml)")
@click.option("--warmup-days", type=FiniteFloatRange(min=0), default=None,
              help="simulated days of history sent at once before the live pace starts, "
                   "so learners are already enrolled (default: config/simulator.yaml)")
@click.option("--inject", multiple=True, metavar="KIND:K=V,...",
              help="inject an anomaly, e.g. lead_drop:channel=douyin,start=1d,duration=6h "
                   "(repeatable; the kinds of `stream-app simulate --inject`)")
@click.option("--seed", default=42, show_default=True,
              help="seed of the live simulator: the same seed gives the same people and events")
@click.option("--id-prefix", default=LIVE_ID_PREFIX, show_default=True,
              help="prefix of the simulated user ids and event ids (live-u0000000, ...): keeps "
                   "them apart from a `stream-app simulate` file replayed into this stack, "
                   "whose ids have no prefix by default")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--partitions", type=click.IntRange(min=1), default=4, show_default=True,
              help="partitions of the topics the stack creates (the broadcast topics have 1): "
                   "the workers share them, so workers beyond this number stay idle")
@click.option("--duration", type=FiniteFloatRange(min=0), default=0.0,
              help="stop after N seconds (0 = until Ctrl-C)")
@click.option("--workdir", default="var/dev", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="directory of the workers' stores and the logs, emptied at start; one "
                   "running stack per directory: a second stack needs one of its own")
def command(arrivals: float | None, speed: float | None, warmup_days: float | None,
            inject: tuple[str, ...], seed: int, id_prefix: str, workers: int,
            partitions: int, duration: float, workdir: Path) -> None:
    """Run broker, Redis, worker(s) and the simulator; show tags and alerts live."""
    from rich.console import Console  # noqa: PLC0415
    from rich.live import Live  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.errors import WorkdirBusyError  # noqa: PLC0415
    from stream_app.kafka_io import group_backlog, read_assigned  # noqa: PLC0415
    from stream_app.services.signals import terminate_as_interrupt  # noqa: PLC0415
    from stream_app.services.stack import Stack  # noqa: PLC0415
    from stream_app.services.supervisor import Supervisor  # noqa: PLC0415

    # every option is checked before a service starts (the stack takes ~15 s to come up)
    sim = build_simulator(arrivals, seed, inject, warmup_days, id_prefix)
    console = Console()
    # the simulator's time runs ahead of the wall clock (--speed, a day per 30 s): the
    # workers judge far-future events (STREAM_APP_MAX_FUTURE_MS, a day) against that
    # simulated time (it starts with the stack, a little before the simulator: ahead of it
    # by the start-up's seconds x speed), so an event dated years ahead is still refused
    # (QA29 F2: the guard was off and one such event expired every user); an event typed by
    # hand with today's date would be "late" (older than the stream time minus the grace)
    # within two minutes: that check is off on this demo stack
    clock_speed = float(speed or sim.config.live.speed)
    try:
        stack = Stack(workdir=workdir, workers=0, partitions=partitions,
                      env={"STREAM_APP_CLOCK_SPEED": repr(clock_speed),
                           "STREAM_APP_CLOCK_ORIGIN_MS": str(int(time.time() * 1000)),
                           "STREAM_APP_LATE_GRACE_MS": str(10 * 365 * 86_400_000)},
                      on_takeover=lambda notice: console.print(
                          Text.assemble(("note:", "yellow"), f" {notice}"), highlight=False))
    except WorkdirBusyError as exc:
        other = SECOND_WORKDIR if Path(SECOND_WORKDIR) != workdir else f"{workdir}-2"
        raise click.ClickException(f"{exc}: `stream-app dev --workdir {other}`") from None
    stop = threading.Event()
    stats: Counter = Counter()
    failed: list[BaseException] = []
    with terminate_as_interrupt():   # kill / timeout stop it like Ctrl-C
        try:
            with console.status("starting the tansu broker and redis-server..."):
                stack.start_services()
            console.print(Text.assemble("broker ", (str(stack.bootstrap), "bold"), "  redis ",
                                        (str(stack.redis.url), "bold"),
                                        f"  logs in {workdir}/logs"))
            with console.status("starting worker(s): joining the consumer group takes ~30 s..."):
                for _ in range(workers):
                    stack.add_worker(wait=False)
                for w in stack.workers:
                    w.wait_ready(240)
            console.print("worker(s) ready: " + ", ".join(f"{w.name} {w.url}/metrics"
                                                           for w in stack.workers),
                          markup=False)
            for k, v in stack.settings_env().items():
                console.print(Text(f"  export {k}={v}", style="dim"))
            producer = threading.Thread(target=_produce_simulation, daemon=True,
                                        name="dev-simulator",
                                        args=(stack, sim, speed, stop, stats, failed))
            producer.start()
            group, inputs = stack.settings().app_id, load_contract().input_topics()
            backlog = Backlog(lambda: group_backlog(stack.bootstrap, group, inputs, partitions))
            threading.Thread(target=backlog.run, args=(stop,), daemon=True,
                             name="dev-backlog").start()
            readers = {t: read_assigned(stack.bootstrap, t, partitions if t != "x" else 1)
                       for t in ("tags.changes", "alerts.hot_lead", "alerts.at_risk",
                                 "alerts.metric_anomaly", "events.dlq")}
            tag_feed: deque = deque(maxlen=20)
            alert_feed: deque = deque(maxlen=20)
            started = time.time()
            last_n, last_t, rate = 0, started, 0.0
            import orjson  # noqa: PLC0415

            supervisor = Supervisor(stack.workers, stack.restart_worker)
            plain = None if console.is_terminal else PlainFeed(console, started,
                                                               backlog=backlog,
                                                               workers=supervisor)
            last_check = 0.0
            with (Live(_render(stats, tag_feed, alert_feed, started, rate, backlog),
                       console=console, refresh_per_second=2)
                  if plain is None else plain) as live:
                while not duration or time.time() - started < duration:
                    if time.monotonic() - last_check >= WORKER_CHECK_EVERY_S:
                        last_check = time.monotonic()
                        _supervise(supervisor, console, alert_feed)
                    for topic, consumer in readers.items():
                        for msg in consumer.consume(num_messages=2000, timeout=0.05):
                            if msg.error() or msg.value() is None:
                                continue
                            rec = orjson.loads(msg.value())
                            if topic == "tags.changes":
                                stats["tags"] += 1
                                stats[f"family:{rec.get('family')}"] += 1
                            elif topic == "events.dlq":
                                stats["dlq"] += 1
                            else:
                                stats[f"alert:{topic.split('.')[-1]}"] += 1
                            if topic != "tags.changes":
                                line = _describe(topic, rec)
                                alert_feed.append(line)
                                if plain is not None:
                                    plain.alerts.append(line)
                            elif rec.get("old") is not None or stats["tags"] % 20 == 1:
                                tag_feed.append(_describe(topic, rec))
                    now = time.time()
                    if now - last_t >= 1.0:
                        rate = (stats["events"] - last_n) / (now - last_t)
                        last_n, last_t = stats["events"], now
                    if plain is None:
                        live.update(_render(stats, tag_feed, alert_feed, started, rate,
                                            backlog, supervisor.status()))
                    else:
                        plain.update(stats, rate)
                    if failed:
                        raise click.ClickException(
                            f"the simulator stopped after {plural(stats['events'], 'event')}: "
                            f"{type(failed[0]).__name__}: {failed[0]}")
                    if not producer.is_alive() and stats["events"] == 0:
                        raise click.ClickException("the simulator stopped without producing")
            console.print(done_line(stats), markup=False, highlight=False)
        except KeyboardInterrupt:   # Ctrl-C, or SIGTERM/SIGHUP (terminate_as_interrupt)
            console.print("stopping...")
            console.print(done_line(stats), markup=False, highlight=False)
        finally:
            stop.set()
            stack.stop()
