"""Offline evaluation: replay an event file through the same Scorer as the agents.

The file is JSON lines (optionally gzip), one event per line with a ``"stream"`` field. Events
are processed in file order, one user state per ``user_id``; the training pairs each step
returns are learned at once (the trainer and the worker are one process here). Checkpoint
label events record a score that is resolved when the user's outcome arrives; metrics are
reported over the checkpoints taken at least a label delay before the file's end (whose
outcome, quick or slow, could arrive in the file) and per ``group``, with the checkpoints
left out counted (``censored``: too late; ``unresolved``: no outcome came). Labels on their
own (no checkpoints) are evaluated prequentially: each label's latest snapshot (the score
the user had right before the outcome) is scored by the current model before the model
learns from that label.

Example:
    >>> import gzip, json, tempfile, os
    >>> d = 86_400_000
    >>> rows = []
    >>> for i in range(60):
    ...     u, buyer = f"u{i}", i % 2 == 0
    ...     rows.append({"event_id": f"a{i}", "user_id": u, "ts": d * (10 + i), "stream": "click",
    ...                  "type": "trial_booked" if buyer else "page_view", "props": {}})
    ...     rows.append({"event_id": f"c{i}", "user_id": u, "ts": d * (10 + i) + 1,
    ...                  "stream": "label", "type": "checkpoint",
    ...                  "props": {"target": "convert", "group": "g"}})
    ...     rows.append({"event_id": f"o{i}", "user_id": u, "ts": d * (11 + i),
    ...                  "stream": "label", "type": "outcome",
    ...                  "props": {"target": "convert", "value": int(buyer)}})
    >>> path = os.path.join(tempfile.mkdtemp(), "ev.jsonl.gz")
    >>> with gzip.open(path, "wt") as f:
    ...     f.write("\\n".join(json.dumps(r) for r in rows)) > 0
    True
    >>> res = evaluate_file(path, "convert")
    >>> res["events"], res["checkpoints"]["all"]["n"]
    (180, 60)
    >>> sorted(res["checkpoints"]["groups"]), res["gate"]["learned"]
    (['g'], 120)
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from stream_app.errors import EventError
from stream_app.events import Event, parse_event, parse_ts
from stream_app.scoring.config import ScoringConfig, load_scoring_config
from stream_app.scoring.metrics import roc_auc, summarize
from stream_app.scoring.registry import ModelRegistry
from stream_app.scoring.scorer import Scorer

__all__ = ["ConsentReader", "SkippedLines", "coverage", "evaluate_file", "horizons",
           "label_delays", "open_checkpoints", "read_events", "replay"]


def _open(path: Path | str) -> Any:
    p = str(path)
    return gzip.open(p, "rb") if p.endswith(".gz") else open(p, "rb")  # noqa: SIM115


def _fast_event(doc: dict[str, Any]) -> Event:
    ts = doc["ts"]
    if not isinstance(ts, int) or isinstance(ts, bool):
        ts = parse_ts(ts)
    return Event(doc["event_id"], doc["user_id"], ts, doc["type"], doc.get("stream") or "",
                 doc.get("tenant") or "default", doc.get("props") or {})


def read_events(path: Path | str, *, validate: bool = False,
                on_bad: Callable[[EventError], None] | None = None) -> Iterator[Event]:
    """Events of a JSON-lines file; ``validate`` runs the full input contract on each. A
    line that cannot be read (or, with ``validate``, that the workers would dead-letter) is
    an :class:`EventError` naming the file and line: raised, or given to ``on_bad`` and
    skipped (as a worker goes on after a dead letter).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "ev.jsonl")
        >>> _ = open(path, "w").write('{"stream": "click", "event_id": "e1", "user_id": "u1", '
        ...     '"ts": 1714528800000, "type": "page_view"}\\nnot json\\n')
        >>> bad = []
        >>> [e.event_id for e in read_events(path, on_bad=bad.append)], bad[0].reason
        (['e1'], 'bad_line')
    """
    with _open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield _read_line(line, path, n, validate)
            except EventError as exc:
                if on_bad is None:
                    raise
                on_bad(exc)


def _read_line(line: bytes, path: Path | str, n: int, validate: bool) -> Event:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise EventError("bad_line", f"{path}:{n}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise EventError("bad_line", f"{path}:{n}: not a JSON object")
    try:
        stream = doc.get("stream") or ""
        return parse_event(doc, stream) if validate else _fast_event(doc)
    except KeyError as exc:
        raise EventError("bad_line", f"{path}:{n}: no {exc} field") from None
    except (TypeError, AttributeError) as exc:
        raise EventError("bad_line", f"{path}:{n}: {exc}") from None
    except EventError as exc:   # the contract's own reasons, with the place
        raise EventError(exc.reason, f"{path}:{n}: {exc.detail}") from None


class SkippedLines:
    """What :func:`read_events` skipped: lines per reason and the first few errors.

    Example:
        >>> s = SkippedLines()
        >>> s(EventError("bad_ts", "f:3: ts 'x' is not a time"))
        >>> s.to_dict()
        {'lines': 1, 'reasons': {'bad_ts': 1}, 'first': ["bad_ts: f:3: ts 'x' is not a time"]}
    """

    FIRST = 5

    def __init__(self) -> None:
        self.reasons: dict[str, int] = {}
        self.first: list[str] = []

    def __call__(self, exc: EventError) -> None:
        self.reasons[exc.reason] = self.reasons.get(exc.reason, 0) + 1
        if len(self.first) < self.FIRST:
            self.first.append(str(exc))

    def to_dict(self) -> dict[str, Any]:
        return {"lines": sum(self.reasons.values()), "reasons": dict(self.reasons),
                "first": list(self.first)}


class ConsentReader:
    """The profiling-consent answer of each user (the config's ``consent_tag``, false =
    refused) as the running rule set gives it, for a replay without the rule engine: the
    rules run on the profile events only (the consent tags read ``profile.*``,
    ``config/rules/demographic.yaml``), so it costs a few ms per thousand users.

    Example:
        >>> from stream_app.scoring.config import load_scoring_config
        >>> cr = ConsentReader.for_config(load_scoring_config())
        >>> cr.refused(Event("p", "u1", 0, "registered", "profile",
        ...                  props={"consent_profiling": "否"}))
        True
        >>> cr.refused(Event("c", "u1", 1, "course_view", "click")), cr.refused(
        ...     Event("c", "u2", 1, "course_view", "click"))
        (True, False)
    """

    def __init__(self, tag: str, rules: Any = None, streams: tuple[str, ...] = ("profile",),
                 *, day_offset_ms: int = 8 * 3_600_000) -> None:
        from stream_app.rules.engine import DEFAULT_RULES, TagEngine  # noqa: PLC0415
        from stream_app.rules.loader import load_ruleset  # noqa: PLC0415

        self.tag = tag
        self.streams = frozenset(streams)
        self.engine = TagEngine(load_ruleset(rules or DEFAULT_RULES), day_offset_ms=day_offset_ms)
        self._states: dict[str, dict[str, Any]] = {}
        self._refused: set[str] = set()

    @classmethod
    def for_config(cls, config: ScoringConfig) -> ConsentReader | None:
        """A reader of ``config.consent_tag`` (None when the config names none), whose rules
        count the config's business day (the setting ``day_offset_minutes``, as the workers).

        >>> from stream_app.scoring.config import load_scoring_config
        >>> ConsentReader.for_config(load_scoring_config(day_offset_minutes=0)).engine.day_offset_ms
        0
        """
        if not config.consent_tag:
            return None
        return cls(config.consent_tag, day_offset_ms=round(config.features.day_offset_ms))

    def refused(self, ev: Event) -> bool:
        """Whether the user refuses profiling after ``ev`` (not told is no refusal)."""
        uid = ev.user_id
        if ev.stream in self.streams:
            r = self.engine.on_event(self._states.get(uid), ev)
            if r.state is not None:
                self._states[uid] = r.state
                if (r.state.get("tags") or {}).get(self.tag) is False:
                    self._refused.add(uid)
                else:
                    self._refused.discard(uid)
        return uid in self._refused

    def forget(self, user_id: str) -> None:
        """Drop a deleted user's answer."""
        self._states.pop(user_id, None)
        self._refused.discard(user_id)


