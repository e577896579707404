"""Feature vectors as the user state keeps them: packed, so that the state's JSON is cheap.

A user's scoring state holds feature snapshots and checkpoints (``sn``, ``cp``), each with a
whole feature vector: most of the state's bytes, and mostly floats, the slowest part of the
JSON that every event decodes and encodes. A packed vector is a list
``[base64 of its values as little-endian doubles, name, name, ...]``: its values round-trip
bit for bit and its names in order, and the JSON codec copies one string instead of parsing
and printing a float per feature. Only a vector whose values are all finite floats is packed
(a JSON round trip would not keep a NaN); any other stays a dict, and :func:`unpack` takes both.

Example:
    >>> x = {"course_view|n": 0.6931471805599453, "age_days": 0.0, "recency": 1.0}
    >>> p = pack(x)
    >>> p[1:]
    ['course_view|n', 'age_days', 'recency']
    >>> unpack(p) == x and list(unpack(p)) == list(x)
    True
    >>> pack({"a": float("nan")}), pack({}), unpack({"a": 1})
    ({'a': nan}, {}, {'a': 1})
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

__all__ = ["pack", "unpack"]

_isfinite = math.isfinite


def pack(x: dict[str, float]) -> list[str] | dict[str, float]:
    """``x`` packed (see the module), or ``x`` itself if it is empty or a value is not a
    finite float."""
    if not x:
        return x
    values = list(x.values())
    for v in values:
        if v.__class__ is not float or not _isfinite(v):
            return x
    raw = struct.pack(f"<{len(values)}d", *values)
    return [base64.b64encode(raw).decode("ascii"), *x]


def unpack(p: Any) -> dict[str, float]:
    """The feature vector of a stored one: packed, or a dict (kept as it is)."""
    if p.__class__ is dict:
        return p
    names = p[1:]
    values = struct.unpack(f"<{len(names)}d", base64.b64decode(p[0]))   # as many, or an error
    return dict(zip(names, values))  # noqa: B905 - same length: struct checked it
