"""Configuration of the simulated company: ``config/simulator.yaml`` as typed, validated models.

Overrides are dotted paths into the YAML (``lead.window_days=7``), applied before validation,
so the command line and live mode can change any value without code.

Example:
    >>> cfg = load_sim_config(overrides={"users": 100, "lead.window_days": "7"})
    >>> cfg.users, cfg.lead.window_days, cfg.channels["douyin"].en
    (100, 7, 'Douyin')
    >>> load_sim_config(overrides={"lead.nope": 1})
    Traceback (most recent call last):
    ...
    stream_app.errors.ConfigError: simulator config: lead.nope: Extra inputs are not permitted...
"""

from __future__ import annotations

import copy
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stream_app.config import REPO_ROOT
from stream_app.errors import ConfigError

DEFAULT_PATH = REPO_ROOT / "config" / "simulator.yaml"


class _Model(BaseModel):
    # allow_inf_nan=False: ``days: inf`` (``--days inf``) passed ``gt=0`` and the run ended in
    # an OverflowError traceback; no number of the simulated world is meant to be infinite
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Labelled(_Model):
    """Something with a Chinese and an English label and a relative weight."""

    zh: str = ""
    en: str = ""
    weight: float = Field(1.0, ge=0)


class Tenant(Labelled):
    id: str


class Goal(Labelled):
    intent_shift: float = 0.0


class Channel(_Model):
    """An acquisition channel: volume (share), lead rate (register_rate), the people it brings."""

    zh: str = ""
    en: str = ""
    share: float = Field(ge=0)
    register_rate: float = Field(ge=0, le=1)
    intent: tuple[float, float] = (2.0, 5.0)
    dropout: tuple[float, float] = (2.0, 5.0)
    campaigns: list[str] = Field(default_factory=lambda: ["default"], min_length=1)


class Step(_Model):
    zh: str = ""
    en: str = ""
    p: float = Field(ge=0, le=1)


class Course(Labelled):
    price: float = Field(gt=0)
    trial_price: float = Field(ge=0)
    lessons: int = Field(ge=1)
    keywords: list[str] = Field(default_factory=list)


class ClassType(Labelled):
    price_factor: float = Field(1.0, gt=0)


class Live(_Model):
    speed: float = Field(2880.0, gt=0)
    arrivals_per_day: float = Field(1500.0, gt=0)
    warmup_days: float = Field(0.0, ge=0)
    overrides: dict[str, Any] = Field(default_factory=dict)


class Lead(_Model):
    zh: str = ""
    en: str = ""
    window_days: int = Field(14, ge=1)
    active_base: float = Field(0.5, ge=0, le=1)
    activity_decay: float = Field(0.88, gt=0, le=1)
    second_session: float = Field(0.2, ge=0, le=1)
    pages_per_session: float = Field(2.0, ge=0)
    course_views: float = Field(2.5, ge=0)
    search: float = Field(0.35, ge=0, le=1)
    live_enter: float = Field(0.25, ge=0, le=1)
    coupon_claimed: float = Field(0.08, ge=0, le=1)
    cart_add: float = Field(0.1, ge=0, le=1)
    profile_updated: float = Field(0.02, ge=0, le=1)
    deletion_requested: float = Field(0.003, ge=0, le=1)
    tail_days: int = Field(45, ge=0)
    tail_visits_per_day: float = Field(0.06, ge=0)
    unregistered_revisit: float = Field(0.15, ge=0, le=1)