def replay(events: Any, scorer: Scorer, *, learn: bool = True,
           on_step: Any = None, consent: ConsentReader | None | str = "config",
           ) -> dict[str, Any]:
    """Run ``events`` through ``scorer``; learn the training pairs; collect what evaluation needs.

    ``consent``: who refuses profiling (``"config"``: a :class:`ConsentReader` of the
    scorer's ``consent_tag``; None: nobody): such a user gets no model score and gives no
    checkpoint and no training pair, as live.

    Returns ``{"events", "checkpoints": [...], "pairs": [(target, p, y, ts)], "seconds",
    "gate_history": {target: [(labels, open)]}}``; ``on_step(event, step)`` is called per event.
    """
    reg = scorer.registry
    if consent == "config":
        consent = ConsentReader.for_config(scorer.config)
    reader = consent if isinstance(consent, ConsentReader) else None
    states: dict[str, dict[str, Any]] = {}
    checkpoints: list[dict[str, Any]] = []
    pairs: list[tuple[str, float, int, int]] = []
    gate_hist: dict[str, list[tuple[int, bool]]] = {t: [] for t in scorer.targets}
    gate_open = {t: False for t in scorer.targets}
    n = learned = 0
    first_ts = last_ts = None
    t0 = time.perf_counter()
    for ev in events:
        n += 1
        if first_ts is None:
            first_ts = ev.ts
        last_ts = ev.ts
        if ev.type == "deletion_requested":
            states.pop(ev.user_id, None)
            if reader is not None:
                reader.forget(ev.user_id)
            continue
        step = scorer.on_event(states.get(ev.user_id), ev,
                               refused=None if reader is None else reader.refused(ev))
        states[ev.user_id] = step.sc_state
        if step.checkpoints:
            checkpoints.extend(step.checkpoints)
        for ex in step.training:
            # one prequential pair per label: its latest snapshot, scored before any learning
            if not learn:
                if ex.gate:
                    pairs.append((ex.target, reg.predict(ex.target, ex.x), ex.y, ex.ts))
                continue
            p = reg.learn(ex.target, ex.x, ex.y, ex.gate)
            if p is None:
                continue     # refused: a non-finite feature or score (QA33 F1)
            learned += 1
            if ex.gate:
                pairs.append((ex.target, p, ex.y, ex.ts))
            if gate_open[ex.target] != reg.is_open(ex.target):
                g = reg.gate(ex.target)
                gate_open[ex.target] = g.open
                gate_hist[ex.target].append((g.learned, g.open))
        if on_step is not None:
            on_step(ev, step)
    return {"events": n, "checkpoints": checkpoints, "pairs": pairs, "learned": learned,
            "span": (first_ts, last_ts),
            "seconds": time.perf_counter() - t0, "gate_history": gate_hist, "states": states}


