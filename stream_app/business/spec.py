"""What business series are computed: the ``business:`` section of ``config/anomaly.yaml``.

Example:
    >>> spec = load_business_spec()
    >>> spec.step_of("registered"), spec.step_of("page_view")
    ('lead', None)
    >>> spec.windows["1m"].size_ms, sorted(spec.rates)[:2]
    (60000, ['attendance', 'lead_to_trial'])
    >>> spec.amount_series["renewal"], spec.amount_series["refund"], "lead" in spec.amount_series
    ('revenue', 'refunds', False)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from stream_app.config import REPO_ROOT
from stream_app.errors import ConfigError
from stream_app.metrics import listed_ids

DEFAULT_PATH = REPO_ROOT / "config" / "anomaly.yaml"
OTHER = "other"   # the series tenant (and channel) of values not in the allow-lists

log = logging.getLogger(__name__)
#: tenants already reported as folded into ``other`` by this process
_unlisted_tenants: set[str] = set()


def fold_tenant(tenant: str) -> str:
    """``other``, the series tenant of ``tenant``, which is not in the ``labels.tenants``
    allow-list of ``config/anomaly.yaml``; logs a warning the first time this process folds
    ``tenant`` (its business series and anomaly detection are mixed with other unlisted
    tenants' until it is listed there).

    >>> fold_tenant("acme"), fold_tenant("acme")   # logged once
    ('other', 'other')
    """
    if tenant not in _unlisted_tenants:
        _unlisted_tenants.add(tenant)
        log.warning("tenant %r is not listed under labels.tenants in config/anomaly.yaml: its "
                    "business metrics and anomaly detection are counted as tenant 'other' "
                    "(mixed with every unlisted tenant); add it there to get its own series",
                    tenant)
    return OTHER


@dataclass(frozen=True)
class WindowSpec:
    """A tumbling event-time window: its size and how long it stays open after its end."""

    name: str
    size_ms: int
    lateness_ms: int


@dataclass(frozen=True)
class CountSpec:
    name: str
    step: str
    zh: str = ""
    en: str = ""


@dataclass(frozen=True)
class RateSpec:
    """``num`` / sum(``den``) of step counts in one window."""

    name: str
    num: str
    den: tuple[str, ...]
    zh: str = ""
    en: str = ""


@dataclass(frozen=True)
class AmountSpec:
    """A money series: the sum of the paid amount (``amount_props``) of events of ``steps``."""

    name: str
    steps: tuple[str, ...]
    zh: str = ""
    en: str = ""


#: money series and the Prometheus counter each one has (``stream_app_biz_<name>_total``)
AMOUNT_SERIES = ("revenue", "refunds")


@dataclass(frozen=True)
class BusinessSpec:
    steps: dict[str, str]                      # event type -> step
    windows: dict[str, WindowSpec]
    counts: dict[str, CountSpec]
    rates: dict[str, RateSpec]
    channel_props: tuple[str, ...] = ("channel",)
    #: tag whose value names the channel of an event without channel props (first touch)
    channel_tag: str | None = None
    amount_props: tuple[str, ...] = ("amount",)
    #: money series (``revenue``, ``refunds``; QA37 F6): name -> steps whose amounts it sums
    amounts: dict[str, AmountSpec] = field(default_factory=dict)
    channels: frozenset[str] = frozenset()     # allow-list; others -> "other"
    tenants: frozenset[str] = frozenset({"default"})

    @cached_property
    def amount_series(self) -> dict[str, str]:
        """step -> the money series its amount goes to (steps without amount: absent)."""
        return {step: a.name for a in self.amounts.values() for step in a.steps}

    def step_of(self, event_type: str) -> str | None:
        return self.steps.get(event_type)

    def labels_of(self, metric: str) -> dict[str, str]:
        """zh/en labels of a series name (``leads``, ``lead_to_trial``, ``revenue``)."""
        spec: Any = (self.counts.get(metric) or self.rates.get(metric)
                     or self.amounts.get(metric))
        if spec is not None:
            return {"zh": spec.zh, "en": spec.en}
        return {"zh": metric, "en": metric}


def load_business_spec(path: Path = DEFAULT_PATH) -> BusinessSpec:
    """Parse the ``labels:`` and ``business:`` sections of ``path``."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        biz = doc["business"]
        labels = doc.get("labels") or {}
        windows = {n: WindowSpec(n, int(w["size_s"] * 1000), int(w.get("lateness_s", 0) * 1000))
                   for n, w in biz["windows"].items()}
        counts = {n: CountSpec(n, c["step"], c.get("zh", ""), c.get("en", ""))
                  for n, c in (biz.get("counts") or {}).items()}
        rates = {n: RateSpec(n, r["num"], tuple(r["den"]), r.get("zh", ""), r.get("en", ""))
                 for n, r in (biz.get("rates") or {}).items()}
        spec = BusinessSpec(
            steps={str(k): str(v) for k, v in biz["steps"].items()},
            windows=windows, counts=counts, rates=rates,
            channel_props=tuple(biz.get("channel_props") or ("channel",)),
            channel_tag=biz.get("channel_tag") or None,
            amount_props=tuple(biz.get("amount_props") or ("amount",)),
            amounts={n: AmountSpec(n, tuple(a["steps"]), a.get("zh", ""), a.get("en", ""))
                     for n, a in (biz.get("amounts") or {}).items()},
            channels=listed_ids(labels.get("channels"), "labels.channels"),
            tenants=listed_ids(labels.get("tenants"), "labels.tenants") | {"default"},
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: invalid business metric spec: {exc!r}") from exc
    known = set(spec.steps.values())
    for r in spec.rates.values():
        for s in (r.num, *r.den):
            if s not in known:
                raise ConfigError(f"{path}: rate {r.name!r} uses step {s!r} no event maps to")
    seen: dict[str, str] = {}
    for a in spec.amounts.values():
        if a.name not in AMOUNT_SERIES:
            raise ConfigError(f"{path}: amounts.{a.name}: one of {', '.join(AMOUNT_SERIES)} "
                              "(each has its Prometheus counter)")
        for s in a.steps:
            if s not in known:
                raise ConfigError(f"{path}: amounts.{a.name} uses step {s!r} no event maps to")
            if s in seen:
                raise ConfigError(f"{path}: step {s!r} is in amounts.{seen[s]} and "
                                  f"amounts.{a.name} (an amount counts once)")
            seen[s] = a.name
    for w in windows.values():
        if w.size_ms <= 0 or w.lateness_ms < 0:
            raise ConfigError(f"{path}: window {w.name!r} needs size_s > 0 and lateness_s >= 0")
    return spec
