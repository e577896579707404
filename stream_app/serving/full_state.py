"""One user's whole projection, written from its state: what ``redis-rebuild`` writes for
every user of the table, and what a worker writes for a user it is asked to re-project
(``redis-rebuild --live``): its current tags (with their why records) and its score fields
(``score:<target>`` = ``[score, layer, source]``), scored as of the state's own clock
(:func:`state_scores`).

Example:
    >>> st = {"uid": "u1", "tenant": "t1", "tags": {"activity": "low", "score": 3}}
    >>> sorted({op[0] for op in state_ops(st)})
    ['hset', 'lpush', 'ltrim', 'sadd', 'zadd']
    >>> state_ops({"uid": "u2", "tags": {}})       # no tags: still one of the tenant's users
    [('sadd', 'sa:default:users', 'u2'), ('sadd', 'sa:tenants', 'default')]
    >>> state_ops({"uid": "u2", "tags": {}},
    ...           scores={"score:convert": (0.37, "medium", "rules")})[-1]
    ('hsetmap', 'sa:default:user:u2', {'score:convert': b'[0.37,"medium","rules"]'})
"""

from __future__ import annotations

from typing import Any

import orjson

from stream_app.scoring.points import round_scores
from stream_app.serving import keys
from stream_app.serving.projection import change_ops

State = dict[str, Any]

__all__ = ["LIVE_PAUSE_MAX_S", "REPROJECT", "REPROJECT_BEGIN", "REPROJECT_FLUSHED",
           "REPROJECT_PHASE", "TICKS_TOPIC", "scored_at", "state_ops", "state_scores",
           "why_records"]

#: the topic of the workers' clock ticks (``topics/topics.yaml``), processed by the owner of
#: each user in order with its events, and the value of a tick that asks for the user's whole
#: projection (followed by the request's id). ``redis-rebuild --live`` sends one
#: ``REPROJECT_BEGIN`` tick per partition before it deletes the projection: each worker then
#: holds its Redis writes (at most ``LIVE_PAUSE_MAX_S``) until the ``REPROJECT_FLUSHED`` tick
#: sent after the deletion, and writes whole what it writes (no cache of what Redis holds)
#: until the request's first ``REPROJECT`` tick.
TICKS_TOPIC = "internal.ticks"
REPROJECT = b"reproject:"
REPROJECT_BEGIN = b"reproject-begin:"
REPROJECT_FLUSHED = b"reproject-flushed:"
#: what the begin and flushed ticks start with (one test per tick on the worker)
REPROJECT_PHASE = b"reproject-"
LIVE_PAUSE_MAX_S = 120.0


def state_ops(state: State, why: dict[str, Any] | None = None,
              timeline: int = keys.TIMELINE_MAX,
              scores: dict[str, tuple[float, Any, Any]] | None = None
              ) -> list[tuple[Any, ...]]:
    """Projection operations that write one table record's current tags (segment bitmaps,
    integer ids and numeric buckets through the projection's scripts) and ``scores``, its
    score fields (:func:`state_scores`; QA40 F2: none were written, so a rebuild left every
    user without scores and layers until its next scored event)."""

    ops: list[tuple[Any, ...]] = []
    tenant = state.get("tenant") or "default"
    uid = state["uid"]
    for tag_id, value in sorted((state.get("tags") or {}).items()):
        if value is None:
            continue
        ch = {"user_id": uid, "tenant": tenant, "tag_id": tag_id, "old": None, "new": value,
              "seq": state.get("seq"), "reason": "rebuilt"}
        ops.extend(change_ops(ch, (why or {}).get(tag_id), timeline=timeline))
    if not ops:
        ops.append(("sadd", keys.users_key(tenant), uid))
        ops.append(("sadd", keys.TENANTS_KEY, tenant))
    if scores:
        ops.append(("hsetmap", keys.user_key(tenant, uid),
                    {f: orjson.dumps(v) for f, v in scores.items()}))
    return ops


def scored_at(state: State) -> tuple[int | None, int | None]:
    """``(clock, last)``: the state's own clock (``now``: its newest event or clock tick),
    the time a rebuild scores it as of, and the time of its last scored event (the
    scoring state's ``last``), the time the worker scored it as of; ``(None, None)`` for a
    state that was never scored (no scoring state, or no event folded into it: the worker
    wrote no score fields).

    >>> scored_at({"now": 9_000, "sc": {"t0": 1_000, "last": 5_000}})
    (9000, 5000)
    >>> scored_at({"now": 9_000, "sc": {"t0": None, "last": None}}), scored_at({"now": 1})
    ((None, None), (None, None))
    """
    sc = state.get("sc")
    if not isinstance(sc, dict) or sc.get("t0") is None:
        return None, None
    last = sc.get("last")
    last = last if isinstance(last, int) else sc["t0"]
    now = state.get("now")
    return max(now if isinstance(now, int) else 0, last), last


def state_scores(scorer: Any, state: State, at: int | None = None
                 ) -> dict[str, tuple[float, Any, Any]]:
    """The score fields of a user from its state (``scorer``: a
    :class:`~stream_app.scoring.scorer.Scorer` with the served models; None: none): every
    target scored as of ``at`` (default: the state's own clock, :func:`scored_at`) at the
    published resolution, the layers of the targets that have a ``layer_tag`` read from the
    state's tags, as the worker writes them after an event or a clock tick that moves a
    layer tag. Empty for a state never scored, or one the scorer cannot read (a scoring
    state of another layout: the user keeps no score fields until its next scored event).

    Example:
        >>> from stream_app.events import Event
        >>> from stream_app.scoring.config import load_scoring_config
        >>> from stream_app.scoring.registry import ModelRegistry
        >>> from stream_app.scoring.scorer import Scorer
        >>> cfg = load_scoring_config()
        >>> sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
        >>> ev = Event("e1", "u1", 0, "trial_booked", "click")
        >>> st = {"now": 0, "tags": {"intent": "medium"}, "sc": sc.on_event(None, ev).sc_state}
        >>> state_scores(sc, st)
        {'score:convert': (0.22, 'medium', 'rules'), 'score:at_risk': (0.0, 'low', 'rules')}
        >>> st["now"] = 14 * 86_400_000      # clock ticks since: the points have decayed
        >>> state_scores(sc, st)["score:convert"], state_scores(sc, st, at=0)["score:convert"]
        ((0.12, 'medium', 'rules'), (0.22, 'medium', 'rules'))
        >>> state_scores(None, st), state_scores(sc, {"now": 0, "tags": {}})
        ({}, {})
    """
    clock, _ = scored_at(state)
    if scorer is None or clock is None:
        return {}
    try:
        step = scorer.score(state["sc"], clock if at is None else at,
                            rule_tags=state.get("tags") or {})
    except Exception:  # noqa: BLE001 - an unreadable scoring state: no score fields
        return {}
    return keys.score_fields(round_scores(step.scores), step.layers, step.source)


def why_records(engine: Any, state: State) -> dict[str, Any]:
    """The rule explanation of each stored tag value that the current rules still give."""
    try:
        rs = engine.ruleset
        values = rs.evaluate(state, state.get("now") or 0, day_offset_ms=engine.day_offset_ms)
    except Exception:  # noqa: BLE001 - an old layout or a changed rule: tags without why
        return {}
    out = {}
    for tag_id, value in (state.get("tags") or {}).items():
        tv = values.get(tag_id) if hasattr(values, "get") else None
        if tv is not None and tv.value == value:
            out[tag_id] = dict(tv.why, ruleset=rs.version, trigger=None, rebuilt=True)
    return out
