"""The processing agent: every input stream and the clock ticks, one event at a time.

For each record: decode and validate (bad input -> ``events.dlq`` with the reason and the
original bytes), re-key if the record is not keyed by its user, drop late events to the DLQ,
apply it to the user's state with the tag engine, publish tag changes, write the state back
(one changelog write), and queue the Redis projection. Outputs are queued before the state is
written, and Faust flushes the producer before it commits input offsets: after a crash an
event is either re-applied (its outputs repeat with the same ``event_id``) or found in the
state's dedup window (skipped).

Outputs (tag changes, alerts, training pairs, dead letters, re-keyed copies) go straight to
librdkafka (:meth:`stream_app.app.producer.FastProducer.produce`): one C call each, no Faust
future, no await. The ``users`` table holds each state as orjson bytes (what the changelog
stores anyway): ~1.5 KB per user instead of ~8 KB of nested Python objects, decoded only for
the user being processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson

from stream_app import metrics
from stream_app.app import broadcast, business, unwritten
from stream_app.app.consumer_lag import partition_lags, source_topics
from stream_app.app.context import AHEAD_CAP, NOW_MS, runtime
from stream_app.app.gc_freeze import freeze_when_ready
from stream_app.app.main import app, settings
from stream_app.app.state_store import DirectTableWriter
from stream_app.app.tables import users
from stream_app.app.topics import BACKFILL_TICK, TICKS, contract, source_topic, tick_time
from stream_app.dlq import dead_letter
from stream_app.errors import ConfigError, EventError
from stream_app.events import Event, parse_event
from stream_app.republished import DERIVED, REKEYED, is_republished
from stream_app.scoring.with_tags import layer_moved, score_with_tags, tick_alerts
from stream_app.security.pii import protect_event_props
from stream_app.serving import keys
from stream_app.serving.full_state import (
    LIVE_PAUSE_MAX_S,
    REPROJECT,
    REPROJECT_BEGIN,
    REPROJECT_FLUSHED,
    REPROJECT_PHASE,
    state_ops,
    state_scores,
    why_records,
)
from stream_app.state.codec import ColdState
from stream_app.state.codec import decode as decode_record
from stream_app.state.codec import encode as encode_record
from stream_app.state.decoded import DecodedStates
from stream_app.state.deletion import drops, is_marker
from stream_app.state.deletion import marker as deletion_marker

log = logging.getLogger(__name__)
if settings.producer != "librdkafka":
    # outputs and state writes are queued on the librdkafka producer (no Faust future each)
    raise ConfigError(f"STREAM_APP_PRODUCER={settings.producer!r}: the worker sends through "
                      "librdkafka only (aiokafka is for the benchmark's pass-through app)")
NO_SCORING = settings.disabled("scoring")
NO_BUSINESS = settings.disabled("business")
#: ablation: consume and count only (the worker's framework floor, ``bench.ablation``)
NO_AGENT = settings.disabled("agent")
#: ablation: no Redis projection writes
NO_REDIS = settings.disabled("redis")
#: ablation: the scorer's checkpoints and snapshots parsed with the state on every event,
#: as before the record kept them apart (``stream_app.state.codec``)
COLD_INLINE = settings.disabled("cold_block")
#: the cold block written with each feature vector's names once (off: the earlier layout)
PACK_COLD = not settings.disabled("cold_pack")
#: types declared on the input topics, the workers' derived referral events included: any other
#: is counted in stream_app_events_unknown_type_total (and the tally's type "unknown")
KNOWN_TYPES = contract.known_types()
TAGS_TOPIC = "tags.changes"
DLQ_TOPIC = "events.dlq"
TRAINING_TOPIC = "scoring.training"
ALERT_TOPICS = {"hot_lead": "alerts.hot_lead", "at_risk": "alerts.at_risk"}
#: state writes: store + changelog record through librdkafka (no Faust future per write)
STATE_WRITER = DirectTableWriter.for_table(users)
#: ablation only: the users table's state stored with no changelog record (what one record
#: per user per commit could save at most; docs/PERFORMANCE.md item 55)
WRITE_STATE = (STATE_WRITER.store_only if settings.disabled("changelog")
               else STATE_WRITER.set)
FAUST_WRITES = settings.state_writes == "faust"
#: how long a deleted user's marker is kept (0: a tombstone at once; stream_app/state/deletion.py)
MARKER_MS = settings.deletion_marker_days * 86_400_000
#: events dated further than this after the wall clock are dead-lettered (0: no limit)
MAX_FUTURE_MS = settings.max_future_ms
#: the clock that guard reads (NOW_MS: the wall clock, or stream-app dev's simulated time),
#: imported from app.context with the cap on what an event moves the clocks to (AHEAD_CAP)
CLOCK_NAME = ("wall clock" if settings.clock_speed == 1.0
              else f"simulated clock (x{settings.clock_speed:g}, STREAM_APP_CLOCK_SPEED)")
#: the states of the users processed last, kept parsed (a user's next event skips the parse)
#: (not with the ``cold_block`` ablation, which measures a parse of the whole record per event)
DECODED = DecodedStates(0 if COLD_INLINE else settings.decoded_states)
#: per-event counters, added to the Prometheus children at each scrape (metrics.CounterTally)
EVENTS_TALLY = metrics.EVENTS_TALLY
TAG_CHANGES_TALLY = metrics.TAG_CHANGES_TALLY


def emit(topic: str, key: str | bytes | None, value: Any,
         headers: list[tuple[str, bytes]] | None = None) -> None:
    """Queue one output record (dicts are encoded with orjson); flushed before each commit."""
    app.producer.produce(topic, key, value if isinstance(value, bytes) else orjson.dumps(value),
                         headers=headers)


def load_state(user_id: str, partition: int) -> tuple[dict[str, Any] | None, ColdState]:
    """The user's state from the table, or None, and its scoring checkpoints and snapshots
    (parsed only if the scorer reads them, :mod:`stream_app.state.codec`); ``partition``
    is the input record's (the user's)."""
    raw = STATE_WRITER.get(user_id, partition)
    if not raw:
        return None, ColdState()
    kept = DECODED.take(user_id, raw)
    if kept is not None:
        return kept
    state, cold = decode_record(raw)
    if COLD_INLINE:
        cold(state.setdefault("sc", {}))   # ablation: the whole state parsed per event
    return state, cold


def encode_state(state: dict[str, Any] | None, cold: ColdState) -> bytes | None:
    """The record :func:`store_state` writes for ``state`` (None: a deletion). Called before
    a step's outputs are published, so a state that cannot be written (an error here) fails
    the step before anything of it went out."""
    # an exact-size copy: orjson's bytes keep their ~8 KB output buffer (measured 8.2 KB of
    # RSS per 1.1 KB state)
    return None if state is None else encode_record(state, cold, packed=PACK_COLD)


def store_state(user_id: str, state: dict[str, Any] | None, partition: int,
                cold: ColdState | None = None, raw: bytes | None = None) -> None:
    """Write the user's state (one changelog record to ``partition``, the input record's;
    ``cold``: its block of checkpoints and snapshots as loaded; ``raw``: its record when
    :func:`encode_state` made it already) or delete it (a tombstone)."""
    if state is None:
        DECODED.discard(user_id)
        if user_id in users:
            del users[user_id]
        runtime.due.discard(user_id)
    else:
        if cold is None:
            cold = ColdState()
        if raw is None:
            raw = encode_state(state, cold)
        if FAUST_WRITES:
            users[user_id] = raw
        else:
            WRITE_STATE(user_id, raw, partition)
            # kept parsed for the user's next event (used while the store holds ``raw``)
            DECODED.keep(user_id, raw, state, cold)
        runtime.due.set(user_id, state["nd"])


def send_dlq(msg: Any, reason: str, detail: str) -> None:
    """Dead-letter one input record; never raises on odd bytes."""
    metrics.DLQ_RECORDS.labels(reason=reason).inc()
    rec = dead_letter(msg.value, reason, detail, msg.topic, msg.partition, msg.offset,
                      key=msg.key)
    emit(DLQ_TOPIC, msg.topic, rec)


def forget_user(ev: Event, state: dict[str, Any] | None, partition: int,
                broker_ts: float | None) -> None:
    """PIPL deletion: remove every tag (published, reason ``deleted``) and every Redis trace,
    and replace the state by a deletion marker (:mod:`stream_app.state.deletion`; a
    tombstone when markers are off). A request older than the marker's is a no-op."""
    if is_marker(state):
        if drops(state, ev.ts):
            return
    elif state is not None:
        tags = dict(state.get("tags") or {})
        publish(ev.user_id, runtime.engine.forget(state, ev.ts, trigger=ev.event_id), broker_ts)
        runtime.projection.forget(ev.tenant, ev.user_id, tags)
    if MARKER_MS:
        store_state(ev.user_id, deletion_marker(ev.user_id, ev.tenant, ev.ts, MARKER_MS),
                    partition)
    elif state is not None:
        store_state(ev.user_id, None, partition)


