"""Scoring configuration (``config/scoring.yaml``): features, targets, gate, learners.

Example:
    >>> cfg = load_scoring_config()
    >>> sorted(cfg.targets)
    ['at_risk', 'convert']
    >>> cfg.targets["convert"].layer(0.7), cfg.targets["convert"].layer(0.01)
    ('high', 'low')
    >>> cfg.targets["convert"].gate.min_labels > 0
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from stream_app.config import REPO_ROOT, get_settings
from stream_app.errors import ConfigError

DEFAULT_PATH = REPO_ROOT / "config" / "scoring.yaml"
KINDS = ("logreg", "hat", "arf", "ensemble")


@dataclass(frozen=True)
class FeatureConfig:
    """How stream state becomes a feature vector."""

    windows_days: tuple[int, ...] = (1, 7, 30)
    recency_scale_days: float = 7.0
    per_type: frozenset[str] = frozenset({"windows", "total", "rate", "recency"})
    milestones: tuple[str, ...] = ("registered",)
    funnel: tuple[str, ...] = ()
    categorical_streams: frozenset[str] = frozenset({"profile"})
    channel_props: frozenset[str] = frozenset({"channel"})
    numeric_windows_days: tuple[int, ...] = (7, 30)
    hashed_props: frozenset[str] = frozenset()
    hash_buckets: int = 16
    max_value_chars: int = 40
    #: the business day's offset from UTC in hours: always the setting
    #: ``day_offset_minutes`` / 60 when read by :func:`parse_scoring_config`
    day_offset_hours: float = 8.0
    exclude_types: frozenset[str] = frozenset()
    exclude_props: frozenset[str] = frozenset()
    registration_type: str = "registered"
    points_features: bool = True
    # derived once, for the per-event update: the day boundary's offset in ms, and the
    # event types whose first time is kept (milestones and the registration type)
    day_offset_ms: float = field(init=False, repr=False, compare=False)
    first_types: frozenset[str] = field(init=False, repr=False, compare=False)
    # what features.fold reads for every event, as one tuple (one read and an unpacking
    # instead of seven attribute reads)
    fold_plan: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """The derived fields (again for a :func:`dataclasses.replace` copy).

        >>> fc = FeatureConfig(milestones=("paid",), channel_props=frozenset({"ch"}))
        >>> fc.fold_plan[0], sorted(fc.fold_plan[1]), fc.fold_plan[4]
        (28800000.0, ['paid', 'registered'], frozenset({'ch'}))
        """
        setf = object.__setattr__
        setf(self, "day_offset_ms", self.day_offset_hours * 3_600_000)
        setf(self, "first_types", frozenset(self.milestones) | {self.registration_type})
        setf(self, "fold_plan", (self.day_offset_ms, self.first_types, self.exclude_props,
                                 self.categorical_streams, self.channel_props,
                                 self.hashed_props, self.max_value_chars))


@dataclass(frozen=True)
class GateConfig:
    """Release bar: precision and recall at the alert threshold over the last ``window`` labels."""

    window: int = 300
    min_labels: int = 60
    min_precision: float = 0.5
    min_recall: float = 0.3
    hysteresis: float = 0.03
    min_lift: float = 1.2


@dataclass(frozen=True)
class RulesConfig:
    """The rule-points score used while the model is behind its gate."""

    points: dict[str, float] = field(default_factory=dict)
    half_life_days: float = 14.0
    scale: float = 10.0
    layers: dict[str, float] = field(default_factory=lambda: {"high": 15.0, "medium": 5.0})
    inactive_points_per_day: float = 0.0
    inactive_after_days: float = 7.0


@dataclass(frozen=True)
class RehearsalConfig:
    """Class-balanced rehearsal against label-delay bursts (see ModelRegistry.learn)."""

    per_class: int = 200      # reservoir size per class (0 disables rehearsal)
    replays: int = 1          # other-class examples learned after each label
    extra: int = 0            # further examples of either class (experience replay)
    seed: int = 7


@dataclass(frozen=True)
class CalibrationConfig:
    """How a target's model probability is calibrated (:mod:`stream_app.scoring.calibration`):
    ``method`` ``none`` or ``prior_shift`` (undo rehearsal's class balance), ``half_life``
    of its class counts in labelled snapshots (0: none), ``min_examples`` before it acts."""

    method: str = "none"
    half_life: float = 20000.0
    min_examples: int = 200


def tag_layer(value: Any) -> str:
    """The layer a ``layer_tag``'s value stands for: an enum tag's value is the layer
    (``intent``: high / medium / low), a bool tag's ``true`` is ``high`` (``at_risk``), and
    anything else (``false``, no tag yet) is ``low``. The scorer inlines it per event.

    >>> [tag_layer(v) for v in ("medium", True, False, None)]
    ['medium', 'high', 'low', 'low']
    """
    if value.__class__ is str:
        return value
    return "high" if value is True else "low"


@dataclass(frozen=True)
class TargetConfig:
    """One prediction target (``convert``, ``at_risk``, ...)."""

    name: str
    zh: str = ""
    en: str = ""
    positive_events: frozenset[str] = frozenset()
    learner: str = "logreg"
    alert_threshold: float = 0.5
    layers: dict[str, float] = field(default_factory=lambda: {"high": 0.5, "medium": 0.2})
    gate: GateConfig = field(default_factory=GateConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    rehearsal: RehearsalConfig = field(default_factory=RehearsalConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    #: the rule engine's tag that *is* this target's layer (``intent`` for ``convert``,
    #: ``at_risk`` for ``at_risk``): given the user's tags, the scorer takes the layer from it
    #: whatever the score's source (:func:`tag_layer`), so that the tag, the Redis
    #: ``layer:<target>`` field and the alerts agree; ``layers`` and ``rules.layers`` then
    #: serve only a scorer run without the rule engine
    layer_tag: str | None = None

    def layer(self, score: float) -> str:
        """Intent layer of a model probability."""
        if score >= self.layers["high"]:
            return "high"
        return "medium" if score >= self.layers["medium"] else "low"

    def rules_layer(self, points: float) -> str:
        """Intent layer of a rule-points total."""
        if points >= self.rules.layers["high"]:
            return "high"
        return "medium" if points >= self.rules.layers["medium"] else "low"


@dataclass(frozen=True)
class SnapshotConfig:
    """Bounds of the per-user feature snapshots kept for delayed labels."""

    max_per_target: int = 8
    every_days: float = 0.0
    schedule_days: tuple[float, ...] = (1, 3, 7, 14, 30, 60, 120)
    max_checkpoints: int = 12


@dataclass(frozen=True)
class ScoringConfig:
    """Everything the :class:`~stream_app.scoring.scorer.Scorer` needs."""

    features: FeatureConfig
    targets: dict[str, TargetConfig]
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)
    feedback_labels: dict[str, dict[str, int]] = field(default_factory=dict)
    learners: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: a rule tag saying whether the user consents to profiling (``profiling_consent``): a
    #: user for whom it is false gets no model score (the rule points only); None: no check
    consent_tag: str | None = None

    def learner_names(self) -> list[str]:
        """The names a ``learner`` may take: the ``learners:`` catalog's, in its order, then
        any built-in kind (:data:`KINDS`) it does not list.

        >>> load_scoring_config().learner_names()
        ['logreg', 'logreg_std', 'hat', 'arf', 'ensemble']
        """
        return [*self.learners, *(k for k in KINDS if k not in self.learners)]

    def check_learners(self, names: list[str] | tuple[str, ...]) -> None:
        """Refuse (:class:`ConfigError`) learner names the config does not define.

        >>> load_scoring_config().check_learners(["hat", "logreg_sd"])
        Traceback (most recent call last):
        ...
        stream_app.errors.ConfigError: unknown learner(s) ['logreg_sd']; configured: \
['logreg', 'logreg_std', 'hat', 'arf', 'ensemble']
        """
        known = self.learner_names()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"unknown learner(s) {unknown}; configured: {known}")

    def with_learner(self, learner: str, targets: list[str] | None = None) -> ScoringConfig:
        """A copy whose targets (all, or those named) use ``learner`` (a name of
        :meth:`learner_names`, else :class:`ConfigError`)."""
        self.check_learners([learner])
        new = {
            n: (replace(t, learner=learner) if targets is None or n in targets else t)
            for n, t in self.targets.items()
        }
        return replace(self, targets=new)

    def only(self, targets: list[str]) -> ScoringConfig:
        """A copy with only the named targets."""
        missing = [t for t in targets if t not in self.targets]
        if missing:
            raise ConfigError(f"unknown target(s) {missing}; configured: {sorted(self.targets)}")
        return replace(self, targets={n: self.targets[n] for n in targets})


def _fs(v: Any) -> frozenset[str]:
    return frozenset(v or ())


def _snapshots(raw: dict[str, Any]) -> SnapshotConfig:
    raw = dict(raw)
    if "schedule_days" in raw:
        raw["schedule_days"] = tuple(sorted(float(d) for d in raw["schedule_days"]))
    return SnapshotConfig(**raw)


def _floats(d: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items()}


def _target(name: str, raw: dict[str, Any]) -> TargetConfig:
    rules = raw.get("rules") or {}
    return TargetConfig(
        name=name,
        zh=raw.get("zh", ""),
        en=raw.get("en", ""),
        positive_events=_fs(raw.get("positive_events")),
        learner=raw.get("learner", "logreg"),
        alert_threshold=float(raw.get("alert_threshold", 0.5)),
        layers=_floats(raw.get("layers") or {"high": 0.5, "medium": 0.2}),
        gate=GateConfig(**(raw.get("gate") or {})),
        rehearsal=RehearsalConfig(**(raw.get("rehearsal") or {})),
        calibration=CalibrationConfig(**(raw.get("calibration") or {})),
        layer_tag=raw.get("layer_tag") or None,
        rules=RulesConfig(
            points={k: float(v) for k, v in (rules.get("points") or {}).items()},
            half_life_days=float(rules.get("half_life_days", 14)),
            scale=float(rules.get("scale", 10)),
            layers=_floats(rules.get("layers") or {"high": 15, "medium": 5}),
            inactive_points_per_day=float(rules.get("inactive_points_per_day", 0)),
            inactive_after_days=float(rules.get("inactive_after_days", 7)),
        ),
    )


def business_day_hours(features: dict[str, Any], day_offset_minutes: int) -> float:
    """The business day's offset (hours) of the scorer's daily buckets and the alerts' dates
    and day counts: the setting ``day_offset_minutes`` (``STREAM_APP_DAY_OFFSET_MINUTES``),
    which also sets the tag rules' days, so that tags, scores and alerts count one day.
    ``features.day_offset_hours`` in scoring.yaml is no longer needed; an old file that
    still gives it is refused when it differs from the setting.

    Example:
        >>> business_day_hours({}, 480), business_day_hours({"day_offset_hours": 0}, 0)
        (8.0, 0.0)
        >>> business_day_hours({"day_offset_hours": 8}, 0)
        Traceback (most recent call last):
        ...
        stream_app.errors.ConfigError: scoring config features.day_offset_hours (8) differs \
from the business day of the setting day_offset_minutes (0, STREAM_APP_DAY_OFFSET_MINUTES), \
which alone sets the business day of tags, scores and alerts: remove \
features.day_offset_hours from the scoring config
    """
    hours = day_offset_minutes / 60
    given = features.get("day_offset_hours")
    if given is not None and float(given) != hours:
        raise ConfigError(
            f"scoring config features.day_offset_hours ({given}) differs from the business "
            f"day of the setting day_offset_minutes ({day_offset_minutes}, "
            "STREAM_APP_DAY_OFFSET_MINUTES), which alone sets the business day of tags, "
            "scores and alerts: remove features.day_offset_hours from the scoring config")
    return hours


def parse_scoring_config(doc: dict[str, Any], *,
                         day_offset_minutes: int | None = None) -> ScoringConfig:
    """Build a :class:`ScoringConfig` from the parsed YAML document; the business day is
    ``day_offset_minutes`` (default: the setting, see :func:`business_day_hours`)."""
    if day_offset_minutes is None:
        day_offset_minutes = get_settings().day_offset_minutes
    try:
        f = doc.get("features") or {}
        features = FeatureConfig(
            windows_days=tuple(int(d) for d in f.get("windows_days", (1, 7, 30))),
            recency_scale_days=float(f.get("recency_scale_days", 7)),
            per_type=_fs(f.get("per_type", ("windows", "total", "rate", "recency"))),
            milestones=tuple(f.get("milestones") or ()),
            funnel=tuple(f.get("funnel") or ()),
            categorical_streams=_fs(f.get("categorical_streams", ("profile",))),
            channel_props=_fs(f.get("channel_props", ("channel",))),
            numeric_windows_days=tuple(int(d) for d in f.get("numeric_windows_days", (7, 30))),
            hashed_props=_fs(f.get("hashed_props")),
            hash_buckets=int(f.get("hash_buckets", 16)),
            max_value_chars=int(f.get("max_value_chars", 40)),
            day_offset_hours=business_day_hours(f, day_offset_minutes),
            exclude_types=_fs(f.get("exclude_types")),
            exclude_props=_fs(f.get("exclude_props")),
            registration_type=f.get("registration_type", "registered"),
            points_features=bool(f.get("points_features", True)),
        )
        targets = {n: _target(n, t or {}) for n, t in (doc.get("targets") or {}).items()}
        if not targets:
            raise ConfigError("scoring config defines no targets")
        for t in targets.values():
            if t.calibration.method not in ("none", "prior_shift"):
                raise ConfigError(f"target {t.name}: unknown calibration method "
                                  f"{t.calibration.method!r} (none, prior_shift)")
            if t.layers.get("high", 1) < t.layers.get("medium", 0):
                raise ConfigError(f"target {t.name}: layers.high < layers.medium")
        learners = dict(doc.get("learners") or {})
        for t in targets.values():
            if t.learner not in learners and t.learner not in KINDS:
                raise ConfigError(f"target {t.name}: unknown learner {t.learner!r}")
        return ScoringConfig(
            features=features,
            targets=targets,
            snapshots=_snapshots(doc.get("snapshots") or {}),
            feedback_labels={k: dict(v) for k, v in (doc.get("feedback_labels") or {}).items()},
            learners=learners,
            consent_tag=doc.get("consent_tag") or None,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"scoring config is invalid: {exc}") from exc


def load_scoring_config(path: Path | str | None = None, *,
                        day_offset_minutes: int | None = None) -> ScoringConfig:
    """Read and validate ``config/scoring.yaml`` (or ``path``); the business day is
    ``day_offset_minutes`` (default: the setting ``day_offset_minutes``).

    Example:
        >>> load_scoring_config(day_offset_minutes=0).features.day_offset_ms
        0.0
    """
    p = Path(path or DEFAULT_PATH)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read scoring config {p}: {exc}") from exc
    return parse_scoring_config(doc, day_offset_minutes=day_offset_minutes)
