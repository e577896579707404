"""The Scorer's per-event path as it was at 42c7498, before session 10's speed-ups, kept
verbatim (only these functions and methods; the rest is inherited) as the reference the
optimised :meth:`Scorer.on_event`, :meth:`AlertPolicy.decide`, :func:`add_points`,
:meth:`RulePoints.score_layer`, :func:`features.update` and the agent's rounding must equal.

:class:`ScorerReference` runs the old ``on_event`` / ``_score_all`` (which call the old
``update`` and ``add_points`` below, and the old ``score_layer`` through
:class:`RulePointsReference`); pair it with :class:`AlertPolicyReference` (the old
``decide``: its lazy feature vector is a function of no argument).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream_app.alerts.policy import HOUR_MS, AlertPolicy
from stream_app.events import Event
from stream_app.scoring.config import FeatureConfig, RulesConfig
from stream_app.scoring.features import DAY_MS, _add_numeric, _cat_value, new_state
from stream_app.scoring.points import RulePoints, _decay, _exp, round_fixed
from stream_app.scoring.scorer import RECENT_ACTIONS, Scorer, ScoreStep

# ruff: noqa: E501, SIM102, PLR0912


def round_scores_reference(scores: dict[str, float]) -> dict[str, float]:
    """The agent's ``round_scores`` at 42c7498."""
    return {t: round_fixed(v, 1e2, 2) for t, v in scores.items()}