def is_late(ts: int, now: int | None) -> bool:
    """True if an event at ``ts`` is older than the stream time ``now`` minus the grace."""
    return now is not None and ts < now - settings.late_grace_ms


def send_late(msg: Any, stream: str, ts: int, now: int) -> None:
    """Dead-letter an input record older than the stream time minus the grace period."""
    metrics.LATE_EVENTS.labels(stream=stream).inc()
    send_dlq(msg, "late", f"event time {ts} is more than {settings.late_grace_ms} ms "
                          f"before stream time {now}")


def publish_alerts(user_id: str, alerts: list[dict[str, Any]], broker_ts: float | None) -> None:
    """Send alerts to their topics (``broker_ts``: the input's, for the end-to-end metric)."""
    for alert in alerts:
        emit(ALERT_TOPICS[alert["kind"]], user_id, alert)
        metrics.child(metrics.ALERTS, alert["kind"]).inc()
        if broker_ts:
            metrics.observe_e2e("alert", int(broker_ts * 1000))


def clock_alerts(user_id: str, result: Any, now: int) -> list[dict[str, Any]]:
    """Alerts of a clock tick that changed tags (:func:`stream_app.scoring.with_tags.
    tick_alerts`); updates the scoring state's alert memory, so call it before the state is
    encoded."""
    if NO_SCORING:
        return []
    return tick_alerts(getattr(runtime.scorer, "alert_policy", None), user_id, result.state,
                       result.changes, now)


