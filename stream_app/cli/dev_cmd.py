"""``stream-app dev`` — the whole thing, embedded: broker, Redis, worker(s), simulator, summary."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from pathlib import Path

import click


def _produce_simulation(stack, users: int, speed: float, seed: int, stop: threading.Event,
                        stats: Counter) -> None:
    """Produce the simulator's live stream until ``stop`` is set."""
    from stream_app.contract import load_contract  # noqa: PLC0415
    from stream_app.kafka_io import make_producer, produce  # noqa: PLC0415
    from stream_app.sim import SimConfig, Simulator  # noqa: PLC0415

    contract = load_contract()
    producer = make_producer(stack.bootstrap)
    sim = Simulator(SimConfig.load(users=users), seed=seed)
    import orjson  # noqa: PLC0415

    for wall_due, ev in sim.live(speed=speed):
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


def _render(stats: Counter, recent: deque, started: float, rate: float):  # noqa: ANN202
    from rich.console import Group  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    head = Table.grid(padding=(0, 3))
    head.add_row(f"[bold]events produced[/] {stats['events']:,}",
                 f"[bold]events/s[/] {rate:,.0f}",
                 f"[bold]tag changes[/] {stats['tags']:,}",
                 f"[bold]hot leads[/] {stats['alert:hot_lead']:,}",
                 f"[bold]at risk[/] {stats['alert:at_risk']:,}",
                 f"[bold]anomalies[/] {stats['alert:metric_anomaly']:,}",
                 f"[bold]DLQ[/] {stats['dlq']:,}",
                 f"[dim]{time.time() - started:,.0f}s[/]")
    fam = Table(title="tag changes by family", show_header=False, box=None)
    for key, n in sorted(((k, v) for k, v in stats.items() if k.startswith("family:")),
                         key=lambda kv: -kv[1])[:10]:
        fam.add_row(key[7:], f"{n:,}")
    feed = Table(title="latest", show_header=False, box=None)
    for line in list(recent)[-12:]:
        feed.add_row(line)
    return Group(head, fam, feed)


def _describe(topic: str, rec: dict) -> str:
    if topic == "tags.changes":
        return (f"[cyan]{rec.get('user_id')}[/] {rec.get('tag_id')}: "
                f"{rec.get('old')} -> [bold]{rec.get('new')}[/]  ({rec.get('reason', '')[:60]})")
    if topic == "events.dlq":
        return f"[red]DLQ[/] {rec.get('reason')}: {rec.get('detail', '')[:60]}"
    reasons = rec.get("reasons") or []
    why = "; ".join(str(r.get("en") or r.get("text") or r) for r in reasons[:2])
    who = rec.get("user_id") or rec.get("metric")
    return f"[magenta]ALERT {topic.split('.')[-1]}[/] {who} {why[:80]}"


@click.command("dev")
@click.option("--users", default=2000, show_default=True, help="simulated learners")
@click.option("--speed", default=1440.0, show_default=True,
              help="simulated seconds per wall second (1440 = a day per minute)")
@click.option("--seed", default=42, show_default=True)
@click.option("--workers", default=1, show_default=True)
@click.option("--partitions", default=4, show_default=True)
@click.option("--duration", default=0.0, help="stop after N seconds (0 = until Ctrl-C)")
@click.option("--workdir", default="var/dev", show_default=True, type=click.Path(path_type=Path))
def command(users: int, speed: float, seed: int, workers: int, partitions: int,
            duration: float, workdir: Path) -> None:
    """Run broker, Redis, worker(s) and the simulator; show tags and alerts live."""
    from rich.console import Console  # noqa: PLC0415
    from rich.live import Live  # noqa: PLC0415

    from stream_app.kafka_io import read_assigned  # noqa: PLC0415
    from stream_app.services.stack import Stack  # noqa: PLC0415

    console = Console()
    stack = Stack(workdir=workdir, workers=0, partitions=partitions)
    stop = threading.Event()
    stats: Counter = Counter()
    try:
        with console.status("starting the tansu broker and redis-server..."):
            stack.start_services()
        console.print(f"broker [bold]{stack.bootstrap}[/]  redis [bold]{stack.redis.url}[/]  "
                      f"logs in {workdir}/logs")
        with console.status("starting worker(s): joining the consumer group takes ~30 s..."):
            for _ in range(workers):
                stack.add_worker(wait=False)
            for w in stack.workers:
                w.wait_ready(240)
        console.print("worker(s) ready: " + ", ".join(f"{w.name} {w.url}/metrics"
                                                       for w in stack.workers))
        for k, v in stack.settings_env().items():
            console.print(f"  [dim]export {k}={v}[/]")
        producer = threading.Thread(target=_produce_simulation, daemon=True,
                                    args=(stack, users, speed, seed, stop, stats))
        producer.start()
        readers = {t: read_assigned(stack.bootstrap, t, partitions if t != "x" else 1)
                   for t in ("tags.changes", "alerts.hot_lead", "alerts.at_risk",
                             "alerts.metric_anomaly", "events.dlq")}
        recent: deque = deque(maxlen=50)
        started = time.time()
        last_n, last_t, rate = 0, started, 0.0
        import orjson  # noqa: PLC0415

        with Live(_render(stats, recent, started, rate), console=console,
                  refresh_per_second=2) as live:
            while not duration or time.time() - started < duration:
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
                        if topic != "tags.changes" or stats["tags"] % 25 == 1:
                            recent.append(_describe(topic, rec))
                now = time.time()
                if now - last_t >= 1.0:
                    rate = (stats["events"] - last_n) / (now - last_t)
                    last_n, last_t = stats["events"], now
                live.update(_render(stats, recent, started, rate))
                if not producer.is_alive() and stats["events"] == 0:
                    raise click.ClickException("the simulator stopped without producing")
        console.print(f"done: {stats['events']:,} events, {stats['tags']:,} tag changes, "
                      f"{stats['alert:hot_lead']:,} hot-lead and {stats['alert:at_risk']:,} "
                      f"at-risk alerts, {stats['dlq']:,} DLQ records")
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        stop.set()
        stack.stop()
