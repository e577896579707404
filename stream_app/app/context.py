"""The worker's runtime singleton (engine, scorer, clock, Redis projection).

Kept apart from the agents so every app module can import it without import cycles.
"""

from __future__ import annotations

from stream_app.app.runtime import Runtime
from stream_app.config import get_settings

runtime = Runtime.create(get_settings())
