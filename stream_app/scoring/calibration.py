"""Calibration of a model's probability: undo the class shift that rehearsal brings.

Class-balanced rehearsal (:meth:`ModelRegistry.learn`, ``rehearsal`` in
``config/scoring.yaml``) follows every labelled snapshot with one of the other class, so a
model learns from about as many positives as negatives while the snapshots themselves are
mostly negative (17% positive for ``convert`` on the simulator). A model fitted on a class
ratio ``train`` estimates ``P(y | x)`` for that ratio; for the ratio ``base`` of the stream
it is applied to, Bayes' rule with unchanged ``P(x | y)`` (a prior shift) gives

    p' = p * r1 / (p * r1 + (1 - p) * r0),   r1 = base / train,  r0 = (1 - base) / (1 - train)

:class:`PriorShift` keeps both ratios as decayed counts (``half_life`` in labelled
snapshots, so a drifting base rate is followed): ``base`` over the labelled snapshots as
they come (not rehearsed), ``train`` over every example the model learned (those and the
rehearsal's). The map is monotone: rankings (ROC-AUC) do not move, thresholds do.

Example:
    >>> from stream_app.scoring.config import CalibrationConfig
    >>> c = PriorShift(CalibrationConfig("prior_shift", half_life=0, min_examples=4))
    >>> c.apply(0.6)                       # too few labels yet: unchanged
    0.6
    >>> for y in (1, 0, 0, 0):             # 1 in 4 positive; each replayed against the other class
    ...     c.update(y, [1 - y])
    >>> round(c.base, 2), round(c.train, 2), round(c.apply(0.5), 2), round(c.apply(0.6), 3)
    (0.25, 0.5, 0.25, 0.333)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream_app.scoring.config import CalibrationConfig

__all__ = ["PriorShift", "make_calibrator"]

_EPS = 1e-4


def _shift(p: float, r1: float, r0: float) -> float:
    """``p`` under the prior shift ``r1``/``r0`` (the module docstring's formula).

    >>> round(_shift(0.6, 0.5, 1.5), 4), _shift(0.6, 1.0, 1.0)
    (0.3333, 0.6)
    """
    a = p * r1
    d = a + (1.0 - p) * r0
    return a / d if d > 0 else p


class PriorShift:
    """Prior-shift correction from the labelled stream's and the training stream's class
    ratios (see the module docstring).

    Parameters:
        config: ``half_life`` (labelled snapshots; 0: no decay), ``min_examples`` (no
            correction before this many labelled snapshots).
    """

    def __init__(self, config: CalibrationConfig) -> None:
        self.config = config
        self._decay = 0.5 ** (1.0 / config.half_life) if config.half_life > 0 else 1.0
        self.natural = [0.0, 0.0]   # decayed counts of labelled snapshots (negative, positive)
        self.trained = [0.0, 0.0]   # ... of every example learned (with the rehearsal's)
        self.seen = 0               # labelled snapshots observed
        self.r1 = self.r0 = 1.0

    @property
    def base(self) -> float:
        """Positive share of the labelled snapshots (decayed)."""
        n = self.natural[0] + self.natural[1]
        return self.natural[1] / n if n else 0.5

    @property
    def train(self) -> float:
        """Positive share of everything the model learned (decayed)."""
        n = self.trained[0] + self.trained[1]
        return self.trained[1] / n if n else 0.5

    def update(self, y: int, replayed: list[int]) -> None:
        """One labelled snapshot ``y`` learned, followed by rehearsal examples ``replayed``."""
        d = self._decay
        nat, tr = self.natural, self.trained
        nat[0] *= d
        nat[1] *= d
        tr[0] *= d
        tr[1] *= d
        nat[y] += 1.0
        tr[y] += 1.0
        for r in replayed:
            tr[r] += 1.0
        self.seen += 1
        self._refresh()

    def _refresh(self) -> None:
        if self.seen < self.config.min_examples:
            self.r1 = self.r0 = 1.0
            return
        base = min(max(self.base, _EPS), 1 - _EPS)
        train = min(max(self.train, _EPS), 1 - _EPS)
        self.r1, self.r0 = base / train, (1 - base) / (1 - train)

    def apply(self, p: float) -> float:
        """The corrected probability of a model probability ``p``."""
        return _shift(p, self.r1, self.r0)

    def wrap(self, fn: Callable[[dict[str, float]], float]
             ) -> Callable[[dict[str, float]], float]:
        """``fn`` followed by :meth:`apply` with the ratios as they are now (for a compiled
        predict, re-made whenever the model or the counts change).

        >>> c = PriorShift(CalibrationConfig("prior_shift", half_life=0, min_examples=1))
        >>> c.update(0, [1])
        >>> f = c.wrap(lambda x: x["p"])
        >>> f({"p": 0.3}) == c.apply(0.3) < 0.3
        True
        """
        r1, r0 = self.r1, self.r0
        if r1 == 1.0 and r0 == 1.0:
            return fn

        def calibrated(x: dict[str, float]) -> float:
            return _shift(fn(x), r1, r0)

        return calibrated

    def state(self) -> dict[str, Any]:
        """JSON-able counts (for the model snapshot blob)."""
        return {"natural": list(self.natural), "trained": list(self.trained), "seen": self.seen}

    def load(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`state` (None: start afresh, e.g. a blob of an earlier release)."""
        state = state or {}
        self.natural = [float(v) for v in state.get("natural", (0.0, 0.0))]
        self.trained = [float(v) for v in state.get("trained", (0.0, 0.0))]
        self.seen = int(state.get("seen", 0))
        self._refresh()

    def describe(self) -> dict[str, Any]:
        """What the API, CLI and evaluation report show.

        >>> PriorShift(CalibrationConfig("prior_shift")).describe()["active"]
        False
        """
        return {"method": "prior_shift", "active": not (self.r1 == 1.0 and self.r0 == 1.0),
                "base_rate": round(self.base, 4), "train_rate": round(self.train, 4),
                "labelled": self.seen, "r1": round(self.r1, 4), "r0": round(self.r0, 4)}


def make_calibrator(config: CalibrationConfig) -> PriorShift | None:
    """The calibrator a target's ``calibration`` names (None: ``method: none``).

    >>> make_calibrator(CalibrationConfig()) is None
    True
    """
    if config.method == "none":
        return None
    if config.method == "prior_shift":
        return PriorShift(config)
    raise ValueError(f"unknown calibration method {config.method!r}")