def group_order(group: str) -> tuple[Any, ...]:
    """Sort key of a checkpoint group: its text with every run of digits read as a number,
    so ``AAA-2013J@100`` (100 %) comes after ``@20``, not between ``@10`` and ``@20``.

    >>> sorted(["AAA-2013J@100", "AAA-2013J@20", "AAA-2013J@10", "BBB-2013B@10", "g"],
    ...        key=group_order)
    ['AAA-2013J@10', 'AAA-2013J@20', 'AAA-2013J@100', 'BBB-2013B@10', 'g']
    """
    parts = re.split(r"(\d+)", group)
    # text at even places, numbers at odd ones: any two keys compare like with like
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def _curve(pairs: list[tuple[str, float, int, int]], every: int) -> list[dict[str, Any]]:
    out = []
    for i in range(0, len(pairs), every):
        chunk = pairs[i:i + every]
        if len(chunk) < every // 2:
            break
        auc = roc_auc([c[1] for c in chunk], [c[2] for c in chunk])
        out.append({"labels": i + len(chunk), "roc_auc": None if auc is None else round(auc, 4)})
    return out


def open_checkpoints(states: dict[str, dict[str, Any]], target: str) -> list[dict[str, Any]]:
    """The scored checkpoints of ``target`` still waiting for their outcome when the replay
    ended (``replay``'s ``states``): no label resolved them in the file.

    >>> open_checkpoints({"u1": {"cp": [[5, "convert", "d1", {}, 0.2, 0.1, "rules"],
    ...                                 [6, "at_risk", "25", {}, 0.3, 0.1, "rules"],
    ...                                 [7, "convert", "d3", {}, None, 0.1, "rules"]]},
    ...                   "u2": {}}, "convert")
    [{'user_id': 'u1', 'group': 'd1', 'ts': 5}]
    """
    out = []
    for uid, st in states.items():
        for cp in (st or {}).get("cp") or ():
            ts, t, group, p = cp[0], cp[1], cp[2], cp[4]
            if t == target and p is not None:
                out.append({"user_id": uid, "group": group, "ts": ts})
    return out