def publish_scoring(user_id: str, tenant: str, step: Any, broker_ts: float | None,
                    rounded: dict[str, float] | None) -> None:
    """Send alerts and training pairs of one scoring step; queue the score fields for Redis
    (``rounded``: the step's scores at the published resolution, 0.01, as
    :func:`score_event` returns them, None without scores; the projection writes only
    fields that moved)."""
    publish_alerts(user_id, step.alerts, broker_ts)
    for ex in step.training:
        emit(TRAINING_TOPIC, ex.target, {
            "target": ex.target, "x": ex.x, "y": ex.y, "ts": ex.ts, "user_id": user_id,
            "gate": ex.gate})
    if rounded and not NO_REDIS:
        runtime.projection.set_fields(tenant, user_id,
                                      keys.score_fields(rounded, step.layers, step.source))


def score_event(state: dict[str, Any], ev: Event, result: Any,
                cold: ColdState | None = None) -> tuple[Any, dict[str, float] | None]:
    """Run the scorer on ``ev`` (``cold``: the state's checkpoints and snapshots, read if
    the scorer needs them) beside the rule engine: the tags reading scores see the gated
    models' scores, and the layers and alerts follow the tags
    (:func:`stream_app.scoring.with_tags.score_with_tags`); score-driven tag changes are
    folded into ``result``. Returns the step and its scores rounded to the published
    resolution (None without scores)."""
    return score_with_tags(runtime.scorer, runtime.engine, state, result.changes,
                           result.why, ev, cold, result.prior)


def follow_layers(user_id: str, result: Any, at: int | None = None) -> None:
    """Write the user's score fields when a step that the scorer did not score (a clock
    tick, a label) moved a tag a layer is read from (``intent``, ``at_risk``): the profile's
    ``layers`` follow the tags, scored as of ``at`` (default: the state's clock).
    Before, such a step left the last scored event's layer beside the new tag."""
    if (result.state is not None and not (NO_SCORING or NO_REDIS)
            and layer_moved(runtime.scorer, result.changes)):
        runtime.projection.set_fields(result.state.get("tenant", "default"), user_id,
                                      state_scores(runtime.scorer, result.state, at=at))


