"""The release gate: a model drives tags and alerts only while its prequential precision and
recall at the alert threshold, over the last N labels, pass the configured bars.

It opens when both pass (with at least ``min_labels`` labels in the window, and a precision
at least ``min_lift`` times the window's positive rate, so that a burst of positives cannot
open it for a model that flags everyone) and closes when either falls more than
``hysteresis`` below its bar, so that it does not flap at the edge.

Every label is first scored by the current model (before the model learns from it), so the
window holds honest out-of-sample predictions. A score is counted as flagged as the rules
read it: at the published resolution, 0.01 (:func:`flagged`; 0.596 is 0.60, flagged at 0.6).

Example:
    >>> from stream_app.scoring.config import GateConfig
    >>> g = Gate(GateConfig(window=10, min_labels=4, min_precision=0.6, min_recall=0.5,
    ...                     hysteresis=0.05), 0.5)
    >>> for p, y in [(0.9, 1), (0.8, 1), (0.1, 0), (0.2, 0)]:
    ...     g.update(p, y)
    >>> g.is_open, g.precision, g.recall
    (True, 1.0, 1.0)
    >>> for p, y in [(0.9, 0), (0.9, 0), (0.9, 0), (0.1, 1)]:
    ...     g.update(p, y)
    >>> g.is_open, round(g.precision, 2)
    (False, 0.4)
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from stream_app.scoring.config import GateConfig
from stream_app.scoring.points import published

__all__ = ["Gate", "GateState", "flagged"]


def flagged(p: float, threshold: float) -> bool:
    """Whether the score ``p`` is at or above ``threshold`` as the rules read it: at the
    published resolution (:func:`~stream_app.scoring.points.published`, 2 places; the rules'
    ``score.X``, the API's and the alerts' score). The gate and the evaluation's precision
    and recall count this, so they measure what the tags act on (QA41 F5: they compared the
    unrounded score, and a score in [0.595, 0.6) that made a lead high counted as unflagged).

    >>> flagged(0.5984, 0.6), flagged(0.5949, 0.6), flagged(0.7, 0.7)
    (True, False, True)
    """
    return published(p) >= threshold


@dataclass(frozen=True)
class GateState:
    """What the API, metrics and CLI show about one target's model."""

    target: str
    open: bool
    version: str
    labels: int            # labels in the window
    learned: int           # labels the model learned from in total
    precision: float
    recall: float
    lift: float
    positive_rate: float
    threshold: float
    min_precision: float
    min_recall: float
    min_labels: int
    min_lift: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Gate:
    """Rolling (prediction, label) window with precision/recall at ``threshold``."""

    def __init__(self, config: GateConfig, threshold: float) -> None:
        self.config = config
        self.threshold = threshold
        self._window: deque[tuple[float, int]] = deque(maxlen=config.window)
        self._tp = self._fp = self._fn = self._pos = 0
        self._open = False

    def _count(self, p: float, y: int, sign: int) -> None:
        hit = flagged(p, self.threshold)
        if y:
            self._pos += sign
            if hit:
                self._tp += sign
            else:
                self._fn += sign
        elif hit:
            self._fp += sign

    def update(self, p: float, y: int) -> None:
        """Add one prequential prediction ``p`` with its true label ``y``."""
        y = 1 if y else 0
        if len(self._window) == self._window.maxlen:
            old_p, old_y = self._window[0]
            self._count(old_p, old_y, -1)
        self._window.append((p, y))
        self._count(p, y, 1)
        self._open = self._decide()

    @property
    def lift(self) -> float:
        """Precision over the window's positive rate (1.0: no better than flagging everyone)."""
        rate = self._pos / self.n if self.n else 0.0
        return self.precision / rate if rate else 0.0

    def _decide(self) -> bool:
        c = self.config
        if self.n < c.min_labels or self.lift < c.min_lift:
            return False
        if self._open:   # hysteresis: close only clearly below the bars
            h = c.hysteresis
            return self.precision >= c.min_precision - h and self.recall >= c.min_recall - h
        return self.precision >= c.min_precision and self.recall >= c.min_recall

    @property
    def n(self) -> int:
        return len(self._window)

    @property
    def precision(self) -> float:
        d = self._tp + self._fp
        return self._tp / d if d else 0.0

    @property
    def recall(self) -> float:
        d = self._tp + self._fn
        return self._tp / d if d else 0.0

    @property
    def is_open(self) -> bool:
        return self._open

    def pairs(self) -> list[tuple[float, int]]:
        return list(self._window)

    def load_pairs(self, pairs: list[tuple[float, int]], is_open: bool | None = None) -> None:
        """Restore the window (and the open flag, when known) from a snapshot."""
        self._window.clear()
        self._tp = self._fp = self._fn = self._pos = 0
        self._open = False
        for p, y in pairs:
            self.update(p, y)
        if is_open is not None:
            self._open = is_open

    def state(self, target: str, version: str, learned: int) -> GateState:
        c = self.config
        return GateState(
            target=target, open=self.is_open, version=version, labels=self.n, learned=learned,
            precision=round(self.precision, 4), recall=round(self.recall, 4),
            lift=round(self.lift, 3),
            positive_rate=round(self._pos / self.n, 4) if self.n else 0.0,
            threshold=self.threshold, min_precision=c.min_precision, min_recall=c.min_recall,
            min_labels=c.min_labels, min_lift=c.min_lift,
        )
