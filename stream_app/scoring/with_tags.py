"""One scoring step beside the rule engine: the worker's glue, pure (no Kafka, no Redis).

The rule engine's ``intent`` tag is *the* intent layer: the scorer reads the layer of
``convert`` from it (``layer_tag`` in ``config/scoring.yaml``), so the tag, the Redis
``layer:convert`` field and the hot-lead alert's ``enter_layer`` trigger agree by
construction. Likewise the ``at_risk`` tag (a bool: true is ``high``) is *the* at-risk
layer (``layer:at_risk``) and the at-risk alert's trigger (``rule_tags``; ``require_tag``:
no at-risk alert without it); it reads the at-risk model's score once that is gated. The
order of one step:

1. the engine has applied the event (``state["tags"]`` are the tags after it);
2. the scorer scores every target;
3. the engine takes the scores it may see and re-evaluates the tags reading them
   (``score.X`` in the rules): only a score whose source is a model that passed its release
   gate; a rules-sourced score is ``null`` to the rules (its points are the rule engine's
   own business, ``lead_points``), so the tags never read a second points table;
4. the scorer takes the layers from the tags as they are now, and the alert policy decides.

Example:
    >>> from stream_app.events import Event
    >>> from stream_app.rules.engine import DEFAULT_RULES, TagEngine
    >>> from stream_app.rules.loader import load_ruleset
    >>> from stream_app.scoring.config import load_scoring_config
    >>> from stream_app.scoring.registry import ModelRegistry
    >>> from stream_app.scoring.scorer import Scorer
    >>> cfg = load_scoring_config()
    >>> eng, sc = TagEngine(load_ruleset(DEFAULT_RULES)), Scorer(cfg, ModelRegistry(cfg))
    >>> st, h = None, 3_600_000
    >>> for i, t in enumerate(["course_view", "trial_booked", "course_view", "cart_add"]):
    ...     ev = Event(f"e{i}", "u1", 1_714_528_800_000 + i * h, t, "click")
    ...     r = eng.on_event(st, ev)
    ...     st = r.state
    ...     step, rounded = score_with_tags(sc, eng, st, r.changes, r.why, ev)
    ...     print(t, st["tags"]["lead_points"], st["tags"]["intent"], step.layers["convert"],
    ...           [a["triggers"] for a in step.alerts])
    course_view 1 low low []
    trial_booked 4 low low []
    course_view 5 medium medium []
    cart_add 15 high high [['enter_layer']]
    >>> st["scores"]       # no model live: the rules see no score
    {'convert': None, 'at_risk': None}
"""

from __future__ import annotations

from typing import Any

from stream_app.events import Event
from stream_app.rules.engine import change_reason
from stream_app.scoring.points import round_scores

__all__ = ["fold_changes", "layer_moved", "rule_visible_scores", "score_with_tags", "tick_alerts"]


def rule_visible_scores(rounded: dict[str, float], source: dict[str, str]
                        ) -> dict[str, float | None]:
    """The scores the rules see (``score.X``): a model's once it passed its release gate,
    ``None`` for a target still on its rule points.

    >>> rule_visible_scores({"convert": 0.42, "at_risk": 0.1},
    ...                     {"convert": "model", "at_risk": "rules"})
    {'convert': 0.42, 'at_risk': None}
    """
    return {t: (None if source.get(t, "rules") == "rules" else v) for t, v in rounded.items()}


def score_with_tags(scorer: Any, engine: Any, state: dict[str, Any],
                    changes: list[dict[str, Any]], why: dict[str, Any], ev: Event,
                    cold: Any = None, prior: tuple[dict[str, Any], Any] | None = None
                    ) -> tuple[Any, dict[str, float] | None]:
    """Score ``ev`` for the user whose engine state is ``state`` (after the engine applied
    ``ev``), with the tags that read scores re-evaluated before the layers and alerts are
    decided; score-driven tag changes are folded into ``changes`` (one record per tag and
    event, see :func:`fold_changes`) and ``why``. ``prior``: the engine step's
    :attr:`~stream_app.rules.engine.StepResult.prior` (the tags before the event, so the
    re-evaluation's hysteresis starts from the same values). Returns the
    scoring step and its scores at the published resolution (None without scores).
    """
    out: list[dict[str, float] | None] = [None]

    def retag(step: Any) -> dict[str, Any] | None:
        if not step.scores:
            return None
        rounded = out[0] = round_scores(step.scores)
        seen = rule_visible_scores(rounded, step.source)
        if seen != state.get("scores"):     # (the usual event: no model live, all None)
            extra = engine.on_scores(state, seen, ev.ts, prior)
            if extra.changes:
                fold_changes(changes, extra.changes, ev.event_id)
            why.update(extra.why)
        return state.get("tags")

    step = scorer.on_event(state.get("sc"), ev, rule_tags=state.get("tags"), cold=cold,
                           retag=retag)
    state["sc"] = step.sc_state
    return step, out[0]