def publish(user_id: str, result: Any, broker_ts: float | None) -> None:
    """Send tag changes and derived events of one engine step; queue the projection."""
    changes = result.changes
    if changes:
        produce, add = app.producer.produce, TAG_CHANGES_TALLY.add
        for ch in changes:
            produce(TAGS_TOPIC, user_id, orjson.dumps(ch))   # emit() of a dict
            add((ch["family"], ch["tag_id"]))
    for ev in getattr(result, "emit", None) or ():
        # judged on time with the event it comes from: not judged again (republished.py)
        emit(contract.stream_topic(ev.get("stream", "click")), ev["user_id"], ev, DERIVED)
    if changes and not NO_REDIS:
        runtime.projection.apply_changes(changes, result.why)
        if broker_ts:
            metrics.observe_e2e("tags", int(broker_ts * 1000))


async def handle_event(msg: Any, stream: str) -> None:
    try:
        ev: Event = parse_event(msg.value, stream, max_bytes=settings.max_event_bytes)
    except EventError as exc:
        send_dlq(msg, exc.reason, exc.detail)
        return
    except Exception as exc:  # noqa: BLE001 - never crash on input
        send_dlq(msg, "invalid", f"{type(exc).__name__}: {exc}")
        return
    if MAX_FUTURE_MS and ev.ts > (wall := NOW_MS()) + MAX_FUTURE_MS:
        # one far-future event would move the clock of its partition (every later event
        # there "late") and the sweep's (every idle user expired): refused at the door
        send_dlq(msg, "ts_in_future", f"event time {ev.ts} is more than {MAX_FUTURE_MS} ms "
                 f"after the worker's {CLOCK_NAME} {wall} (STREAM_APP_MAX_FUTURE_MS)")
        return
    protect_event_props(ev)   # phone, email, WeChat id, name: keyed hashes, never stored raw
    key = msg.key
    source = (msg.topic, msg.partition)
    # a deletion request is an instruction, not an input to aggregates: it is applied however
    # late (PIPL), so it is never judged late
    deletion = ev.type == "deletion_requested"
    # compared as bytes: a key of invalid UTF-8 may decode to the very user_id
    if key != (ev.user_id.encode() if type(key) is bytes else ev.user_id):
        # not keyed by its user: re-publish keyed correctly so the user's state stays on one
        # partition (and one worker); the copy is processed when it arrives. It is judged
        # late or not here, where it came in: it lands on another partition, which may be
        # further on in event time (stream_app/republished.py)
        now = runtime.clock.now(source)
        if not deletion and is_late(ev.ts, now):
            send_late(msg, stream, ev.ts, now)
        else:
            emit(contract.stream_topic(stream), ev.user_id, msg.value, REKEYED)
        return
    # the partition's stream time before this event; the event moved it if it is newer (a
    # late event is older, so it did not)
    now = runtime.clock.advance(AHEAD_CAP(ev.ts), source)   # (a skewed producer's +8 h: held)
    if not deletion and is_late(ev.ts, now) and not is_republished(msg.headers):
        send_late(msg, stream, ev.ts, now)
        return
    state, cold = load_state(ev.user_id, msg.partition)
    if state is not None and ev.tenant != state.get("tenant", ev.tenant):
        # a user belongs to one tenant (state, tags and Redis keys are per tenant): another
        # tenant's event under the same user_id would mix them, a deletion would remove the
        # wrong tenant's user. Dead-lettered (a marker holds the deleted user's tenant too)
        send_dlq(msg, "tenant_mismatch", f"user_id {ev.user_id!r} belongs to tenant "
                 f"{state.get('tenant')!r}, not {ev.tenant!r}: user ids must be unique "
                 "across tenants (prefix them with the tenant)")
        return
    if ev.type in KNOWN_TYPES:
        EVENTS_TALLY.add((stream, ev.type))
    else:
        EVENTS_TALLY.add((stream, "unknown"))
        metrics.EVENTS_UNKNOWN_TYPE.labels(stream=stream).inc()
    if deletion:
        forget_user(ev, state, msg.partition, msg.timestamp)
        return
    if is_marker(state):   # a deleted user (stream_app/state/deletion.py)
        if drops(state, ev.ts):
            metrics.DELETED_USER_EVENTS.labels(stream=stream).inc()
            return     # from before the deletion, read after it: the user does not come back
        state, cold = None, ColdState()    # after it: a new user
    result = runtime.engine.on_event(state, ev)
    if result.duplicate:
        metrics.DUPLICATES.labels(stream=stream).inc()
        return
    if result.state is not None and not NO_SCORING:
        step, rounded = score_event(result.state, ev, result, cold)
    else:
        step = rounded = None
    raw = encode_state(result.state, cold)   # before any output: a failure publishes nothing
    if step is not None:
        publish_scoring(ev.user_id, ev.tenant, step, msg.timestamp, rounded)
        if rounded is None:
            # an event the scorer does not score (a label, a verdict) can move a layer tag
            # (the engine's clock-reading rules at its time, QA39b F2)
            follow_layers(ev.user_id, result)
    publish(ev.user_id, result, msg.timestamp)
    store_state(ev.user_id, result.state, msg.partition, cold, raw)
    runtime.processed += 1
    if not NO_BUSINESS:
        # after the engine: a re-delivered duplicate is not counted twice, and an event
        # without channel props counts for the user's first-touch channel (its tag)
        tags = result.state.get("tags") if result.state is not None else None
        closed = business.count_event(ev, source, business.channel_from_tags(ev, tags))
        if closed:
            await business.send_partials(closed, source)