def label_delays(resolved: list[dict[str, Any]], groups: Any,
                 delay_ms: int | None = None) -> dict[str, int | None]:
    """The label delay of each checkpoint group: the longest time from one of its checkpoints
    to the label that resolved it (the label's arrival, ``label_ts``), over the resolved
    checkpoints of the file; ``delay_ms``, when given, for every group. None: no checkpoint
    of the group was resolved, so no delay is known.

    Per group, because the delay depends on when the checkpoint is taken (the simulator's
    ``convert@d1`` waits 13 days for a negative outcome, ``@d7`` 7; an OULAD checkpoint at
    10% of a course waits for the course's end, one at 100% a day).

    >>> label_delays([{"group": "d1", "ts": 0, "label_ts": 5},
    ...               {"group": "d1", "ts": 2, "label_ts": 3}], ["d1", "d3"])
    {'d1': 5, 'd3': None}
    >>> label_delays([], ["d1"], delay_ms=7)
    {'d1': 7}
    """
    if delay_ms is not None:
        return {g: delay_ms for g in groups}
    out: dict[str, int | None] = {g: None for g in groups}
    for c in resolved:
        d, g = c["label_ts"] - c["ts"], c["group"]
        prev = out.get(g)
        out[g] = d if prev is None else max(prev, d)
    return out


def horizons(delays: dict[str, int | None], end_ts: int) -> dict[str, int | None]:
    """Per group, the last checkpoint time whose outcome window closed before the file's end
    (``end_ts`` minus the group's label delay; None: no delay known, nothing closed).

    >>> horizons({"d1": 5, "d3": None}, 100)
    {'d1': 95, 'd3': None}
    """
    return {g: None if d is None else end_ts - d for g, d in delays.items()}


def closed(c: dict[str, Any], horizon: dict[str, int | None]) -> bool:
    """Whether checkpoint ``c`` was taken early enough for its outcome to be in the file
    whatever it is (at or before its group's horizon)."""
    h = horizon.get(c["group"])
    return h is not None and c["ts"] <= h


def coverage(resolved: list[dict[str, Any]], unresolved: list[dict[str, Any]],
             horizon: dict[str, int | None], since: float | None = None,
             ) -> dict[str, dict[str, int]]:
    """Per group (checkpoints taken at or after ``since``): ``n``, the checkpoints evaluated
    (resolved, within the horizon); ``unresolved``, within the horizon but no outcome came
    (the outcome window closed: the source sent none); ``censored``, taken after the
    horizon and left out whether resolved or not, with how many of them were resolved
    (``censored_resolved``) and positive (``censored_positives``): the outcomes that came in
    time for them are mostly the quick ones, which is why they are left out (QA41 F4).

    >>> h = {"d1": 10}
    >>> coverage([{"group": "d1", "ts": 3, "y": 0}, {"group": "d1", "ts": 12, "y": 1}],
    ...          [{"group": "d1", "ts": 4}, {"group": "d1", "ts": 11}], h)
    {'d1': {'n': 1, 'unresolved': 1, 'censored': 2, 'censored_resolved': 1, \
'censored_positives': 1}}
    """
    out: dict[str, dict[str, int]] = {}

    def row(group: str) -> dict[str, int]:
        return out.setdefault(group, {"n": 0, "unresolved": 0, "censored": 0,
                                      "censored_resolved": 0, "censored_positives": 0})

    for c in resolved:
        if since is None or c["ts"] >= since:
            r = row(c["group"])
            if closed(c, horizon):
                r["n"] += 1
            else:
                r["censored"] += 1
                r["censored_resolved"] += 1
                r["censored_positives"] += int(c["y"])
    for c in unresolved:
        if since is None or c["ts"] >= since:
            row(c["group"])["unresolved" if closed(c, horizon) else "censored"] += 1
    return out


