"""The detector interface: score a point against the learned normal, then learn from it.

A detector works on the stabilised scale (see :mod:`stream_app.anomaly.transform`): it gets
``(ts_ms, y, var)`` and answers a :class:`Verdict` with a z-score and the expected value.

Example:
    >>> v = Verdict(z=-4.2, expected=8.0, sd=1.0)
    >>> v.band(3.0)
    (5.0, 11.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(slots=True, unsafe_hash=True)
class Verdict:
    """``z``: standardised residual of the point; ``expected``/``sd`` on the stable scale.

    Not frozen (one per point scored; a frozen dataclass costs ~0.5 µs more to make); treat
    verdicts as immutable (they hash by value)."""

    z: float
    expected: float
    sd: float
    warming: bool = False

    def band(self, z: float) -> tuple[float, float]:
        """Expected range ``expected +- z*sd`` on the stable scale."""
        return self.expected - z * self.sd, self.expected + z * self.sd


class Detector(Protocol):
    """Online one-series detector."""

    def update(self, ts_ms: int, y: float, var: float, hold: bool = False) -> Verdict:
        """Score ``y`` at ``ts_ms`` against the learned normal, then learn from it (not
        when ``hold``: the series' alarm is open or building)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready learned state."""
        ...