async def handle_tick(msg: Any) -> None:
    """Re-evaluate one user on the clock (sent by the sweep timer); its processing time
    paces the sweep (:mod:`stream_app.tick_pacing`)."""
    started = time.perf_counter()
    try:
        _tick(msg)
    finally:
        runtime.ticks.observe(time.perf_counter() - started)


#: seconds a ``redis-rebuild --live`` request may keep the projection's caches suspended
#: (its command stopped between its first records and its re-projection requests)
SUSPEND_MAX_S = 600.0


def another_app(request: bytes) -> bool:
    """Whether a ``redis-rebuild --live`` request (``<id>@<app id>``) is another app's; a
    request without an app id (the release before's) is every app's."""
    app_id = request.partition(b"@")[2]
    return bool(app_id) and app_id != settings.app_id.encode()


def reproject_phase(value: bytes) -> None:
    """A ``redis-rebuild --live`` request's first ticks (one per partition; the first of a
    request acts, later ones are no-ops).

    ``reproject-begin:<request>`` comes before the projection is deleted: the worker holds
    its Redis writes (until ``reproject-flushed:<request>``, at most ``LIVE_PAUSE_MAX_S``),
    so none interleaves with the deletion; and until the request's re-projection starts
    here (its first :func:`reproject` record, at most ``SUSPEND_MAX_S``) it writes whole
    what it writes, so that a user or a shared key (tenant set, value index, why shapes)
    written between the deletion and the re-projection is not skipped as already in Redis.

    The ticks topic is shared by every app on the broker: a request ends with ``@<app id>``
    and a worker ignores another app's (QA40 F4: one app's rebuild held every app's Redis
    writes for ``LIVE_PAUSE_MAX_S``). A request without one (the release before, or queued
    in the topic at the upgrade) is acted on by every app, as then; until the next release.
    """
    proj = runtime.projection
    if another_app(value.partition(b":")[2]):
        return
    if value.startswith(REPROJECT_FLUSHED):
        if proj.paused:
            proj.resume_writes()
            log.warning("redis-rebuild --live request %s: projection deleted, writing again",
                        value[len(REPROJECT_FLUSHED):].decode("utf-8", "replace"))
        return
    if not value.startswith(REPROJECT_BEGIN):
        return
    request = value[len(REPROJECT_BEGIN):]
    if request in (runtime.reproject_begun, runtime.reproject_id):
        return
    runtime.reproject_begun = request
    proj.suspend_caches()
    proj.pause_writes(LIVE_PAUSE_MAX_S)
    name = request.decode("utf-8", "replace")
    log.warning("redis-rebuild --live request %s: Redis writes held until the projection is "
                "deleted, then written whole until it re-projects", name)

    def expire() -> None:
        if runtime.reproject_begun == request and proj.suspended:
            proj.resume_caches()
            log.warning("redis-rebuild --live request %s sent no re-projection within "
                        "%.0f s: caching again", name, SUSPEND_MAX_S)
    with contextlib.suppress(RuntimeError):   # no event loop (outside a worker): no expiry
        asyncio.get_running_loop().call_later(SUSPEND_MAX_S, expire)


