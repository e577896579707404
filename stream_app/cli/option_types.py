"""Click option types shared by the commands.

Example:
    >>> import click
    >>> t = FiniteFloatRange(min=0)
    >>> t.convert("2.5", None, None)
    2.5
    >>> t.convert("nan", None, None)
    Traceback (most recent call last):
    ...
    click.exceptions.BadParameter: 'nan' is not a finite number.
"""

from __future__ import annotations

import math
from typing import Any

import click

__all__ = ["FiniteFloatRange"]


class FiniteFloatRange(click.FloatRange):
    """A :class:`click.FloatRange` that also refuses NaN and infinities (``nan`` passes
    click's range check, every comparison with it being false: ``--duration nan`` ran a
    stack that stopped at once)."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number