def update(st: dict[str, Any], ev: Event, fc: FeatureConfig) -> None:
    """Fold one (non-label) event into the state ``st`` in place."""
    etype = ev.type
    ts = ev.ts
    if etype in fc.exclude_types:
        return
    day = int((ts + fc.day_offset_hours * 3_600_000) // DAY_MS)    # day_index, inlined
    t0 = st["t0"]
    if t0 is None or ts < t0:
        st["t0"] = ts
    last = st["last"]
    if last is None or ts > last:
        st["last"] = ts
    # daily bucket (buckets are kept sorted by day, the newest last)
    buckets: list = st["b"]
    if buckets and buckets[-1][0] == day:
        bucket = buckets[-1][1]
    else:
        bucket = None
        for b in buckets:
            if b[0] == day:
                bucket = b[1]
                break
        if bucket is None:
            bucket = {}
            buckets.append([day, bucket])
            if len(buckets) > 1 and buckets[-2][0] > day:
                buckets.sort(key=lambda b: b[0])
            horizon = max(day, buckets[-1][0]) - max(fc.windows_days + fc.numeric_windows_days)
            while buckets and buckets[0][0] <= horizon:
                buckets.pop(0)
            if st["ld"] is None or day != st["ld"]:
                st["ad"] += 1
                if st["ld"] is None or day > st["ld"]:
                    st["ld"] = day
    bucket[etype] = bucket.get(etype, 0) + 1
    tot = st["tot"]
    tot[etype] = tot.get(etype, 0) + 1
    lst = st["lst"]
    if ts >= lst.get(etype, 0):
        lst[etype] = ts
    if etype in fc.milestones or etype == fc.registration_type:
        fs = st["fs"]
        if etype not in fs or ts < fs[etype]:
            fs[etype] = ts
    if ev.stream == "study":
        st["study"] = max(ts, st.get("study") or 0)
    props = ev.props
    if not props:
        return
    excl = fc.exclude_props
    is_cat_stream = ev.stream in fc.categorical_streams
    channel_props = fc.channel_props
    hashed, max_chars = fc.hashed_props, fc.max_value_chars
    cat = st["cat"]
    for k, v in props.items():
        if v is None or k in excl:
            continue
        kind = v.__class__
        # exact JSON types first (what parsed events carry), one class test each; any other
        # value (a subclass, a list, ...) takes the isinstance chain below
        if kind is str:
            if is_cat_stream or k in channel_props:
                # a short value of a plain prop is its own category (_cat_value without the call)
                cat[k] = v if len(v) <= max_chars and k not in hashed else _cat_value(k, v, fc)
        elif kind is int or kind is float:
            _add_numeric(bucket, tot, k, v)
        elif isinstance(v, bool):
            if is_cat_stream:
                cat[k] = "1" if v else "0"
        elif isinstance(v, int | float):
            _add_numeric(bucket, tot, k, v)
        elif isinstance(v, str) and (is_cat_stream or k in channel_props):
            cat[k] = _cat_value(k, v, fc)


def add_points(rp: dict[str, Any], target: str, etype: str, ts: int, rc: RulesConfig) -> None:
    """Add the points of one event of type ``etype`` at ``ts`` to ``rp[target]`` in place."""
    pts = rc.points.get(etype)
    if pts is None:
        return
    cur = rp.get(target)
    if cur is None:
        rp[target] = [pts, ts, {etype: pts}, 1.0]
        return
    if ts >= cur[1]:
        value = _decay(cur[0], cur[1], ts, rc) + pts
    else:   # an older event (another topic's record consumed later): decay it to the newest
        value = cur[0] + _decay(pts, ts, cur[1], rc)
    # the by-type reason points: decayed since the hot-lead/intent fix (not at 42c7498,
    # whose lifetime totals alert reasons cited), kept times a scale (points.add_points)
    g = cur[3] if len(cur) > 3 else 1.0
    if ts > cur[1]:
        g /= 0.5 ** ((ts - cur[1]) / (rc.half_life_days * DAY_MS))
    add = pts * g if ts >= cur[1] else _decay(pts, ts, cur[1], rc) * g
    by = cur[2]
    by[etype] = round_fixed(by.get(etype, 0) + add, 1e3, 3)
    if g > 1e6:
        by = {t: round_fixed(v / g, 1e3, 3) for t, v in by.items()}
        g = 1.0
    rp[target] = [value, max(ts, cur[1]), by, g]


class RulePointsReference(RulePoints):
    """:class:`RulePoints` with the old ``score_layer``."""

    __slots__ = ()

    def score_layer(self, rp: dict[str, Any], now_ms: int,
                    last_study_ts: int | None) -> tuple[float, float, str]:
        """``(points, score, layer)`` of the target at ``now_ms``."""
        if self.zero is not None and not rp.get(self.target) and (
                last_study_ts is None or not self.per_day):
            return self.zero     # no points and no inactivity points (most users, most events)
        pts = self.points(rp, now_ms, last_study_ts)
        if not pts and self.zero is not None:
            return pts, self.zero[1], self.zero[2]    # (a zero's score is 0.0, whatever its sign)
        score = round_fixed(1.0 - _exp(-max(pts, 0.0) / self.scale), 1e6, 6)
        if pts >= self.high:
            return pts, score, "high"
        return pts, score, "medium" if pts >= self.medium else "low"


class ScorerReference(Scorer):
    """:class:`Scorer` with the old per-event path (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rule_points = {name: RulePointsReference(name, t.rules)
                             for name, t in self.config.targets.items()}
        self._points_feature = [("pts|" + name, rp) for name, rp in self._rule_points.items()]
        self._scored = [(name, self._rule_points[name], t.layer)
                        for name, t in self.targets.items()]

    def on_event(self, sc_state: dict[str, Any] | None, event: Event,
                 rule_tags: dict[str, Any] | None = None) -> ScoreStep:
        """Process one event of the user whose scoring state is ``sc_state`` (None: new user).

        ``sc_state`` is updated in place and returned as ``ScoreStep.sc_state``.
        """
        st = sc_state if sc_state is not None else new_state()
        step = ScoreStep(st, {}, {}, {}, [], [], [])
        stream = event.stream
        if stream == "label":
            props = event.props
            target = props.get("target")
            if target in self.targets:
                if event.type == "checkpoint":
                    self._checkpoint(st, event, str(props.get("group", "")))
                elif event.type == "outcome" and props.get("value") is not None:
                    trig = props.get("event_ts")
                    self._outcome(st, event, target, int(bool(props["value"])),
                                  int(trig) if isinstance(trig, int | float) else event.ts, step)
            return step
        if stream == "feedback":
            verdict = str(event.props.get("verdict") or event.type).strip().lower()
            verdict = verdict.replace(" ", "_").replace("-", "_")
            for target, value in self.config.feedback_labels.get(verdict, {}).items():
                if target in self.targets:
                    self._outcome(st, event, target, int(value), event.ts, step)
            return step
        etype = event.type
        if etype in self.fc.exclude_types:
            return step
        ts = event.ts
        t0 = st["t0"]
        if self._learn_live and t0 is not None:
            # _live_snapshot's own first tests, without the call for most events
            i = st.get("sni", 0)
            sched = self._schedule
            if self._snap_every or (i < len(sched) and (ts - t0) / DAY_MS >= sched[i]):
                self._live_snapshot(st, ts)
        positive = self._positive.get(etype)
        if positive:
            for target in positive:
                self._outcome(st, event, target, 1, ts + 1, step)
        update(st, event, self.fc)
        rp = st.get("rp")
        if rp is None:
            rp = st["rp"] = {}
        points_of = self._points_of.get(etype)
        if points_of:
            for name, rules in points_of:
                add_points(rp, name, etype, ts, rules)
        ra = st.get("ra")
        if ra is None:
            ra = st["ra"] = []
        ra.append([ts, etype])
        if len(ra) > RECENT_ACTIONS:   # (session 29: the oldest in event time goes, QA34 F4)
            del ra[min(range(len(ra)), key=lambda i: ra[i][0])]
        if self.score_events:
            x = None if self.lazy_features else self.features(st, ts)
            x = self._score_all(st, x, ts, step)
            if self.alert_policy is not None:
                step.alerts = self.alert_policy.decide(
                    st, event, x if x is not None else (lambda: self.features(st, ts)), step,
                    self.registry, rule_tags)
        return step

    def _score_all(self, st: dict[str, Any], x: dict[str, float] | None, now_ms: int,
                   step: ScoreStep) -> dict[str, float] | None:
        """Score every target into ``step``; ``x``: the feature vector, or None to build it
        only if a model needs it. Returns the feature vector (None when none was built)."""
        reg = self.registry
        scores, layers, source = step.scores, step.layers, step.source
        rp = st.get("rp") or {}
        study = st.get("study")
        for name, rule_points, layer in self._scored:
            src = reg.source(name)
            if src == "rules":
                _, scores[name], layers[name] = rule_points.score_layer(rp, now_ms, study)
            else:
                if x is None:
                    x = self.features(st, now_ms)
                p = scores[name] = reg.predict(name, x)
                layers[name] = layer(p)
            source[name] = src
        return x


class AlertPolicyReference(AlertPolicy):
    """:class:`AlertPolicy` with the old ``decide``."""

    def decide(self, st: dict[str, Any], event: Event,
               x: dict[str, float] | Callable[[], dict[str, float]], step: Any,
               registry: Any, rule_tags: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Alerts for ``event`` given the new scores in ``step``; updates ``st["al"]``.

        ``x``: the event's feature vector, or a function building it (called at most once,
        only for the reasons of a model-sourced alert).
        """
        al = st.get("al")
        if al is None:
            al = st["al"] = {}
        out: list[dict[str, Any]] = []
        done = (st.get("tot") or {}).keys()
        scores, layers, sources = step.scores, step.layers, step.source
        for kind, k in self.kinds.items():
            target = k.target
            score = scores.get(target)
            if score is None:
                continue
            if (k.require_any and done.isdisjoint(k.require_set)) or (
                    k.exclude_if_any and not done.isdisjoint(k.exclude_set)):
                continue
            layer = layers.get(target)
            mem = al.get(kind)
            if mem is None:
                mem = al[kind] = {}
            prev_layer = mem.get("l")
            prev_model = mem.pop("j", None)     # the last score, if a gated model's
            model = sources.get(target) != "rules"
            # a rule score comes rounded to 6 places, and rounding it again gives it back;
            # a model's is kept (and jumps) as the rules read it, 2 places (QA41 F5)
            mem["s"] = round_fixed(score, 1e2, 2) if model else score
            if model:
                mem["j"] = mem["s"]
            mem["l"] = layer
            enter = k.enter_layer
            why: list[dict[str, Any]]
            if layer == enter and prev_layer != enter:
                why = [{"trigger": "enter_layer"}]
            elif (k.jump is not None and model and prev_model is not None
                  and mem["s"] >= k.min_score_for_jump
                  and round_fixed(mem["s"] - prev_model, 1e2, 2) >= k.jump
                  and self._may_jump(k, layer, score, rule_tags)):     # (QA34 F1)
                why = [{"trigger": "jump", "from": round_fixed(prev_model, 1e2, 2)}]
            else:
                why = []
            if k.has_rules:
                why += self._rule_triggers(k, mem, event, rule_tags)
            if not why:
                continue
            if k.require_tag and rule_tags is not None and rule_tags.get(
                    k.require_tag) in (None, False, 0, ""):
                continue        # (an at-risk alert only with the at_risk tag true)
            last = mem.get("t")
            if last is not None and event.ts - last < k.cooldown_hours * HOUR_MS:
                continue
            # (QA34 F1) a jump also waits for the last jump alert of the lead below
            # enter_layer (``tj``), which alone does not hold back an entry
            only_jump = all(w["trigger"] == "jump" for w in why)
            last_jump = mem.get("tj")
            if only_jump and last_jump is not None and \
                    event.ts - last_jump < k.cooldown_hours * HOUR_MS:
                continue
            if not self.budget.take(event.tenant, kind, event.ts, k.hourly_budget_per_tenant):
                continue
            warm = only_jump and k.enter_layer is not None and layer != k.enter_layer
            mem["tj" if warm else "t"] = event.ts
            if callable(x):
                x = x()
            out.append(self._alert(k, st, event, x, step, registry, why, rule_tags))
        return out