class Study(_Model):
    zh: str = ""
    en: str = ""
    start_delay_days: tuple[int, int] = (1, 5)
    lesson_weekdays: list[int] = Field(default_factory=lambda: [1, 3, 5], min_length=1)
    lesson_hour: int = Field(20, ge=0, le=23)
    lesson_minutes: int = Field(90, ge=1)
    miss_base: float = Field(0.06, ge=0, le=1)
    miss_per_dropout: float = Field(0.25, ge=0, le=1)
    dropout_hazard: float = Field(0.1, ge=0, le=1)
    dropped_attend: float = Field(0.05, ge=0, le=1)
    withdraw_after_misses: int = Field(4, ge=1)
    refund: float = Field(0.5, ge=0, le=1)
    refund_before_lesson: int = Field(4, ge=0)
    homework: float = Field(0.8, ge=0, le=1)
    replay_video: float = Field(0.35, ge=0, le=1)
    missed_replay: float = Field(0.3, ge=0, le=1)
    extra_video: float = Field(0.25, ge=0, le=1)
    check_in: float = Field(0.45, ge=0, le=1)
    quiz_every: int = Field(3, ge=1)
    quiz_mean: float = 84.0
    quiz_sd: float = Field(9.0, ge=0)
    quiz_dropout_penalty: float = 30.0
    renewal: float = Field(0.3, ge=0, le=1)
    renewal_days: tuple[float, float] = (3, 21)
    renewal_factor: float = Field(1.2, gt=0)
    renewal_start: float = Field(0.8, ge=0, le=1)

    @field_validator("lesson_weekdays")
    @classmethod
    def _weekdays(cls, v: list[int]) -> list[int]:
        if any(not 0 <= d <= 6 for d in v):
            raise ValueError("weekdays are 0 (Monday) .. 6 (Sunday)")
        return sorted(set(v))


class Referral(_Model):
    zh: str = ""
    en: str = ""
    lead_share: float = Field(0.03, ge=0, le=1)
    buyer_share: float = Field(0.08, ge=0, le=1)
    completion_share: float = Field(0.3, ge=0, le=1)
    invite_success: float = Field(0.45, ge=0, le=1)
    invitee_delay_hours: tuple[float, float] = (0.5, 72.0)


class Unknown(_Model):
    per_session: float = Field(0.02, ge=0, le=1)
    types: list[str] = Field(default_factory=lambda: ["app_open"], min_length=1)


class Checkpoints(_Model):
    convert_days: list[int] = Field(default_factory=lambda: [1, 3, 7])
    at_risk_pct: list[int] = Field(default_factory=lambda: [25, 50, 75])

    @field_validator("at_risk_pct")
    @classmethod
    def _pct(cls, v: list[int]) -> list[int]:
        if any(not 0 < p < 100 for p in v):
            raise ValueError("percentages of the course are in 1..99")
        return v


class Consent(_Model):
    marketing: float = Field(0.72, ge=0, le=1)
    profiling: float = Field(0.86, ge=0, le=1)


class Profile(_Model):
    consent: Consent = Field(default_factory=Consent)
    regions: dict[str, Labelled]
    age_bands: dict[str, Labelled]
    occupations: dict[str, Labelled]
    educations: dict[str, Labelled]
    goals: dict[str, Goal]


class Rhythm(_Model):
    hourly: list[float] = Field(min_length=24, max_length=24)
    weekly: list[float] = Field(min_length=7, max_length=7)

    @field_validator("hourly", "weekly")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if min(v) < 0 or max(v) <= 0:
            raise ValueError("weights must be >= 0 with at least one > 0")
        return v


class AnomalyKind(_Model):
    zh: str = ""
    en: str = ""
    factor: float = Field(ge=0)
    step: str | None = None