def reproject(uid: str, state: dict[str, Any] | None, request: bytes) -> None:
    """Rewrite the user's whole Redis projection from its state, queued after this worker's
    earlier writes for it (``redis-rebuild --live``: the rebuild's writes cannot overtake
    newer ones). The first record of a request drops every cache of what Redis holds, and
    caching starts again (from nothing) if :func:`reproject_phase` had suspended it. The
    score fields are the user's as of its state's clock, with the models this worker serves
    (QA40 F2: they were not rewritten, so every user lost its scores and layers). Another
    app's request (``@<app id>``, :func:`reproject_phase`) is ignored."""
    if another_app(request):
        return
    if request != runtime.reproject_id:
        runtime.reproject_id = request
        runtime.projection.resume_caches()
        runtime.projection.resume_writes()   # (done: the flushed tick came first)
        if unwritten.clear(settings.datadir):   # writes lost at earlier stops: rewritten now
            metrics.REDIS_UNWRITTEN.set(0)
        log.warning("redis-rebuild --live request %s: re-projecting this worker's users",
                    request.decode("utf-8", "replace"))
    if state is None or is_marker(state) or NO_REDIS:
        return
    why = (why_records(runtime.engine, state)
           if runtime.projection.why_mode != "off" else None)
    scores = state_scores(None if NO_SCORING else runtime.scorer, state)
    runtime.projection.reproject(state_ops(state, why, runtime.projection.timeline, scores),
                                 state.get("tenant") or "default", uid)
    metrics.REPROJECTED.inc()


#: the input topics: a user's partition on each may still hold its older events
INPUT_TOPICS = tuple(contract.input_topics())


def note_backfill() -> None:
    """One user re-evaluated by a backfill tick: ``stream_app_rule_backfill_progress`` is
    the share handled, not queued (the sweep queues ticks far ahead of a backlog; QA,
    session 26: the log said 33,938/33,938 while Redis still held 1,554 old values)."""
    runtime.backfill_done += 1
    done, total = runtime.backfill_done, runtime.backfill_total
    metrics.BACKFILL_PROGRESS.set(min(done / total, 1.0) if total else 1.0)
    if done == total:
        log.warning("rule backfill: all %d users re-evaluated", total)


def _tick(msg: Any) -> None:
    if msg.value and msg.value.startswith(REPROJECT_PHASE):
        reproject_phase(msg.value)
        return
    uid = msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else str(msg.key)
    state, cold = load_state(uid, msg.partition)
    if msg.value and msg.value.startswith(REPROJECT):
        reproject(uid, state, msg.value[len(REPROJECT):])
        return
    if msg.value == BACKFILL_TICK:
        note_backfill()
    # a sweep's tick is evaluated at the sweep's time, whatever this worker's clock reads
    # (a copy delivered again after a crash, to a worker whose clock was rebuilt from older
    # replayed events or has seen none yet, makes the same changes: QA34 F2, QA36 F1); the
    # engine never goes back before the state's own clock
    at = tick_time(msg.value)
    now = runtime.clock.now() if at is None else at
    if state is None or now is None:
        return
    if is_marker(state):   # a deleted user's marker: a tombstone once its time is up
        # read on the user's partition of every input topic, which may still hold its older
        # events: in a replay one topic can lag the others by days (stream_app/state/deletion)
        at = runtime.clock.least((t, msg.partition) for t in INPUT_TOPICS)
        at = now if at is None else at
        if at >= state["nd"]:
            store_state(uid, None, msg.partition)
        else:   # a lagging partition: due again at the next sweep (not within this one)
            runtime.due.set(uid, max(state["nd"], now + 1))
        return
    before = state["nd"]
    tags = dict(state.get("tags") or {})
    result = runtime.engine.on_tick(state, now)
    alerts = clock_alerts(uid, result, now)
    write = result.state is not None and (result.changes or result.state is not state)
    raw = encode_state(result.state, cold) if write else None   # before any output
    publish(uid, result, None)
    publish_alerts(uid, alerts, None)
    follow_layers(uid, result, at=now)    # (scored as of the tick: QA39 F1, QA40 F1)
    if result.state is None:
        runtime.projection.forget(state.get("tenant", "default"), uid, tags)
        store_state(uid, None, msg.partition)
    elif write:
        store_state(uid, result.state, msg.partition, cold, raw)
    elif result.state["nd"] != before:
        # nothing to persist: only the next due time moved (a restart ticks it once more)
        runtime.due.set(uid, result.state["nd"])