def fold_changes(changes: list[dict[str, Any]], extra: list[dict[str, Any]],
                 trigger: str) -> None:
    """Fold the score re-evaluation's tag changes (``extra``) into the event's (``changes``,
    in place): one record per tag and event, from its value before the event to its value
    after. The engine applies an event with the scores before it, then the tags reading
    scores run again with the new ones, so one event could send ``high -> medium`` and then
    ``medium -> high`` (a third of the intent change records of a 1,000-user replay); a tag
    back where it was sends nothing. A folded record keeps the first one's id and sequence
    number (the second's is left unused) and its reason follows its ends (added, removed,
    changed); a change only the scores made keeps its reason (``score``) and gets the
    event as its ``trigger``.

    >>> a = {"tag_id": "intent", "old": "high", "new": "medium", "reason": "changed", "seq": 5}
    >>> b = {"tag_id": "intent", "old": "medium", "new": "high", "reason": "score", "seq": 7,
    ...      "trigger": None}
    >>> c = {"tag_id": "churn", "old": None, "new": True, "reason": "score", "seq": 8,
    ...      "trigger": None}
    >>> ch = [a]
    >>> fold_changes(ch, [b, c], "e1")
    >>> [(x["tag_id"], x["old"], x["new"], x["reason"], x["seq"], x["trigger"]) for x in ch]
    [('churn', None, True, 'score', 8, 'e1')]
    >>> ch = [dict(a, new=None, reason="removed")]
    >>> fold_changes(ch, [dict(b, old=None, new="low")], "e1")
    >>> [(x["old"], x["new"], x["reason"], x["seq"]) for x in ch]
    [('high', 'low', 'changed', 5)]
    """
    at = {c["tag_id"]: i for i, c in enumerate(changes)}
    back: set[int] = set()
    for c in extra:
        i = at.get(c["tag_id"])
        if c.get("trigger") is None:
            c["trigger"] = trigger
            ev = c.get("evidence")
            if ev is not None and ev.get("trigger") is None:
                # the evidence names the event too (QA39 F2: it read as a clock tick's)
                c["evidence"] = dict(ev, trigger=trigger)
        if i is None:
            at[c["tag_id"]] = len(changes)
            changes.append(c)
            continue
        first = changes[i]
        old, new = first["old"], c["new"]
        if old == new and type(old) is type(new):
            back.add(i)         # back where it was before the event: no change
            continue
        back.discard(i)
        merged = dict(first, new=new, reason=change_reason(old, new))
        if "evidence" in c:
            merged["evidence"] = c["evidence"]
        changes[i] = merged
    if back:
        changes[:] = [c for i, c in enumerate(changes) if i not in back]


def tick_alerts(policy: Any, user_id: str, state: dict[str, Any] | None,
                changes: list[dict[str, Any]], now: int) -> list[dict[str, Any]]:
    """Alerts of a clock tick that changed the tags of the user whose engine state is
    ``state`` (:meth:`AlertPolicy.decide_clock`: a rule tag such as ``at_risk`` turned true,
    or the ``intent`` tag moved, with no event to come with); updates the scoring state's
    alert memory, so call it before the state is encoded.

    >>> tick_alerts(None, "u1", {"sc": {}}, [{"tag_id": "intent"}], 0)
    []
    """
    if policy is None or state is None or not changes:
        return []
    sc = state.get("sc")
    if not sc:
        return []
    tick = Event(f"clock:{now}", user_id, now, "clock_tick", "clock",
                 state.get("tenant", "default"))
    return policy.decide_clock(sc, tick, state.get("tags"))


def layer_moved(scorer: Any, changes: list[dict[str, Any]]) -> bool:
    """Whether ``changes`` moved a tag a layer is read from (``layer_tag``: ``intent``,
    ``at_risk``). A step the scorer did not score (a clock tick, a label) has no scoring
    step to carry the layers, so the worker writes the user's score fields itself (the
    layers the tags'): without that the profile's ``layers`` kept the last scored event's
    layer beside the new tag (QA39 F1, QA40 F1: ``at_risk: true`` served with
    ``layers.at_risk: low``; QA39b F2).

    >>> from stream_app.scoring.config import load_scoring_config
    >>> from stream_app.scoring.registry import ModelRegistry
    >>> from stream_app.scoring.scorer import Scorer
    >>> cfg = load_scoring_config()
    >>> sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
    >>> layer_moved(sc, [{"tag_id": "at_risk"}]), layer_moved(sc, [{"tag_id": "activity"}])
    (True, False)
    """
    if scorer is None or not changes:
        return False
    watched = scorer.layer_tags.values()
    return any(c["tag_id"] in watched for c in changes)