class SimConfig(_Model):
    """The whole simulated world (see ``config/simulator.yaml`` for the meaning of each field)."""

    zh: str = ""
    en: str = ""
    users: int = Field(5000, ge=0)
    days: float = Field(30, gt=0)
    start: str = "2026-03-02T00:00:00+08:00"
    utc_offset_minutes: int = 480
    intent_ref: float = Field(0.3, gt=0, le=1)
    max_step_prob: float = Field(0.95, gt=0, le=1)
    tenants: list[Tenant] = Field(min_length=1)
    live: Live = Field(default_factory=Live)
    channels: dict[str, Channel] = Field(min_length=1)
    lead: Lead = Field(default_factory=Lead)
    funnel: dict[str, Step]
    courses: dict[str, Course] = Field(min_length=1)
    class_types: dict[str, ClassType] = Field(min_length=1)
    study: Study = Field(default_factory=Study)
    referral: Referral = Field(default_factory=Referral)
    unknown_events: Unknown = Field(default_factory=Unknown)
    checkpoints: Checkpoints = Field(default_factory=Checkpoints)
    profile: Profile
    rhythm: Rhythm
    anomalies: dict[str, AnomalyKind] = Field(default_factory=dict)

    @field_validator("funnel")
    @classmethod
    def _steps(cls, v: dict[str, Step]) -> dict[str, Step]:
        missing = set(FUNNEL_STEPS) - set(v)
        if missing:
            raise ValueError(f"funnel misses steps {sorted(missing)}")
        return v

    @field_validator("channels")
    @classmethod
    def _shares(cls, v: dict[str, Channel]) -> dict[str, Channel]:
        if "referral" not in v:
            raise ValueError("a 'referral' channel is required (invitees arrive through it)")
        if sum(c.share for c in v.values()) <= 0:
            raise ValueError("at least one channel needs share > 0")
        return v

    @classmethod
    def load(cls, path: Path | str | None = None, overrides: dict[str, Any] | None = None,
             **top: Any) -> SimConfig:
        """``load_sim_config`` with top-level overrides as keywords (``users=2000``)."""
        return load_sim_config(path, {**top, **(overrides or {})})

    def with_overrides(self, overrides: dict[str, Any]) -> SimConfig:
        """A copy with dotted-path ``overrides`` applied (validated again)."""
        return _build(self.model_dump(mode="python"), overrides, "overrides")


#: funnel steps the behaviour model uses (names of ``funnel:`` entries)
FUNNEL_STEPS = ("trial_booked", "trial_purchased", "trial_attended", "consult_request",
                "order_paid", "direct_consult", "direct_order")


def _set_dotted(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node: Any = doc
    for part in parts[:-1]:
        if not isinstance(node, dict):
            raise ConfigError(f"simulator config: cannot set {path}: {part!r} is not a mapping")
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        raise ConfigError(f"simulator config: cannot set {path}")
    if isinstance(value, str) and value.strip():
        parsed = yaml.safe_load(value)
        # YAML reads ISO-8601 times as datetimes: keep times as the text the user gave
        value = value if isinstance(parsed, date | datetime) else parsed
    node[parts[-1]] = value


def _build(doc: dict[str, Any], overrides: dict[str, Any] | None, source: str,
           origins: dict[str, str] | None = None) -> SimConfig:
    doc = copy.deepcopy(doc)
    for path, value in (overrides or {}).items():
        _set_dotted(doc, path, value)
    try:
        return SimConfig.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        # a value refused because of an override is the override's fault, not the file's:
        # named by where it came from (``origins``: path -> "the --users option")
        given = next(((origins or {}).get(path) or f"override {path}={value!r}"
                      for path, value in (overrides or {}).items()
                      if where == path or where.startswith(f"{path}.")
                      or path.startswith(f"{where}.")), None)
        raise ConfigError(f"simulator config: {where}: {err['msg']} ({given or source})"
                          ) from None


def load_sim_config(path: Path | str | None = None,
                    overrides: dict[str, Any] | None = None,
                    origins: dict[str, str] | None = None) -> SimConfig:
    """Read ``path`` (default ``config/simulator.yaml``) and apply dotted-path ``overrides``.

    String override values are parsed as YAML (``"7"`` -> 7, ``"[1, 2]"`` -> a list). A value
    the config refuses is blamed on its override (``origins[path]`` when given, e.g. ``"the
    --users option"``), not on the file:

    >>> load_sim_config(overrides={"users": -5}, origins={"users": "the --users option"})
    Traceback (most recent call last):
    ...
    stream_app.errors.ConfigError: simulator config: users: Input should be greater than or \
equal to 0 (the --users option)
    """
    p = Path(path) if path is not None else DEFAULT_PATH
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"simulator config {p}: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"simulator config {p}: not a mapping")
    return _build(doc, overrides, str(p), origins)