@app.on_partitions_revoked.connect
async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
    """A partition that moved to another worker no longer holds back this worker's clock."""
    runtime.clock.revoke({(tp.topic, tp.partition) for tp in revoked})
    runtime.due.invalidate()


@app.on_partitions_assigned.connect
async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
    """The users held changed: the sweep rebuilds its due-time index from the table, and the
    projection forgets which users it already indexed (another worker may have moved them)."""
    runtime.due.invalidate()
    runtime.projection.reset_caches()


@app.agent(source_topic, name="process")
async def process(stream: Any) -> None:
    """Consume every input stream and the ticks (co-partitioned by user_id)."""
    first = True
    async for event in stream.events():
        if first:   # not before the published rule sets are applied (QA29 F6)
            await broadcast.before_first_event()
            first = False
        msg = event.message
        if NO_AGENT:
            runtime.processed += 1
            continue
        try:
            if msg.topic == TICKS:
                await handle_tick(msg)
            else:
                await handle_event(msg, contract.stream_of(msg.topic))
        except Exception as exc:  # noqa: BLE001 - last line of defence: dead-letter, go on
            log.exception("unexpected error on %s[%s]@%s", msg.topic, msg.partition, msg.offset)
            send_dlq(msg, "internal_error", f"{type(exc).__name__}: {exc}")


@app.task
async def redis_writer() -> None:
    """Write the Redis projection in the background; at a stop, what is still queued is
    written (at most ``STREAM_APP_REDIS_STOP_DRAIN_S``) or recorded as not written (QA31
    F7); while writes fail an open marker stands for a stop that never runs (kill -9)."""
    await unwritten.report_at_start(settings.datadir, metrics.REDIS_UNWRITTEN,
                                    getattr(runtime.projection, "client", None))
    runtime.projection.on_failing = unwritten.OutageMarker(settings.datadir)   # for kill -9
    try:
        await runtime.projection.run()
    except asyncio.CancelledError:
        await unwritten.drain_at_stop(runtime.projection, settings.datadir,
                                      settings.redis_stop_drain_s)
        raise


@app.task
async def quiet_debug_logging() -> None:
    """Undo the root logger at DEBUG that Faust's progress spinner sets when ``-l`` is warn or
    above: every aiokafka/faust ``log.debug`` then builds a LogRecord (measured: 13% of the
    pass-through's CPU per event, docs/PERFORMANCE.md). Back to the handler's level."""
    root = logging.getLogger()
    if root.level == logging.DEBUG and root.handlers and root.handlers[0].level > logging.DEBUG:
        root.setLevel(root.handlers[0].level)


@app.task
async def gc_freeze() -> None:
    """Keep the start-up heap out of full garbage collections (``app/gc_freeze.py``)."""
    if settings.gc_freeze:
        from stream_app.app.web import is_ready  # noqa: PLC0415

        await freeze_when_ready(is_ready)


@app.timer(interval=10.0)
async def table_gauges() -> None:
    """Table size and consumer lag (high-water mark - committed offset) per partition."""
    count_keys = getattr(users.data, "count_keys", None)
    if count_keys is not None:   # a RocksDB store: counted in steps, then kept by the writes
        await count_keys()
    metrics.TABLE_USERS.labels(table="users").set(len(users.data))
    report_lag()


def report_lag() -> dict[tuple[str, int], int]:
    """Set ``stream_app_consumer_lag`` for the partitions of the agents' source topics this
    worker holds and the group has committed: not the tables' changelogs (restored, never
    committed: their size is no lag) nor Faust's internal topics (:mod:`.consumer_lag`).
    Returns what it set."""
    consumer = app.consumer
    lags = partition_lags(consumer.assignment(), source_topics(app.agents.values()),
                          consumer.highwater, getattr(consumer, "_committed_offset", {}) or {})
    metrics.set_consumer_lag(lags)
    return lags


@app.task
async def announce() -> None:
    """Worker identity for dashboards (one scrape target per worker)."""
    from stream_app import __version__  # noqa: PLC0415

    metrics.set_worker_info(f"{app.conf.id}@{settings.web_port}", __version__)


def uptime() -> float:
    return time.time() - runtime.started
