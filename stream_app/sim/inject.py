"""Anomaly injection: a channel's lead-rate drop, a funnel-step collapse, a traffic spike.

A spec on the command line is ``kind:key=value,...`` with keys ``channel``, ``step``, ``start``,
``duration`` and ``factor``. ``start`` is an offset from the start of the run (``10d``, ``36h``,
``90m``, ``30s``) or an absolute ISO-8601 time; ``duration`` is an offset (default ``1d``).

- ``lead_drop``: visitors of ``channel`` register with the probability x ``factor``.
- ``funnel_collapse``: the funnel ``step`` (default ``trial_booked``) succeeds with x ``factor``.
- ``spike``: arrivals (of ``channel``, or of every channel) x ``factor``.

Example:
    >>> inj = parse_injection("lead_drop:channel=douyin,start=10d,duration=12h")
    >>> inj.kind, inj.channel, inj.start_ms, inj.duration_ms, inj.relative
    ('lead_drop', 'douyin', 864000000, 43200000, True)
    >>> w = Windows([inj.resolve(1_000_000_000_000, default_factor=0.1)])
    >>> w.lead_factor("douyin", 1_000_864_000_000), w.lead_factor("douyin", 999_999_999_999)
    (0.1, 1.0)
    >>> parse_injection("meteor:start=1d")
    Traceback (most recent call last):
    ...
    stream_app.errors.ConfigError: injection 'meteor:start=1d': unknown kind 'meteor'...
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from stream_app.errors import ConfigError, EventError
from stream_app.events import parse_ts

KINDS = ("lead_drop", "funnel_collapse", "spike")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_OFFSET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_offset(text: str) -> int:
    """``'1.5d'`` -> milliseconds (a bare number is in seconds).

    >>> parse_offset("1.5d"), parse_offset("90m"), parse_offset("30")
    (129600000, 5400000, 30000)
    """
    m = _OFFSET.match(text)
    if not m:
        raise ConfigError(f"{text!r} is not a duration like 30s, 90m, 36h, 10d")
    return int(float(m.group(1)) * _UNITS[m.group(2) or "s"])


@dataclass(frozen=True)
class Injection:
    """One injected anomaly as asked for (start relative to the run, or absolute)."""

    kind: str
    start_ms: int
    duration_ms: int = 86_400_000
    relative: bool = True
    factor: float | None = None
    channel: str | None = None
    step: str | None = None

    def outside(self, run_start_ms: int, run_end_ms: int) -> str | None:
        """Why this injection would never happen in the run ``[run_start_ms, run_end_ms)``
        (it starts at or after its end, or ends before its start), or None when it overlaps.

        >>> day = 86_400_000
        >>> parse_injection("spike:start=99d,duration=1h").outside(0, day)
        'it starts 99 days into the run, at or after its end (1 day)'
        >>> parse_injection("spike:start=12h").outside(0, day) is None
        True
        >>> parse_injection("spike:start=2020-01-01T00:00:00Z,duration=1h").outside(
        ...     1_772_380_800_000, 1_772_380_800_000 + day)
        'it ends at 2020-01-01T01:00:00Z, before the run starts (2026-03-01T16:00:00Z)'
        """
        start = run_start_ms + self.start_ms if self.relative else self.start_ms
        end = start + self.duration_ms
        if start >= run_end_ms:
            if self.relative:
                return (f"it starts {_days(self.start_ms)} into the run, at or after its end "
                        f"({_days(run_end_ms - run_start_ms)})")
            return (f"it starts at {_iso(start)}, at or after the end of the run "
                    f"({_iso(run_end_ms)})")
        if end <= run_start_ms:
            return f"it ends at {_iso(end)}, before the run starts ({_iso(run_start_ms)})"
        return None

    def resolve(self, run_start_ms: int, default_factor: float = 1.0,
                default_step: str | None = None) -> ActiveInjection:
        """Absolute window and factor for a run starting at ``run_start_ms``."""
        start = run_start_ms + self.start_ms if self.relative else self.start_ms
        return ActiveInjection(
            kind=self.kind, start_ms=start, end_ms=start + self.duration_ms,
            factor=default_factor if self.factor is None else self.factor,
            channel=self.channel, step=self.step or default_step)


@dataclass(frozen=True)
class ActiveInjection:
    """An injected anomaly with its absolute window ``[start_ms, end_ms)``: ground truth."""

    kind: str
    start_ms: int
    end_ms: int
    factor: float
    channel: str | None = None
    step: str | None = None

    def covers(self, ts: int) -> bool:
        return self.start_ms <= ts < self.end_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _days(ms: int) -> str:
    """``129_600_000`` -> ``'1.5 days'``."""
    days = ms / 86_400_000
    return f"{days:g} day" + ("" if days == 1 else "s")


def _iso(ms: int) -> str:
    """Epoch milliseconds as an ISO-8601 UTC time (``...Z``)."""
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_injection(spec: str) -> Injection:
    """Parse ``kind:key=value,...`` (see the module docstring)."""
    kind, _, rest = spec.partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise ConfigError(f"injection {spec!r}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    fields: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in ("channel", "step", "start", "duration", "factor"):
            raise ConfigError(f"injection {spec!r}: bad part {part!r}")
        fields[key.strip()] = value.strip()
    if "start" not in fields:
        raise ConfigError(f"injection {spec!r}: start is required (e.g. start=10d)")
    start, relative = _start(fields["start"], spec)
    try:
        factor = float(fields["factor"]) if "factor" in fields else None
    except ValueError:
        raise ConfigError(f"injection {spec!r}: factor is not a number") from None
    if factor is not None and factor < 0:
        raise ConfigError(f"injection {spec!r}: factor must be >= 0")
    if kind == "lead_drop" and not fields.get("channel"):
        raise ConfigError(f"injection {spec!r}: lead_drop needs channel=...")
    duration = parse_offset(fields.get("duration", "1d"))
    if duration <= 0:
        raise ConfigError(f"injection {spec!r}: duration must be > 0")
    return Injection(kind=kind, start_ms=start, duration_ms=duration, relative=relative,
                     factor=factor, channel=fields.get("channel") or None,
                     step=fields.get("step") or None)


def _start(text: str, spec: str) -> tuple[int, bool]:
    if _OFFSET.match(text):
        return parse_offset(text), True
    try:
        return parse_ts(text), False
    except EventError:
        raise ConfigError(f"injection {spec!r}: start {text!r} is neither an offset "
                          "(10d, 36h) nor an ISO-8601 time") from None


class Windows:
    """Fast look-ups of the factors active at a time (1.0 when nothing is injected)."""

    def __init__(self, active: list[ActiveInjection]) -> None:
        self.active = list(active)
        self._lead: dict[str, list[ActiveInjection]] = {}
        self._step: dict[str, list[ActiveInjection]] = {}
        self._spike = [a for a in self.active if a.kind == "spike"]
        for a in self.active:
            if a.kind == "lead_drop" and a.channel:
                self._lead.setdefault(a.channel, []).append(a)
            elif a.kind == "funnel_collapse" and a.step:
                self._step.setdefault(a.step, []).append(a)
        self.collapsed_steps = frozenset(self._step)

    def lead_factor(self, channel: str, ts: int) -> float:
        """Multiplier of the registration probability of ``channel`` at ``ts``."""
        f = 1.0
        for a in self._lead.get(channel, ()):
            if a.start_ms <= ts < a.end_ms:
                f *= a.factor
        return f

    def step_factor(self, step: str, ts: int) -> float:
        """Multiplier of funnel ``step`` at ``ts``."""
        f = 1.0
        for a in self._step.get(step, ()):
            if a.start_ms <= ts < a.end_ms:
                f *= a.factor
        return f

    def spikes(self) -> list[ActiveInjection]:
        return list(self._spike)
