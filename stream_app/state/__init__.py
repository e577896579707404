"""Per-user state records: layout, accumulation, pruning, the table record (pure)."""

from stream_app.state.record import StateUpdater, day_of, new_state
from stream_app.state.requirements import PairSpec, PropSpec, Requirements, Selector

__all__ = ["PairSpec", "PropSpec", "Requirements", "Selector", "StateUpdater", "day_of",
           "new_state"]
