"""The worker's runtime singleton (engine, scorer, clock, Redis projection).

Kept apart from the agents so every app module can import it without import cycles.
"""

from __future__ import annotations

from stream_app.app.runtime import Runtime
from stream_app.clock import AheadCap, reference_ms
from stream_app.config import get_settings

_settings = get_settings()
runtime = Runtime.create(_settings)
#: the clock far-future events are judged against: the wall clock, or stream-app dev's
#: simulated time (epoch ms)
NOW_MS = reference_ms(_settings.clock_speed, _settings.clock_origin_ms)
#: what an event may move the worker's clocks to (the tag sweep's, the business windows'):
#: at most NOW_MS plus STREAM_APP_CLOCK_MAX_AHEAD_MS (off with the far-future guard)
AHEAD_CAP = AheadCap(_settings.clock_max_ahead_ms
                     if _settings.max_future_ms and _settings.clock_max_ahead_ms else None,
                     NOW_MS)
