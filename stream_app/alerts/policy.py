"""Alert policy: hot-lead and at-risk alerts with reasons, cooldown, de-dup and budget.

* **hot lead** (``alerts.hot_lead``): the lead enters the high intent layer, or a gated
  model's score jumps by ``jump`` or more (to at least ``min_score_for_jump``) from its last
  score; the scorer's own rule points (the score before the gate) never jump. A jump alerts
  only a lead whose layer is one of ``jump_layers`` (medium or high: not a lead with no
  intent tag, nor a low one), and not a lead the rules hold out of high although the model's
  score reaches the high threshold (no lead points: the model alone is no hot lead), so the
  alert's layer and reasons agree with the ``intent`` tag (QA34 F1).
* **at risk** (``alerts.at_risk``): the rule engine's ``at_risk`` tag (``rule_tags``) turns
  true: missed lessons in a row, a stall, or the gated model's score at or above the
  threshold in ``config/rules/learning.yaml``; ``consecutive_missed`` missed lessons in a row
  add their own trigger. Its layer is that tag (``layer_tag``, no ``enter_layer`` trigger of
  its own) and nothing goes out unless the tag is true (``require_tag``), so the alert and
  the learner's tags agree (the agent passes the tags in). Its reasons are the tag's
  conditions that hold (``conditions``: :mod:`stream_app.alerts.conditions`).

Eligibility: ``require_any`` (e.g. at-risk only for users with study or purchase events)
and ``exclude_if_any`` (e.g. no hot-lead alert for a lead who already bought).

Per lead: at most one alert of a kind per ``cooldown_hours`` (state in ``sc_state["al"]``:
``t`` the last alert's time), except that a jump alert of a lead below ``enter_layer`` (a
medium lead warming up: ``tj``) does not hold back the alert of its entry into high: the
entry into high intent is always alerted (outside an earlier high alert's cooldown), and a
jump alert comes only outside the cooldown of any alert (QA34 F1: 39 leads of 5 minutes of
a dev run never got their high-intent alert after a "medium" jump alert);
``alert_id`` is derived from the triggering event, so a redelivered event yields the same id
(downstream de-duplicates on it). Per tenant: at most ``hourly_budget_per_tenant`` alerts of a
kind per clock hour, counted in this process (divide the budget by the number of workers).

Reasons explain what made the layer high, in plain words (zh/en). With the rule engine's
tags and a kind's ``basis`` (``hot_lead``: alerts.yaml), the record's ``basis`` is
``points`` when the lead points reach ``intent_high_points`` (or no model is live): the first
reason is "lead points 18 (high from 15)", then the lead-points actions of the last 30 days
with the points lead.yaml gives each; or ``model`` when the gated model's score made it
high: "model score 0.72 (high from 0.6)", then the model's top feature contributions. The
thresholds and points are the running rule set's params (:attr:`AlertPolicy.rule_params`),
read only when an alert is built. Without tags (the scorer alone, e.g. offline) the reasons
are the model's features, or the scorer's own rule events with the points each brings now
(decayed like the score). Alerts also carry the last actions, the channel and a suggested
next step; ``score`` is the target's score (``source``: the model's or the rule points').

Example:
    >>> from stream_app.events import Event
    >>> from stream_app.scoring.config import load_scoring_config
    >>> from stream_app.scoring.scorer import Scorer
    >>> from stream_app.scoring.registry import ModelRegistry
    >>> cfg = load_scoring_config()
    >>> sc = Scorer(cfg, ModelRegistry(cfg))          # rules until the models pass the gate
    >>> st, h = None, 3_600_000
    >>> for i, t in enumerate(["course_view", "trial_booked", "consult_request", "cart_add",
    ...                        "trial_purchased", "live_enter"]):
    ...     step = sc.on_event(st, Event(f"e{i}", "u1", 1_700_000_000_000 + i * h, t, "click",
    ...                                  props={"channel": "douyin"}))
    ...     st = step.sc_state
    ...     if step.alerts:
    ...         a = step.alerts[0]
    >>> a["kind"], a["layer"], a["source"], a["channel"]
    ('hot_lead', 'high', 'rules', 'douyin')
    >>> a["reasons"][0]["en"], a["next_step"]["en"]
    ('trial purchases (+5 points)', 'Follow up within 24 hours of the trial')
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stream_app.alerts.conditions import Condition, number
from stream_app.alerts.words import Words
from stream_app.config import REPO_ROOT
from stream_app.errors import ConfigError
from stream_app.events import Event
from stream_app.scoring.config import ScoringConfig, tag_layer
from stream_app.scoring.points import published, top_point_events

DEFAULT_PATH = REPO_ROOT / "config" / "alerts.yaml"
HOUR_MS = 3_600_000

__all__ = ["AlertKind", "AlertPolicy", "Basis", "TenantBudget", "basis_of"]


@dataclass(frozen=True)
class Basis:
    """What makes a kind's layer high, for the alert's ``basis`` and reasons (``hot_lead``:
    the ``intent`` tag, high from the lead points or from the gated model's score). Names
    only: the numbers are the running rule set's params.

    >>> b = Basis("lead_points", "intent_high_points", "intent_high_score",
    ...           {"cart_add": "pts_paying"})
    >>> b.window_days
    30
    """

    #: the rule tag holding the points (``lead_points``)
    points_tag: str
    #: the rule-set param: high from these points (``intent_high_points``)
    points_high: str
    #: the rule-set param: high from the model's score (``intent_high_score``; None: never)
    score_high: str | None = None
    #: event type -> the rule-set param giving its points in ``points_tag``
    actions: Mapping[str, str] = field(default_factory=dict)
    #: the actions are counted in the last N days (the scorer's daily buckets)
    window_days: int = 30


def basis_of(b: Basis, params: Mapping[str, Any], rule_tags: Mapping[str, Any],
             score: float, source: str) -> str:
    """What made the layer high: ``points`` when the points reach their threshold (or no
    model is live: the rules alone decide), else ``model`` (a live model's score).

    >>> b = Basis("lead_points", "intent_high_points", "intent_high_score")
    >>> p = {"intent_high_points": 15, "intent_high_score": 0.6}
    >>> basis_of(b, p, {"lead_points": 18}, 0.11, "logreg@9")  # high from the points
    'points'
    >>> basis_of(b, p, {"lead_points": 4}, 0.72, "logreg@9")   # from the model's score
    'model'
    >>> basis_of(b, p, {"lead_points": 4}, 0.2, "rules")       # no model live
    'points'
    """
    if source == "rules":
        return "points"
    pts, high = number(rule_tags.get(b.points_tag)), number(params.get(b.points_high))
    return "points" if pts is not None and high is not None and pts >= high else "model"


@functools.cache
def _default_rule_params() -> Mapping[str, Any]:
    """The params of the rule set in ``config/rules`` (loaded at the first alert that needs
    them; a worker passes its engine's live rule set instead)."""
    from stream_app.rules.engine import DEFAULT_RULES  # noqa: PLC0415 - only for alerts
    from stream_app.rules.loader import load_ruleset  # noqa: PLC0415

    return load_ruleset(DEFAULT_RULES).params


@dataclass
class _LastScores:
    """What :meth:`AlertPolicy._alert` reads of a scoring step, from the user's last one."""

    scores: dict[str, float]
    layers: dict[str, Any]
    source: dict[str, str]


@dataclass(frozen=True)
class AlertKind:
    """Settings of one alert kind (``hot_lead`` or ``at_risk``)."""

    kind: str
    target: str
    #: the layer whose entry alerts (None: no layer trigger, e.g. at_risk, whose layer is the
    #: ``at_risk`` tag and alerts through ``rule_tags``)
    enter_layer: str | None = "high"
    jump: float | None = None
    min_score_for_jump: float = 0.0
    #: the layers at which a jump alerts (empty: any); hot_lead: medium and high, so a lead
    #: with no intent tag yet or a low one gets no "hot lead" alert from its score's rise
    jump_layers: tuple[str, ...] = ()
    cooldown_hours: float = 24.0
    hourly_budget_per_tenant: int = 200
    top_reasons: int = 3
    consecutive_missed: int | None = None
    #: the rule tag holding the streak of missed lessons in event time (when the agent passes
    #: the tags in); without it the policy counts in arrival order
    consecutive_missed_tag: str | None = None
    rule_tags: tuple[str, ...] = ()
    #: the rule tag that is the target's layer (the scoring target's ``layer_tag``, e.g.
    #: ``intent``): a clock tick that moves it moves the alert memory's layer too, and
    #: alerts if it enters ``enter_layer`` (else a tag that left the layer on the clock and
    #: came back with the next event would not alert)
    layer_tag: str | None = None
    #: a rule tag that must be true (truthy) for an alert of this kind to go out, when the
    #: agent passes the tags in (``at_risk``: an at-risk alert only for a learner the tags
    #: call at risk, whatever its trigger); checked only once a trigger fired
    require_tag: str | None = None
    #: a rule tag holding the user's consent to what this alert is for (hot_lead: marketing,
    #: ``marketing_consent``): no alert while it is false (refused)
    consent_tag: str | None = None
    #: what makes the layer high (hot_lead: lead points or the model's score), for the
    #: alert's ``basis`` and reasons when the agent passes the tags in
    basis: Basis | None = None
    #: the conditions of the rule tag this kind alerts on (at_risk: missed lessons in a row,
    #: no study event for a while, the model's score), stated in the reasons when they hold
    conditions: tuple[Condition, ...] = ()
    #: the subjects (event types, props, plain features) a model's reasons may cite; empty:
    #: any (at_risk: study behaviour a class teacher can act on, not "page views today")
    explain_only: frozenset[str] = frozenset()
    require_any: tuple[str, ...] = ()       # only users who did one of these event types
    exclude_if_any: tuple[str, ...] = ()    # never users who did one of these
    next_steps: dict[str, dict[str, str]] = field(default_factory=dict)
    # derived once, for the per-event decision: set lookups, one flag instead of two tests
    require_set: frozenset[str] = field(init=False, repr=False, compare=False)
    exclude_set: frozenset[str] = field(init=False, repr=False, compare=False)
    has_rules: bool = field(init=False, repr=False, compare=False)
    # what decide reads for every scored event, as one tuple (one read and an unpacking
    # instead of seven attribute reads): target, require set, exclude set, enter layer,
    # jump, min score for a jump, has_rules
    plan: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """The derived fields (again for a :func:`dataclasses.replace` copy).

        >>> k = AlertKind("at_risk", "at_risk", require_any=("check_in",), rule_tags=("r",))
        >>> k.plan == ("at_risk", frozenset({"check_in"}), frozenset(), "high", None, 0.0,
        ...            True)
        True
        """
        setf = object.__setattr__
        setf(self, "require_set", frozenset(self.require_any))
        setf(self, "exclude_set", frozenset(self.exclude_if_any))
        setf(self, "has_rules", bool(self.consecutive_missed) or bool(self.rule_tags))
        setf(self, "plan", (self.target, self.require_set, self.exclude_set, self.enter_layer,
                            self.jump, self.min_score_for_jump, self.has_rules))


class TenantBudget:
    """Alerts per tenant and clock hour of event time, in this process. Each hour keeps its
    own count (the last ``keep_hours`` hours of a tenant's newest): events of two hours
    that interleave (partitions a little apart at an hour's turn, a replay, a catch-up)
    each spend their own hour's budget. It kept only the current hour before, so
    alternating hours reset it and 100 of 100 alerts passed a limit of 2 (QA, session 26).

    >>> b = TenantBudget()
    >>> [b.take("t1", "hot_lead", 10 * HOUR_MS + i, limit=2) for i in range(3)]
    [True, True, False]
    >>> b.take("t1", "hot_lead", 11 * HOUR_MS, limit=2)   # a new hour
    True
    >>> b.take("t1", "hot_lead", 10 * HOUR_MS + 9, limit=2)   # hour 10 is still spent
    False
    """

    def __init__(self, keep_hours: int = 72) -> None:
        self.keep_hours = keep_hours
        self._used: dict[tuple[str, str], dict[int, int]] = {}

    def take(self, tenant: str, kind: str, ts: int, limit: int) -> bool:
        hour = ts // HOUR_MS
        hours = self._used.get((tenant, kind))
        if hours is None:
            hours = self._used[(tenant, kind)] = {}
        used = hours.get(hour, 0)
        if used >= limit:
            return False
        hours[hour] = used + 1
        if len(hours) > self.keep_hours:        # forget hours far behind the newest
            oldest = max(hours) - self.keep_hours
            for h in [h for h in hours if h <= oldest]:
                del hours[h]
        return True


class AlertPolicy:
    """Decides the alerts of one scored event (called by the Scorer)."""

    def __init__(self, kinds: dict[str, AlertKind], words: Words,
                 half_lives: dict[str, float] | None = None, day_offset_hours: float = 0.0,
                 rule_params: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.kinds = kinds
        self.words = words
        self.budget = TenantBudget()
        #: target -> half-life (days) of its rule points: a rules-sourced alert's reasons
        #: are the points each action brings *now* (not lifetime totals)
        self.half_lives = half_lives or {}
        #: the business day boundary of the scorer's daily buckets (features.day_offset_hours,
        #: the setting day_offset_minutes: the tag rules' business day)
        self.day_offset_ms = int(day_offset_hours * HOUR_MS)
        #: the running rule set's params (thresholds and points a ``basis`` names), read
        #: only when an alert is built; the worker sets ``lambda: engine.ruleset.params``
        #: (a hot-reloaded rule set is followed), the default reads ``config/rules``
        self.rule_params: Callable[[], Mapping[str, Any]] = rule_params or _default_rule_params

    @classmethod
    def from_config(cls, scoring: ScoringConfig, path: Path | str | None = None) -> AlertPolicy:
        p = Path(path or DEFAULT_PATH)
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read alert config {p}: {exc}") from exc
        kinds: dict[str, AlertKind] = {}
        steps = doc.get("next_steps") or {}
        for kind in ("hot_lead", "at_risk"):
            raw = dict(doc.get(kind) or {})
            if not raw or raw.get("target") not in scoring.targets:
                continue
            try:
                tuples = {k: tuple(raw.pop(k, ()) or ())
                          for k in ("rule_tags", "require_any", "exclude_if_any",
                                  "jump_layers")}
                raw.setdefault("layer_tag", scoring.targets[raw["target"]].layer_tag)
                if raw.get("basis"):
                    raw["basis"] = Basis(**raw["basis"])
                raw["conditions"] = tuple(Condition.parse(c)
                                          for c in raw.get("conditions") or ())
                raw["explain_only"] = frozenset(raw.get("explain_only") or ())
                kinds[kind] = AlertKind(kind=kind, next_steps=steps.get(kind) or {},
                                        **tuples, **raw)
            except (TypeError, ConfigError) as exc:
                raise ConfigError(f"{p}: {kind}: {exc}") from exc
        return cls(kinds, Words(doc.get("labels") or {}, scoring.features.recency_scale_days),
                   {n: t.rules.half_life_days for n, t in scoring.targets.items()},
                   scoring.features.day_offset_hours)

    # ---- decision ------------------------------------------------------------------------
    def decide(self, st: dict[str, Any], event: Event,
               x: dict[str, float] | Callable[[dict[str, Any], int], dict[str, float]],
               step: Any,
               registry: Any, rule_tags: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Alerts for ``event`` given the new scores in ``step``; updates ``st["al"]``.

        ``x``: the event's feature vector, or a function building it as
        ``x(st, event.ts)`` (:meth:`Scorer.features`; called at most once, only for the
        reasons of a model-sourced alert: a rules-sourced one gives its rule events).
        """
        al = st.get("al")
        if al is None:
            al = st["al"] = {}
        out: list[dict[str, Any]] = []
        done = (st.get("tot") or {}).keys()
        scores, layers, sources = step.scores, step.layers, step.source
        for kind, k in self.kinds.items():
            target, require, exclude, enter, jump, min_jump, has_rules = k.plan
            score = scores.get(target)
            if score is None:
                continue
            # (an empty set is false: no requirement, no exclusion)
            if (require and done.isdisjoint(require)) or (
                    exclude and not done.isdisjoint(exclude)):
                continue
            layer = layers.get(target)
            mem = al.get(kind)
            if mem is None:
                mem = al[kind] = {}
            prev_layer = mem.get("l")
            # a jump is a gated model's (the score the rules see): ``j`` holds its last
            # score; a rules-sourced score (the scorer's own points) neither jumps nor is
            # jumped from, so it cannot alert a lead the intent tag holds low
            prev_model = mem.pop("j", None)
            if sources.get(target) == "rules":
                # a rule score comes rounded to 6 places, and rounding it again gives it back
                mem["s"] = score
                seen = None
            else:
                # the model's score as the rules read it and the alert shows it (0.01): a
                # jump is a rise of that number (QA41 F5; a state of an earlier release
                # holds the last score to 6 places, read the same way)
                mem["s"] = mem["j"] = seen = published(score)
            mem["l"] = layer
            why: list[dict[str, Any]] | None
            if layer == enter and prev_layer != enter:
                why = [{"trigger": "enter_layer"}]
            elif (jump is not None and prev_model is not None and seen is not None
                  and seen >= min_jump and published(seen - prev_model) >= jump
                  and self._may_jump(k, layer, score, rule_tags)):
                why = [{"trigger": "jump", "from": published(prev_model)}]
            else:
                why = None      # (no list for the usual event: no trigger)
            if has_rules:
                rules = self._rule_triggers(k, mem, event, rule_tags)
                if rules:
                    why = why + rules if why else rules
            if not why or not _holds(k, rule_tags) or not self._admit(k, mem, event, why,
                                                                      layer):
                continue
            if callable(x) and step.source.get(target, "rules") != "rules":
                x = x(st, event.ts)     # only a model's reasons read the vector
            out.append(self._alert(k, st, event, x, step, registry, why, rule_tags))
        return out

    def decide_clock(self, st: dict[str, Any], tick: Event,
                     rule_tags: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Alerts a clock tick raises (``tick``: an event standing for it, its id naming the
        tick's time) from the tags the tick changed: a rule-tag trigger for a tag that turned
        true on the clock (``at_risk`` of a learner with no study event for 14 days has no
        event to come with), and for a kind whose layer is a rule tag (``layer_tag``) the
        layer as the tag now holds it (an ``enter_layer`` alert if it entered it). The score
        is the user's last one; cooldown, budget and eligibility as in :meth:`decide`, whose
        memory (``st["al"]``) it shares, so the next event does not alert for the same tag
        again, and a layer the tag left on the clock is left for the next event too.

        >>> from stream_app.events import Event
        >>> from stream_app.scoring.config import load_scoring_config
        >>> p = AlertPolicy.from_config(load_scoring_config())
        >>> st = {"tot": {"lesson_attended": 1}, "al": {"at_risk": {"s": 0.3, "l": "medium"}}}
        >>> tick = Event("clock:1700000000000", "u1", 1_700_000_000_000, "clock_tick", "clock")
        >>> [(a["kind"], a["triggers"], a["reasons"][0]["en"]) for a in
        ...  p.decide_clock(st, tick, {"at_risk": True})]
        [('at_risk', ['rule:at_risk'], 'flagged at risk by the rules')]
        >>> p.decide_clock(st, tick, {"at_risk": True})     # the tag was on already
        []
        >>> st["al"]["at_risk"]["l"]      # at_risk's layer is the at_risk tag: true is high
        'high'
        >>> st["al"]["hot_lead"] = {"s": 0.7, "l": "high"}
        >>> p.decide_clock(st, tick, {"at_risk": True, "intent": "medium"})  # decayed
        []
        >>> st["al"]["hot_lead"]["l"]     # the next event that makes it high alerts again
        'medium'
        """
        al = st.get("al")
        if al is None:
            al = st["al"] = {}
        done = (st.get("tot") or {}).keys()
        out: list[dict[str, Any]] = []
        for kind, k in self.kinds.items():
            target, require, exclude, enter = k.plan[0], k.plan[1], k.plan[2], k.plan[3]
            by_tag = k.layer_tag is not None and rule_tags is not None
            if not (k.rule_tags or by_tag) or (require and done.isdisjoint(require)) or (
                    exclude and not done.isdisjoint(exclude)):
                continue
            mem = al.get(kind)
            if mem is None:
                mem = al[kind] = {}
            why: list[dict[str, Any]] = []
            if by_tag:
                layer = tag_layer(rule_tags.get(k.layer_tag))   # (as the Scorer reads it)
                if layer == enter and mem.get("l") != enter and "s" in mem:
                    why.append({"trigger": "enter_layer"})
                mem["l"] = layer
            why += self._rule_triggers(k, mem, tick, rule_tags)
            if not why or not _holds(k, rule_tags) or not self._admit(k, mem, tick, why,
                                                                      mem.get("l")):
                continue
            last_step = _LastScores({target: mem.get("s") or 0.0}, {target: mem.get("l")},
                                    {target: "rules"})
            out.append(self._alert(k, st, tick, {}, last_step, None, why, rule_tags))
        return out

    def _may_jump(self, k: AlertKind, layer: Any, score: float,
                  rule_tags: Mapping[str, Any] | None) -> bool:
        """Whether a jump of the score to ``score`` may alert a lead at ``layer``: the layer
        is one of ``jump_layers``; with the rule engine's tags, the lead has its layer tag
        (no intent tag: no click yet, whatever the model says) and, below ``enter_layer``,
        its score is under the score that makes the layer high (at or above it, the rules
        hold the lead out of high on purpose, e.g. no lead points yet: "model score 0.80
        (high from 0.6)" next to ``layer: low`` would contradict the tag). QA34 F1.

        >>> from stream_app.scoring.config import load_scoring_config
        >>> p = AlertPolicy.from_config(load_scoring_config())
        >>> k = p.kinds["hot_lead"]
        >>> tags = {"intent": "medium", "lead_points": 3}
        >>> p._may_jump(k, "medium", 0.45, tags), p._may_jump(k, "low", 0.45, {"intent": "low"})
        (True, False)
        >>> p._may_jump(k, "medium", 0.8, {"intent": "medium"})  # held out of high: no points
        False
        >>> p._may_jump(k, "high", 0.8, {"intent": "high"}), p._may_jump(k, "medium", 0.45, None)
        (True, True)
        """
        if k.jump_layers and layer not in k.jump_layers:
            return False
        if rule_tags is None:
            return True
        if k.layer_tag is not None and rule_tags.get(k.layer_tag) is None:
            return False
        b = k.basis
        if layer != k.enter_layer and b is not None and b.score_high:
            high = number(self.rule_params().get(b.score_high))
            if high is not None and published(score) >= high:
                return False
        return True

    def _admit(self, k: AlertKind, mem: dict[str, Any], event: Event,
               why: list[dict[str, Any]], layer: Any) -> bool:
        """Whether an alert of kind ``k`` raised by ``why`` may go out at ``event`` (the
        user's layer now ``layer``): past the user's cooldown and within the tenant's
        hourly budget (then its time is remembered).

        Two times per user: ``t``, the last alert at ``enter_layer`` (or any alert of a kind
        without one, e.g. at_risk), and ``tj``, the last jump alert of a lead below it (a
        medium lead warming up). An entry into ``enter_layer`` waits only for ``t``: a
        jump alert of a medium lead does not take the alert of its entry into high (QA34
        F1); a jump waits for both (at most one alert in a cooldown, and none right after
        the lead's high alert). At most two alerts per cooldown, then: a jump while medium
        and the entry into high.

        >>> from stream_app.scoring.config import load_scoring_config
        >>> p = AlertPolicy.from_config(load_scoring_config())
        >>> k, mem, h = p.kinds["hot_lead"], {}, HOUR_MS
        >>> jump, enter = [{"trigger": "jump", "from": 0.1}], [{"trigger": "enter_layer"}]
        >>> p._admit(k, mem, Event("e1", "u1", 0, "cart_add", "click"), jump, "medium")
        True
        >>> p._admit(k, mem, Event("e2", "u1", h, "cart_add", "click"), jump, "medium")
        False
        >>> p._admit(k, mem, Event("e3", "u1", 2 * h, "cart_add", "click"), enter, "high")
        True
        >>> p._admit(k, mem, Event("e4", "u1", 3 * h, "cart_add", "click"), jump, "high")
        False
        >>> mem
        {'tj': 0, 't': 7200000}
        """
        cool = k.cooldown_hours * HOUR_MS
        now = event.ts
        last = mem.get("t")
        if last is not None and now - last < cool:
            return False
        only_jump = all(w["trigger"] == "jump" for w in why)
        if only_jump:       # a jump waits for the cooldown of any alert, a warm-up's too
            lj = mem.get("tj")
            if lj is not None and now - lj < cool:
                return False
        warm = only_jump and k.enter_layer is not None and layer != k.enter_layer
        if not self.budget.take(event.tenant, k.kind, now, k.hourly_budget_per_tenant):
            return False
        mem["tj" if warm else "t"] = now
        return True

    def _rule_triggers(self, k: AlertKind, mem: dict[str, Any], event: Event,
                       rule_tags: dict[str, Any] | None) -> list[dict[str, Any]]:
        why: list[dict[str, Any]] = []
        if k.consecutive_missed:
            before = mem.get("m", 0)
            if k.consecutive_missed_tag and rule_tags is not None:
                # the engine's streak, in event time: a late missed lesson dated before an
                # attended one does not make a run (counted in arrival order, it did)
                v = rule_tags.get(k.consecutive_missed_tag)
                run = int(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0
                hit = event.type == "lesson_missed" and run >= k.consecutive_missed > before
            else:
                run = before
                if event.type == "lesson_missed":
                    run += 1
                elif event.type == "lesson_attended":
                    run = 0
                hit = event.type == "lesson_missed" and run == k.consecutive_missed
            if hit:
                why.append({"trigger": "rule", "rule": "consecutive_missed", "n": run,
                            "zh": f"连续缺课{run}次", "en": f"missed {run} lessons in a row"})
            mem["m"] = run
        if k.rule_tags and rule_tags is not None:
            on = [t for t in k.rule_tags if rule_tags.get(t) not in (None, False, 0, "")]
            if on:
                on.sort()
                before = mem.get("rt") or ()
                for tag in on:
                    if tag not in before:
                        # plain words from alerts.yaml labels (``rule:<tag>``), else the id
                        w = self.words.labels.get(f"rule:{tag}") or {}
                        why.append({"trigger": "rule", "rule": tag,
                                    "zh": w.get("zh") or f"规则标签{tag}",
                                    "en": w.get("en") or f"rule tag {tag}"})
            mem["rt"] = on
        return why

    def _alert(self, k: AlertKind, st: dict[str, Any], event: Event,
               x: dict[str, float] | Callable[..., Any], step: Any, registry: Any,
               why: list[dict[str, Any]],
               rule_tags: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One alert record (``x``: the feature vector, read only when the score is a
        model's; a rules-sourced alert may get the unbuilt vector's function).

        With the rule engine's tags and a kind's :class:`Basis`, the reasons explain what
        made the layer high (``basis``): the points (their value against the threshold,
        then the actions bringing them, with the rule set's points) or the model's score
        (against its threshold, then its top feature contributions). Without tags (a scorer
        run alone) the layer is the scorer's own: its rule points or the model's features.
        """
        source = step.source.get(k.target, "rules")
        score = step.scores[k.target]
        reasons: list[dict[str, Any]] = [
            {"kind": "rule", "zh": w["zh"], "en": w["en"]} for w in why if "zh" in w
        ]
        layer = step.layers.get(k.target)
        for w in why:
            if w["trigger"] == "jump":      # the score's rise alerted, not the layer
                reasons.insert(0, {"kind": "jump", "from": w["from"], "value": published(score),
                                   "zh": f"评分由{w['from']:.2f}升至{score:.2f}",
                                   "en": f"score up from {w['from']:.2f} to {score:.2f}"})
                if k.enter_layer is not None and layer != k.enter_layer:
                    # a lead warming up, not (yet) at the layer whose entry alerts: said in
                    # so many words (alerts.yaml labels ``layer:<layer>``), QA34 F1
                    lw = self.words.labels.get(f"layer:{layer}") or {}
                    reasons.insert(1, {"kind": "layer", "layer": layer,
                                       "zh": lw.get("zh") or f"意向分层{layer}",
                                       "en": lw.get("en") or f"intent layer {layer}"})
        b = k.basis
        points: float | None = None
        if b is not None and rule_tags is not None:
            params = self.rule_params()
            basis = basis_of(b, params, rule_tags, score, source)
            points = number(rule_tags.get(b.points_tag))
            s_high = number(params.get(b.score_high)) if b.score_high else None
            # the score as the rules read it (2 places: 0.596 is 0.60, high from 0.6), so
            # the reason's numbers and the intent tag agree
            seen = published(score)
            model_line = (self._model_score_reason(seen, s_high)
                          if source != "rules" and s_high is not None else None)
            if basis == "points":
                if points is not None:
                    reasons.append(self._points_reason(b, points,
                                                       number(params.get(b.points_high))))
                if model_line is not None and seen >= (s_high or 0.0):
                    reasons.append(model_line)      # the model says high too
                reasons += self._action_reasons(b, params, st, event.ts, k.top_reasons)
            else:
                if model_line is not None:
                    reasons.append(model_line)
                if registry is not None and not callable(x):
                    reasons += self._model_reasons(k, x, registry)
        elif k.conditions and rule_tags is not None and (held := self._conditions(
                k, st, event.ts, score, source, rule_tags)):
            # the tag's conditions that hold say why, not "flagged at risk by the rules"
            # (nor "missed 3 lessons in a row" twice)
            reasons = [r for r in reasons if r["kind"] != "rule"] + held
            basis = "model" if all(r["condition"] == "score_at_least" for r in held) else "rules"
            if "score_at_least" in {r["condition"] for r in held} and registry is not None \
                    and not callable(x):
                reasons += self._model_reasons(k, x, registry)
        elif source == "rules":
            basis = "points"
            for etype, pts in top_point_events(st.get("rp") or {}, k.target, k.top_reasons,
                                               event.ts, self.half_lives.get(k.target)):
                w = self.words.event(etype)
                shown = round(pts, 1) or pts
                reasons.append({"kind": "points", "feature": etype, "weight": pts,
                                "zh": f"{w['zh']}(+{shown:g}分)",
                                "en": f"{w['en']} (+{shown:g} points)"})
        else:
            basis = "model"
            if not callable(x):
                reasons += self._model_reasons(k, x, registry)
        # the last actions newest first in event time (the state keeps them in the order
        # they were read, which across topics is not time order; ties: the later read
        # first). Actions dated after the alert's ``ts`` (read before the triggering event,
        # e.g. an order read before the clicks) are listed too: they are what the lead did,
        # known when the alert goes out, and the newest of them picks the next step (QA34 F4)
        actions = sorted(reversed(st.get("ra") or []), key=_newest_first)
        recent = [{"ts": ts, "type": t, **self.words.action(t)} for ts, t in actions]
        cat = st.get("cat") or {}
        channel = cat.get("channel") or cat.get("first_channel") or cat.get("utm_source")
        next_step = None
        for _, t in actions:
            if t in k.next_steps:
                next_step = k.next_steps[t]
                break
        next_step = next_step or k.next_steps.get("default")
        return {
            "alert_id": f"{k.kind}:{event.user_id}:{event.event_id}",
            "kind": k.kind,
            "user_id": event.user_id,
            "tenant": event.tenant,
            "ts": event.ts,
            # a model's probability at the published resolution (0.01: the number the
            # rules compare with their thresholds, the API serves and the reasons show;
            # QA41 F5: 0.5984 went out with "model score 0.60 (high from 0.6)"); with the
            # rule engine's tags a rules-sourced score (the scorer's own points table, not
            # lead.yaml's) would be a third number beside ``points``, so it is left out (null)
            "score": None if source == "rules" and rule_tags is not None else published(score),
            "layer": layer,
            "source": source,
            "basis": basis,
            "points": points,
            # "enter_layer", "jump", or "rule:<name>" (rule:consecutive_missed, rule:at_risk):
            # two rule triggers of one alert are told apart
            "triggers": [w["trigger"] if w["trigger"] != "rule" else f"rule:{w['rule']}"
                         for w in why],
            "reasons": reasons,
            "recent_actions": recent,
            "channel": channel,
            "next_step": dict(next_step) if next_step else None,
        }


    def _conditions(self, k: AlertKind, st: dict[str, Any], now: int, score: float,
                    source: str, rule_tags: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The reasons of ``k``'s conditions that hold, in their configured order."""
        params = self.rule_params()
        return [r for c in k.conditions
                if (r := c.reason(params, rule_tags, st, now, score, source,
                                  self.day_offset_ms)) is not None]

    def _model_reasons(self, k: AlertKind, x: dict[str, float],
                       registry: Any) -> list[dict[str, Any]]:
        """The model's top positive feature contributions in words, one per action or prop."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        only = k.explain_only
        for feat, contrib, *above in registry.explain(k.target, x, 4 * k.top_reasons):
            about = _subject(feat)
            if about in seen or (only and about not in only):
                continue            # one reason per action or prop, its strongest feature
            seen.add(about)
            w = self.words.feature(feat, x.get(feat, 0.0))
            d = self.words.direction(feat, above[0] if above else None)
            out.append({"kind": "model", "feature": feat, "weight": round(contrib, 4),
                        "zh": w["zh"] + d["zh"], "en": w["en"] + d["en"]})
            if len(seen) == k.top_reasons:
                break
        return out

    def _points_reason(self, b: Basis, points: float, high: float | None) -> dict[str, Any]:
        """The points against the threshold that makes the layer high.

        >>> from stream_app.scoring.config import load_scoring_config
        >>> p = AlertPolicy.from_config(load_scoring_config())
        >>> r = p._points_reason(p.kinds["hot_lead"].basis, 18.0, 15)
        >>> r["zh"], r["en"]
        ('线索积分18分(≥15分为高意向)', 'lead points 18 (high from 15)')
        """
        w = self.words.event(b.points_tag)
        zh, en = f"{w['zh']}{points:g}分", f"{w['en']} {points:g}"
        if high is not None:
            zh, en = f"{zh}(≥{high:g}分为高意向)", f"{en} (high from {high:g})"
        return {"kind": "points", "feature": b.points_tag, "value": points, "threshold": high,
                "zh": zh, "en": en}

    def _model_score_reason(self, score: float, high: float) -> dict[str, Any]:
        """The model's score (as the rules read it) against the threshold at which it makes
        the layer high; a score under it (a jump alert) says so.

        >>> from stream_app.scoring.config import load_scoring_config
        >>> p = AlertPolicy.from_config(load_scoring_config())
        >>> p._model_score_reason(0.66, 0.6)["en"], p._model_score_reason(0.54, 0.6)["en"]
        ('model score 0.66 (high from 0.6)', 'model score 0.54 (under 0.6, the high threshold)')
        >>> p._model_score_reason(0.54, 0.6)["zh"]
        '模型转化分0.54(未达高意向线0.6)'
        """
        w = self.words.event("model_score")
        if score >= high:
            zh, en = f"(≥{high:g}为高意向)", f" (high from {high:g})"
        else:
            zh, en = f"(未达高意向线{high:g})", f" (under {high:g}, the high threshold)"
        return {"kind": "model_score", "value": score, "threshold": high,
                "zh": f"{w['zh']}{score:.2f}{zh}", "en": f"{w['en']} {score:.2f}{en}"}

    def _action_reasons(self, b: Basis, params: Mapping[str, Any], st: dict[str, Any],
                        now: int, top: int) -> list[dict[str, Any]]:
        """The actions behind the points that the user did in the last ``b.window_days``
        (the scorer's daily buckets), most points first, each with the points the rule set
        gives it (not decayed: the points' total is the first reason).

        >>> from stream_app.scoring.config import load_scoring_config
        >>> p = AlertPolicy.from_config(load_scoring_config())
        >>> b = p.kinds["hot_lead"].basis
        >>> st = {"b": [[19000, {"course_view": 2, "search": 5}], [19001, {"cart_add": 1}]]}
        >>> for r in p._action_reasons(b, {"pts_detail": 1, "pts_paying": 10}, st,
        ...                            19001 * 86_400_000, 3):
        ...     print(r["en"])
        1 cart add in the last 30 days (10 points each)
        2 course detail views in the last 30 days (1 point each)
        """
        day = (now + self.day_offset_ms) // (24 * HOUR_MS)
        counts: dict[str, int] = {}
        for d, bucket in st.get("b") or ():
            if day - d < b.window_days:
                for etype in b.actions:
                    n = bucket.get(etype)
                    if n:
                        counts[etype] = counts.get(etype, 0) + n
        ranked = []
        for etype, n in counts.items():
            each = number(params.get(b.actions[etype]))
            if each is not None and each > 0:
                ranked.append((-n * each, etype, n, each))
        ranked.sort()
        out: list[dict[str, Any]] = []
        d = b.window_days
        for _, etype, n, each in ranked[:top]:
            w = self.words.event(etype)
            out.append({"kind": "points", "feature": etype, "count": n, "points_each": each,
                        "zh": f"近{d}天{w['zh']}{n}次(每次{each:g}分)",
                        "en": f"{self.words.count(n, etype)} in the last {d} days "
                              f"({each:g} point{'' if each == 1 else 's'} each)"})
        return out


def _holds(k: AlertKind, rule_tags: dict[str, Any] | None) -> bool:
    """Whether ``k``'s ``require_tag`` (if any) is true in ``rule_tags`` and its
    ``consent_tag`` (if any) is not false (refused; not told is no refusal). No tags passed
    in (e.g. offline): nothing to check.

    >>> k = AlertKind("at_risk", "at_risk", require_tag="at_risk")
    >>> _holds(k, {"at_risk": True}), _holds(k, {"at_risk": False}), _holds(k, {}), _holds(k, None)
    (True, False, False, True)
    >>> k = AlertKind("hot_lead", "convert", consent_tag="marketing_consent")
    >>> _holds(k, {"marketing_consent": False}), _holds(k, {"marketing_consent": True})
    (False, True)
    >>> _holds(k, {})       # not told: no refusal
    True
    """
    if rule_tags is None:
        return True
    if k.consent_tag is not None and rule_tags.get(k.consent_tag) is False:
        return False
    tag = k.require_tag
    return tag is None or rule_tags.get(tag) not in (None, False, 0, "")


def _newest_first(action: list[Any]) -> float:
    """The sort key of a recent action ``[ts, type]``: newest first."""
    return -action[0]


def _subject(feature: str) -> str:
    """What a feature is about: ``consult_request|30d`` and ``funnel|consult_request`` are both
    about ``consult_request``; ``channel=douyin`` is about ``channel``."""
    if feature.startswith("funnel|"):
        return feature[7:]
    return feature.split("|", 1)[0].split("=", 1)[0].lstrip("#")