def _total(rows: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        for k, v in r.items():
            out[k] = out.get(k, 0) + v
    return out


def evaluate_file(path: Path | str, target: str, *, config: ScoringConfig | None = None,
                  learner: str | None = None, learn: bool = True,
                  model_blob: bytes | None = None, score_events: bool = False,
                  learn_from: tuple[str, ...] = ("checkpoints", "live"),
                  validate: bool = False, curve_every: int = 500,
                  keep_records: bool = False, warmup: float = 0.5,
                  strict: bool = False, label_delay_days: float | None = None,
                  ) -> dict[str, Any]:
    """Replay ``path`` and report metrics for ``target`` (see the module docstring).

    ``model_blob``: start from a published model snapshot; ``learn=False`` freezes it.
    Checkpoints are evaluated only when taken at least a label delay before the file's last
    event (``label_delay_days``, or per group the longest checkpoint-to-label time of the
    file, :func:`label_delays`): later ones are resolved only if their outcome came quickly
    (an order: 1 minute; a lost lead: 14 days, simulator), so the resolved ones among them
    are mostly positives; they are left out and counted per group (``censored``, and the
    ``unresolved`` ones whose window closed with no outcome; :func:`coverage`; QA41 F4:
    they were dropped silently and the late ones kept, 1.00 positive in a 60-day file's
    last week). ``warmup``: the evaluated checkpoints after this share of the file's time
    span are also reported apart (``checkpoints.after_warmup``): a cold model's first
    scores are not its quality.
    ``keep_records``: include every evaluated checkpoint (with its feature snapshot ``x``) in
    the result under ``"records"`` (used by the OULAD batch baseline). The learned registry
    is under ``"_registry"`` (keys starting with ``_`` are not part of the JSON report).
    A bad line (unreadable, or with ``validate`` one the workers would dead-letter) is
    skipped and counted under ``"skipped"``, as the workers go on; ``strict`` raises the
    first one instead.
    """
    cfg = config or load_scoring_config()
    cfg.only([target])           # validates the name
    if learner:
        cfg = cfg.with_learner(learner, [target])
    reg = ModelRegistry(cfg)
    if model_blob is not None:
        reg.load(target, model_blob)
    scorer = Scorer(cfg, reg, alert_policy=None, score_events=score_events,
                    learn_from=learn_from, targets=[target])
    skipped = SkippedLines()
    run = replay(read_events(path, validate=validate, on_bad=None if strict else skipped),
                 scorer, learn=learn)
    tcfg = cfg.targets[target]
    thr = tcfg.alert_threshold
    resolved = [c for c in run["checkpoints"]
                if c["target"] == target and c["score"] is not None]
    unresolved = open_checkpoints(run["states"], target)
    lo, hi = run["span"] if run["span"][0] is not None else (0, 0)
    names = sorted({c["group"] for c in resolved + unresolved}, key=group_order)
    delays = label_delays(resolved, names, None if label_delay_days is None
                          else round(label_delay_days * 86_400_000))
    horizon = horizons(delays, hi)
    cps = [c for c in resolved if closed(c, horizon)]
    cut = lo + warmup * (hi - lo)
    counts, late_counts = (coverage(resolved, unresolved, horizon, since)
                           for since in (None, cut))

    def block(items: list[dict[str, Any]], count: dict[str, int]) -> dict[str, Any]:
        m = summarize([c["score"] for c in items], [c["y"] for c in items], thr)
        rules = roc_auc([c["rules_score"] for c in items], [c["y"] for c in items])
        m["rules_roc_auc"] = None if rules is None else round(rules, 4)
        m.update((k, v) for k, v in count.items() if k != "n")
        return m

    def by_group(items: list[dict[str, Any]], count: dict[str, dict[str, int]],
                 ) -> dict[str, Any]:
        return {g: block([c for c in items if c["group"] == g], count[g])
                for g in names if g in count}

    pairs = [p for p in run["pairs"] if p[0] == target]
    late = [c for c in cps if c["ts"] >= cut]
    result: dict[str, Any] = {
        "file": str(path),
        "target": target,
        "learner": tcfg.learner,
        "learn_from": list(learn_from),
        "events": run["events"],
        "skipped": skipped.to_dict(),
        "seconds": round(run["seconds"], 3),
        "events_per_s": round(run["events"] / run["seconds"]) if run["seconds"] else None,
        "users": len(run["states"]),
        "labels": len(pairs),
        "snapshots_learned": run["learned"],
        "snapshots_refused": reg.refused.get(target, 0),
        "checkpoints": {
            "label_delay": {
                "from": "data" if label_delay_days is None else "option", "end_ts": hi,
                "groups": {g: {"days": None if delays[g] is None
                               else round(delays[g] / 86_400_000, 3),
                               "horizon_ts": horizon[g]} for g in names}},
            "all": block(cps, _total(counts.values())) if counts else None,
            "groups": by_group(cps, counts),
            "after_warmup": {"warmup": warmup, "from_ts": int(cut),
                             "groups": by_group(late, late_counts)},
        },
        "prequential": summarize([p[1] for p in pairs], [p[2] for p in pairs], thr)
        if pairs else None,
        "learning_curve": _curve(pairs, curve_every),
        "gate": reg.gate(target).to_dict(),
        "calibration": reg.calibration(target),
        "gate_history": [{"learned": n, "open": o} for n, o in run["gate_history"][target]],
    }
    if keep_records:
        result["records"] = cps
    result["_registry"] = reg
    return result
