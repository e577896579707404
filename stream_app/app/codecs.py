"""Faust codecs: ``utf8`` for keys and ``orjson`` for JSON values (state, outputs).

Example:
    >>> Utf8Codec().loads(Utf8Codec().dumps("u1"))
    'u1'
    >>> OrjsonCodec().loads(OrjsonCodec().dumps({"a": [1, 2]}))
    {'a': [1, 2]}
"""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs


class Utf8Codec(codecs.Codec):
    """str <-> UTF-8 bytes."""

    def _dumps(self, s: Any) -> bytes:
        return s.encode("utf-8") if isinstance(s, str) else bytes(s)

    def _loads(self, s: bytes) -> str:
        return s.decode("utf-8", "replace")


class OrjsonCodec(codecs.Codec):
    """JSON-able Python values <-> orjson bytes."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


def register() -> None:
    """Make the codecs available to faust by name (idempotent)."""
    codecs.register("utf8", Utf8Codec())
    codecs.register("orjson", OrjsonCodec())
