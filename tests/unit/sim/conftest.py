"""Fixtures of the sim tests: one cached reference run keeps the suite fast."""

from __future__ import annotations

import pytest

from .fixtures import Run, make_run


@pytest.fixture(scope="session")
def run() -> Run:
    """The reference run: 2,500 people over 60 days, seed 11."""
    return make_run()
