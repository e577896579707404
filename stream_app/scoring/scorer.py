"""The Scorer: one pure step per event, shared by the Faust agent and offline evaluation.

``Scorer.on_event(sc_state, event)`` folds the event into the user's compact state, scores
every target (prequential: predict now, learn when the truth arrives), keeps bounded feature
snapshots for delayed labels and, when a label arrives, returns the (snapshot, label) pairs
to learn from. It never learns itself: the caller hands :attr:`ScoreStep.training` to the
trainer's :meth:`ModelRegistry.learn` (offline: at once; live: through a topic).

Label events (stream ``label``):

* ``outcome`` ``{"target": T, "value": 0|1, "event_ts"?: ms}``: the truth for ``T``, known at
  the event's ``ts``. Training pairs are the user's open checkpoints for ``T`` and the live
  snapshots taken before ``event_ts`` (the outcome's triggering event; default: ``ts``).
* ``checkpoint`` ``{"target": T, "group": G}``: records the current score and feature snapshot
  without learning; resolved (scored against the truth) when ``T``'s outcome arrives.

An event whose type is in a target's ``positive_events`` (``order_paid`` for ``convert``) is
also an outcome 1, learned from the snapshot taken *before* that event is folded in.
Feedback events (stream ``feedback``, ``props.verdict``) map to outcomes via
``feedback_labels``.

Example:
    >>> from stream_app.events import Event
    >>> from stream_app.scoring.config import load_scoring_config
    >>> cfg = load_scoring_config()
    >>> reg = ModelRegistry(cfg)
    >>> sc = Scorer(cfg, reg, alert_policy=None)
    >>> day = 86_400_000
    >>> s = sc.on_event(None, Event("e1", "u1", day, "course_view", "click"))
    >>> s.layers["convert"], s.source["convert"]
    ('low', 'rules')
    >>> s = sc.on_event(s.sc_state, Event("e2", "u1", 2 * day, "checkpoint", "label",
    ...                 props={"target": "convert", "group": "d2"}))
    >>> s = sc.on_event(s.sc_state, Event("e3", "u1", 3 * day, "order_paid", "order"))
    >>> [(t.target, t.y, t.ts // day) for t in s.training]  # checkpoint, day-1 age, last state
    [('convert', 1, 2), ('convert', 1, 2), ('convert', 1, 1)]
    >>> s.checkpoints[0]["group"], s.checkpoints[0]["y"]
    ('d2', 1)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stream_app.errors import EventError
from stream_app.events import Event, outcome_label
from stream_app.scoring.config import ScoringConfig, tag_layer
from stream_app.scoring.features import DAY_MS, _slog, featurize, fold, new_state
from stream_app.scoring.points import RulePoints, add_points, points_score
from stream_app.scoring.registry import ModelRegistry

__all__ = ["ModelRegistry", "ScoreStep", "Scorer", "TrainingExample"]

RECENT_ACTIONS = 5
#: Scorer._by_type of an event type that is not excluded, positive for no target and moves
#: no target's points (most events)
_PLAIN: tuple[bool, None, None] = (False, None, None)


def _oldest(ra: list[list[Any]]) -> int:
    """The index of the oldest recent action in event time (the first read of equals): the
    one that leaves when a sixth arrives, so an old event read late cannot push a newer
    action off the list (QA34 F4; the list stays in read order).

    >>> _oldest([[5, "a"], [3, "b"], [9, "c"], [3, "d"]])
    1
    """
    i, lo = 0, ra[0][0]
    for j in range(1, len(ra)):
        if ra[j][0] < lo:
            i, lo = j, ra[j][0]
    return i


@dataclass(slots=True)
class TrainingExample:
    """One (feature snapshot, label) pair for the trainer. ``ts``: when the snapshot was taken.

    The trainer calls ``registry.learn(target, x, y, gate=gate)``.
    """

    target: str
    x: dict[str, float]
    y: int
    ts: int
    user_id: str = ""
    gate: bool = False   # the label's latest snapshot: counted in the release gate


@dataclass(slots=True)
class ScoreStep:
    """What one event produced."""

    sc_state: dict[str, Any]
    scores: dict[str, float] = field(default_factory=dict)
    layers: dict[str, str] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    training: list[TrainingExample] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)


class Scorer:
    """Features, scores, snapshots and label joining for one user at a time (pure).

    Parameters:
        config: the scoring configuration.
        registry: the models (read-only use here: ``predict``, ``source``, ``explain``).
        alert_policy: decides hot-lead / at-risk alerts; ``"default"`` loads
            ``config/alerts.yaml``; ``None`` disables alerts.
        score_events: score every target on every event (live). Offline evaluation may turn
            this off: checkpoint scores and training pairs are the same either way.
        learn_from: which snapshots become training pairs: ``checkpoints`` and/or ``live``.
        targets: the targets scored, snapshotted and labelled (default: all configured);
            features (including every target's rule points) never depend on this choice.
        lazy_features: build an event's feature vector only when something reads it (a
            target scored by its model, or a model-sourced alert's reasons); while every
            target is on its rule points, an event costs no feature building. Scores, alerts,
            snapshots and training pairs are the same either way (``False``: the reference
            path, for equivalence tests).
    """

    def __init__(self, config: ScoringConfig, registry: ModelRegistry, *,
                 alert_policy: Any = "default", score_events: bool = True,
                 learn_from: tuple[str, ...] = ("checkpoints", "live"),
                 targets: list[str] | None = None, lazy_features: bool = True) -> None:
        self.config = config
        self.registry = registry
        self.fc = config.features
        self.all_targets = config.targets
        self.targets = ({n: config.targets[n] for n in targets} if targets is not None
                        else config.targets)
        self.score_events = score_events
        self.lazy_features = lazy_features
        self._consent = config.consent_tag
        self.learn_from = frozenset(learn_from)
        self.points_features = config.features.points_features
        if alert_policy == "default":
            from stream_app.alerts.policy import AlertPolicy  # noqa: PLC0415 - avoid a cycle

            alert_policy = AlertPolicy.from_config(config)
        self.alert_policy = alert_policy
        self._snap_every = config.snapshots.every_days * DAY_MS
        # event type -> the targets (of all, since features use every target's points) whose
        # rule points it moves, with their rules
        self._points_of: dict[str, list[tuple[str, Any]]] = {}
        for name, t in config.targets.items():
            for etype in t.rules.points:
                self._points_of.setdefault(etype, []).append((name, t.rules))
        self._positive: dict[str, list[str]] = {}
        for name, t in self.targets.items():
            for etype in t.positive_events:
                self._positive.setdefault(etype, []).append(name)
        # every target's rule points (settings read once, not per event): features use all
        self._rule_points = {name: RulePoints(name, t.rules)
                             for name, t in config.targets.items()}
        self._points_feature = [("pts|" + name, rp) for name, rp in self._rule_points.items()]
        # per scored target: its rule points, its layer function, and the result without any
        # points (RulePoints.zero) with whether inactivity points can move it (per_day)
        self._scored = [(name, self._rule_points[name], t.layer, self._rule_points[name].zero,
                         bool(self._rule_points[name].per_day))
                        for name, t in self.targets.items()]
        #: (target, tag) of the scored targets whose layer is a rule tag (``layer_tag``)
        self._layer_tags = [(name, t.layer_tag) for name, t in self.targets.items()
                            if t.layer_tag]
        self._exclude = config.features.exclude_types
        self._learn_live = "live" in self.learn_from
        self._schedule = config.snapshots.schedule_days
        # event type -> (excluded, targets it is positive for, targets whose points it moves):
        # one lookup per event instead of three; a type in none of them gets _PLAIN
        self._by_type: dict[str, tuple[bool, list[str] | None, list | None]] = {
            etype: (etype in self._exclude, self._positive.get(etype),
                    self._points_of.get(etype))
            for etype in (*self._exclude, *self._positive, *self._points_of)}
        # the vector's builder as the alert policy gets it (one bound method, not one per event)
        self._features = self.features
        #: on_event's ``cold`` while it runs
        self._cold: Callable[[dict[str, Any]], None] | None = None

    # ---- public -------------------------------------------------------------------------
    def on_event(self, sc_state: dict[str, Any] | None, event: Event,
                 rule_tags: dict[str, Any] | None = None,
                 cold: Callable[[dict[str, Any]], None] | None = None,
                 retag: Callable[[ScoreStep], dict[str, Any] | None] | None = None,
                 refused: bool | None = None,
                 ) -> ScoreStep:
        """Process one event of the user whose scoring state is ``sc_state`` (None: new user).

        ``sc_state`` is updated in place and returned as ``ScoreStep.sc_state``. ``cold``:
        the state's checkpoints and snapshots are not in ``sc_state`` yet; ``cold(st)`` puts
        them there, and is called before they are read or changed (the worker's table record
        keeps them apart, :mod:`stream_app.state.codec`).

        ``rule_tags``: the user's tags after the event (the rule engine's). A target with a
        ``layer_tag`` (``convert``: ``intent``; ``at_risk``: ``at_risk``, true is high) then
        takes its layer from that tag (:func:`stream_app.scoring.config.tag_layer`).
        ``retag(step)``: called with the new scores before the layers are read from the tags
        and the alerts decided; the rule engine re-evaluates the tags that read the scores
        and it returns the tags after that (None: ``rule_tags`` as they are), so that a model
        score that moves the tag moves the layer and the alert in the same step
        (:func:`stream_app.scoring.with_tags.score_with_tags`).

        Consent (``consent_tag``, PIPL): while the user refuses profiling (the tag is false in
        ``rule_tags``; without them, ``refused``, e.g. offline evaluation's own reading of
        the tag; neither given: the last known answer holds) the user gets no model score
        and contributes nothing to training: no snapshot, no checkpoint, no training
        example. The snapshots and checkpoints pending when the refusal is first seen are
        dropped; examples already sent to the trainer are not recalled. A later consent
        starts from nothing: only snapshots taken after it are learned.
        """
        self._cold = cold
        try:
            return self._on_event(sc_state, event, rule_tags, retag, refused)
        finally:
            self._cold = None

    def _on_event(self, sc_state: dict[str, Any] | None, event: Event,
                  rule_tags: dict[str, Any] | None,
                  retag: Callable[[ScoreStep], dict[str, Any] | None] | None = None,
                  refused: bool | None = None,
                  ) -> ScoreStep:
        st = sc_state if sc_state is not None else new_state()
        step = ScoreStep(st, {}, {}, {}, [], [], [])
        if self._consent is not None:
            if rule_tags is not None:
                refused = rule_tags.get(self._consent) is False
            if refused:
                if "nc" not in st:
                    self._refuse(st)
            elif refused is not None and "nc" in st:
                del st["nc"]
        stream = event.stream
        if stream == "label":
            props = event.props
            target = props.get("target")
            if target in self.targets:
                if event.type == "checkpoint":
                    self._checkpoint(st, event, str(props.get("group", "")))
                elif event.type == "outcome":
                    try:   # (parse_event has read them at the door: this is the same reading)
                        y, trig = outcome_label(props)
                    except EventError:
                        return step   # not a truth (an unvalidated offline file): no pairs
                    self._outcome(st, event, target, y, event.ts if trig is None else trig,
                                  step)
            return step
        if stream == "feedback":
            verdict = str(event.props.get("verdict") or event.type).strip().lower()
            verdict = verdict.replace(" ", "_").replace("-", "_")
            for target, value in self.config.feedback_labels.get(verdict, {}).items():
                if target in self.targets:
                    self._outcome(st, event, target, int(value), event.ts, step)
            return step
        etype = event.type
        excluded, positive, points_of = self._by_type.get(etype, _PLAIN)
        if excluded:
            return step
        ts = event.ts
        t0 = st["t0"]
        if self._learn_live and t0 is not None:
            # _live_snapshot's own first tests, without the call for most events
            i = st.get("sni", 0)
            sched = self._schedule
            if self._snap_every or (i < len(sched) and (ts - t0) / DAY_MS >= sched[i]):
                self._live_snapshot(st, ts)
        if positive:
            for target in positive:
                self._outcome(st, event, target, 1, ts + 1, step)
        fold(st, event, self.fc)     # (update without its exclusion test, made above)
        rp = st.get("rp")
        if rp is None:
            rp = st["rp"] = {}
        if points_of:
            for name, rules in points_of:
                add_points(rp, name, etype, ts, rules)
        ra = st.get("ra")
        if ra is None:
            ra = st["ra"] = []
        ra.append([ts, etype])
        if len(ra) > RECENT_ACTIONS:
            del ra[_oldest(ra)]     # the newest actions in event time stay (QA34 F4)
        if self.score_events:
            x = None if self.lazy_features else self.features(st, ts)
            # a user who refused profiling (consent_tag false) gets no model score
            x = self._score_all(st, x, ts, step, "nc" in st)
            if retag is not None:
                rule_tags = retag(step) or rule_tags
            if rule_tags is not None and self._layer_tags:
                layers = step.layers
                for name, tag in self._layer_tags:
                    v = rule_tags.get(tag)
                    # (config.tag_layer inlined: an enum tag's value is the layer, a bool
                    # tag's true is high; no tag yet, e.g. a learner without clicks and
                    # without a live score, or false: low)
                    layers[name] = (v if v.__class__ is str
                                    else "high" if v is True else "low")
            if self.alert_policy is not None:
                # no closure over st and ts for the lazy vector: the policy calls
                # features(st, event.ts) itself, at most once
                step.alerts = self.alert_policy.decide(
                    st, event, x if x is not None else self._features, step, self.registry,
                    rule_tags)
        return step

    def features(self, st: dict[str, Any], now_ms: int) -> dict[str, float]:
        """The feature vector as of ``now_ms``: stream features plus each target's rule points
        (``pts|<target>``, log-scaled), so that a model starts from what the rules know."""
        x = featurize(st, now_ms, self.fc)
        if self.points_features and st["t0"] is not None:
            rp = st.get("rp") or {}
            study = st.get("study")
            for feature, rule_points in self._points_feature:
                pts = rule_points.points(rp, now_ms, study)
                if pts:
                    x[feature] = _slog(pts)
        return x

    @property
    def layer_tags(self) -> dict[str, str]:
        """target -> the rule tag its layer is read from (``layer_tag`` in the config).

        >>> from stream_app.scoring.config import load_scoring_config
        >>> cfg = load_scoring_config()
        >>> Scorer(cfg, ModelRegistry(cfg), alert_policy=None).layer_tags
        {'convert': 'intent', 'at_risk': 'at_risk'}
        """
        return dict(self._layer_tags)

    def score(self, sc_state: dict[str, Any], now_ms: int,
              rule_tags: dict[str, Any] | None = None) -> ScoreStep:
        """Scores of a user as of ``now_ms`` without any event (e.g. for the API or a sweep);
        with ``rule_tags``, the layers of the targets that have a ``layer_tag`` are read
        from those tags, as :meth:`on_event` does."""
        step = ScoreStep(sc_state=sc_state)
        if "nc" in sc_state:     # refused profiling: the rule points only
            self._score_all(sc_state, None, now_ms, step, no_model=True)
        else:
            self._score_all(sc_state, None, now_ms, step)
        if rule_tags is not None:
            for name, tag in self._layer_tags:
                step.layers[name] = tag_layer(rule_tags.get(tag))
        return step

    # ---- internals ----------------------------------------------------------------------
    def _rules(self, st: dict[str, Any], target: str, now_ms: int) -> float:
        return self._rule_points[target].points(st.get("rp") or {}, now_ms, st.get("study"))

    def _score_all(self, st: dict[str, Any], x: dict[str, float] | None, now_ms: int,
                   step: ScoreStep, no_model: bool = False) -> dict[str, float] | None:
        """Score every target into ``step``; ``x``: the feature vector, or None to build it
        only if a model needs it (``no_model``: the rule points only, e.g. a user who
        refused profiling). Returns the feature vector (None when none was built)."""
        reg = self.registry
        source_of = reg.source
        scores, layers, source = step.scores, step.layers, step.source
        rp = st.get("rp") or {}
        study = st.get("study")
        for name, rule_points, layer, zero, per_day in self._scored:
            src = "rules" if no_model else source_of(name)
            if src == "rules":
                if zero is not None and not rp.get(name) and (study is None or not per_day):
                    # RulePoints.score_layer's first test, without the call (most targets of
                    # most events: no points and no inactivity points)
                    scores[name] = zero[1]
                    layers[name] = zero[2]
                else:
                    _, scores[name], layers[name] = rule_points.score_layer(rp, now_ms, study)
            else:
                if x is None:
                    x = self.features(st, now_ms)
                p = scores[name] = reg.predict(name, x)
                layers[name] = layer(p)
            source[name] = src
        return x

    def _refuse(self, st: dict[str, Any]) -> None:
        """The user now refuses profiling: mark the state (``nc``) and drop the snapshots and
        checkpoints waiting for a label, so that nothing of the user is learned from.

        >>> from stream_app.scoring.config import load_scoring_config
        >>> cfg = load_scoring_config()
        >>> sc = Scorer(cfg, ModelRegistry(cfg), alert_policy=None)
        >>> st = {"t0": 0, "sn": {"convert": [[5, {"a": 1.0}]]}, "cp": [[5, "convert"]]}
        >>> sc._refuse(st); st
        {'t0': 0, 'nc': 1}
        """
        self._load_cold(st)
        st.pop("sn", None)
        st.pop("cp", None)
        st["nc"] = 1

    def _load_cold(self, st: dict[str, Any]) -> None:
        """Put the checkpoints and snapshots into ``st`` if on_event's ``cold`` holds them."""
        if self._cold is not None:
            self._cold(st)

    def _add_snapshot(self, st: dict[str, Any], target: str, ts: int,
                      x: dict[str, float]) -> None:
        self._load_cold(st)
        sn = st.setdefault("sn", {}).setdefault(target, [])
        if sn and sn[-1][0] == ts:
            return
        sn.append([ts, x])
        excess = len(sn) - self.config.snapshots.max_per_target
        if excess > 0:
            del sn[:excess]

    def _live_snapshot(self, st: dict[str, Any], ts: int) -> None:
        """Snapshots of the state *before* the event at ``ts``, taken on a schedule.

        * ``schedule_days``: when the user's age (days since first seen) passes a point of the
          schedule (1, 3, 7, 14, ... days), the state as of that point, so that training
          covers a user's whole history like evaluation checkpoints do;
        * ``every_days`` (0: off): the last scored state, at most once per that many days.

        Snapshots are featurized as of a time no later than the previous event's time, i.e.
        what the user's score was computed from; featurizing at ``ts`` would let the timing of
        the next event (e.g. the order) leak into the training example.

        (:meth:`on_event` makes the first tests below before calling, to spare most events
        the call; keep both in step.)
        """
        if st["t0"] is None or "live" not in self.learn_from:
            return
        sched = self.config.snapshots.schedule_days
        i = st.get("sni", 0)
        if i < len(sched):
            age = (ts - st["t0"]) / DAY_MS
            if age >= sched[i]:
                while i < len(sched) and age >= sched[i]:
                    i += 1
                st["sni"] = i
                if "nc" not in st:     # (refused profiling: the point passes, no snapshot)
                    at = max(st["last"], st["t0"] + int(sched[i - 1] * DAY_MS))
                    x = self.features(st, at)
                    for target in self.targets:
                        self._add_snapshot(st, target, at, x)
        if not self._snap_every or "nc" in st:
            return
        prev = st.get("snt")
        if prev is not None and ts - prev < self._snap_every:
            return
        st["snt"] = ts
        at = st["last"]
        x = self.features(st, at)
        for target in self.targets:
            self._add_snapshot(st, target, at, x)

    def _checkpoint(self, st: dict[str, Any], event: Event, group: str) -> None:
        if "nc" in st:
            return    # refused profiling: no model score, no example (nor its evaluation)
        target = event.props["target"]
        x = self.features(st, event.ts)
        p = self.registry.predict(target, x) if st["t0"] is not None else None
        rules = points_score(self._rules(st, target, event.ts), self.targets[target].rules)
        self._load_cold(st)
        cps = st.setdefault("cp", [])
        cps.append([event.ts, target, group, x, p, round(rules, 6),
                    self.registry.source(target)])
        if len(cps) > self.config.snapshots.max_checkpoints:
            del cps[0]

    def _outcome(self, st: dict[str, Any], event: Event, target: str, y: int, trigger_ts: int,
                 step: ScoreStep) -> None:
        """The truth ``y`` of ``target``, known at ``event.ts``, of an outcome that happened
        at ``trigger_ts`` (a label's ``event_ts``; an order's ts + 1): training pairs from
        the open checkpoints and the snapshots taken before ``trigger_ts``.

        The same truth again (the same ``y`` with a triggering time within a day of the last
        one's, in either order: a CRM outcome and its ``order_paid``, which travel on
        different topics) makes no new pairs (QA33 F4: a label read before its order was
        learned twice); only the snapshots and checkpoints taken after the first copy was
        read and before both copies' triggers (the order's own scheduled snapshot) are
        resolved, without a gate pair, as reading the order first would have.

        Checkpoints taken at or after ``trigger_ts`` (between the outcome and its delayed
        label, so holding the outcome event) are resolved without being learned or
        evaluated (QA33 F2), as the live snapshots after it are not learned.
        """
        first = len(step.training)
        seen = st.setdefault("yo", {})
        prev = seen.get(target)
        if prev is not None and prev[1] == y:
            # [label ts, y, trigger ts]; a state of an earlier release holds [ts, y]
            prev_trigger = prev[2] if len(prev) > 2 else prev[0]
            if -DAY_MS < trigger_ts - prev_trigger < DAY_MS:
                if "nc" not in st:
                    self._resolve(st, event, target, y, min(trigger_ts, prev_trigger + 1),
                                  step, False)
                return
        seen[target] = [event.ts, y, trigger_ts]
        if "nc" in st:
            return    # refused profiling: what was pending was dropped at the refusal
        self._resolve(st, event, target, y, trigger_ts, step, True)
        mine = step.training[first:]
        if mine:
            # the latest snapshot goes first, so that the gate scores it before the model
            # learns from this label's other (near-identical) snapshots
            latest = max(range(len(mine)), key=lambda i: mine[i].ts)
            mine[latest].gate = True
            mine.insert(0, mine.pop(latest))
            step.training[first:] = mine

    def _resolve(self, st: dict[str, Any], event: Event, target: str, y: int, trigger_ts: int,
                 step: ScoreStep, last_state: bool) -> None:
        """Training pairs (and resolved checkpoints) of the truth ``y`` from what was taken
        before ``trigger_ts``; ``last_state``: also the last scored state before it."""
        uid = event.user_id
        self._load_cold(st)
        cps = st.get("cp")
        if cps:
            keep = []
            for cp in cps:
                ts, t, group, x, p, rules, src = cp
                if t != target or ts > event.ts:
                    keep.append(cp)
                    continue
                if ts >= trigger_ts:
                    continue   # after the outcome happened: neither learned nor evaluated
                step.checkpoints.append({
                    "user_id": uid, "target": t, "group": group, "ts": ts, "score": p,
                    "rules_score": rules, "source": src, "y": y, "label_ts": event.ts,
                    "x": x,
                })
                if "checkpoints" in self.learn_from and p is not None:
                    step.training.append(TrainingExample(t, x, y, ts, uid))
            st["cp"] = keep
        live = "live" in self.learn_from or target in self._positive_targets()
        last = st["last"]
        if last_state and live and last is not None and last < trigger_ts:
            # the last scored state before the triggering event, for every outcome alike
            # (only positives would get it otherwise: a sampling bias the model would learn)
            self._add_snapshot(st, target, last, self.features(st, last))
        sn = (st.get("sn") or {}).get(target)
        if sn:
            if live:
                for ts, x in sn:
                    if ts < trigger_ts:
                        step.training.append(TrainingExample(target, x, y, ts, uid))
            st["sn"][target] = [s for s in sn if s[0] >= trigger_ts]

    def _positive_targets(self) -> frozenset[str]:
        return frozenset(t for ts in self._positive.values() for t in ts)
