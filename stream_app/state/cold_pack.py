"""The scorer's cold block packed: each feature vector's names written once per block.

A checkpoint (``cp``) or snapshot (``sn``) holds the feature dict the scorer saw then, ~40
names such as ``"ad_landing|7d"`` with their values. An older user's block holds a handful
of them, mostly with the same names in the same order, and a scheduled snapshot is the same
dict for every target. Written as they are, the names are half of the block, and the block
is half of every changelog record the worker writes (docs/PERFORMANCE.md item 46).

Packed, the block says each name once (``~n``), each distinct name sequence once as name
indexes (``~k``), each feature dict once as its values (``~x``: ``[<sequence index>, value,
value, ...]``), and the checkpoints and snapshots refer to those by index (``~pc``,
``~ps``: the ``cp`` and ``sn`` entries with the dict replaced by its index). A block with
one feature dict is written as it is: there is nothing to share. Nothing is rounded or
reordered: unpacking gives dicts equal to the originals with their keys in the same order,
so a model learns from exactly what it learned from before. The packed members have new
names, so a release that does not know them finds no checkpoints or snapshots (pending
training examples are lost, nothing crashes), as with the block itself
(:mod:`stream_app.state.codec`).

Example:
    >>> x = {"a|7d": 0.5, "b|7d": 1.0}
    >>> block = pack({"~cp": [[1, "convert", "g", dict(x), 0.2, 0.1, "rules"]],
    ...               "~sn": {"convert": [[1, x]], "at_risk": [[1, x]]}})
    >>> block["~n"], block["~k"], block["~x"]
    (['a|7d', 'b|7d'], [[0, 1]], [[0, 0.5, 1.0], [0, 0.5, 1.0]])
    >>> block["~pc"], block["~ps"]
    ([[1, 'convert', 'g', 0, 0.2, 0.1, 'rules']], {'convert': [[1, 1]], 'at_risk': [[1, 1]]})
    >>> unpack(block)["~sn"]["at_risk"][0][1]
    {'a|7d': 0.5, 'b|7d': 1.0}
"""

from __future__ import annotations

from typing import Any

__all__ = ["PACKED_MEMBERS", "pack", "unpack"]

#: the position of the feature dict in a checkpoint entry and in a snapshot entry
CP_X, SN_X = 3, 1
#: the members of a packed block
PACKED_MEMBERS = ("~n", "~k", "~x", "~pc", "~ps")


class _Vectors:
    """The names, name sequences and vectors of one block, in first-seen order. A vector is
    shared when the very same dict is referred to twice (a scheduled snapshot is one dict
    for every target; :func:`unpack` hands a shared vector out as one dict again)."""

    __slots__ = ("names", "name_index", "shapes", "shape_index", "vectors", "vector_index")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.name_index: dict[str, int] = {}
        self.shapes: list[list[int]] = []
        self.shape_index: dict[tuple[str, ...], int] = {}
        self.vectors: list[list[Any]] = []
        self.vector_index: dict[int, int] = {}     # id(dict) -> its vector's index

    def ref(self, x: dict[str, Any]) -> int:
        """The index of ``x``'s vector (added if ``x`` was not seen in this block)."""
        i = self.vector_index.get(id(x))
        if i is not None:
            return i
        seq = tuple(x)
        s = self.shape_index.get(seq)
        if s is None:
            s = self.shape_index[seq] = len(self.shapes)
            index, names = self.name_index, self.names
            shape = []
            for name in seq:
                n = index.get(name)
                if n is None:
                    n = index[name] = len(names)
                    names.append(name)
                shape.append(n)
            self.shapes.append(shape)
        i = self.vector_index[id(x)] = len(self.vectors)
        self.vectors.append([s, *x.values()])
        return i


def pack(cold: dict[str, Any]) -> dict[str, Any]:
    """The packed form of a cold block's members (``~cp``, ``~sn``); the block unchanged
    when it holds one feature dict (nothing to share) or an entry is not in the scorer's
    layout (its dict is not where it should be).

    Example:
        >>> pack({"~cp": [[1, "t", "g", None, 0, 0, "r"]]})      # no dict: left as it is
        {'~cp': [[1, 't', 'g', None, 0, 0, 'r']]}
    """
    cps = cold.get("~cp") or []
    sns = cold.get("~sn") or {}
    if not all(_holds_dict(e, CP_X) for e in cps) or not isinstance(sns, dict) or not all(
            isinstance(v, list) and all(_holds_dict(e, SN_X) for e in v)
            for v in sns.values()):
        return cold
    if len(cps) + sum(map(len, sns.values())) < 2:
        return cold                # one feature dict: its names are written once either way
    vec = _Vectors()
    out = {k: v for k, v in cold.items() if k not in ("~cp", "~sn")}   # (none today)
    packed_cp = [_with(e, CP_X, vec.ref(e[CP_X])) for e in cps]
    packed_sn = {t: [_with(e, SN_X, vec.ref(e[SN_X])) for e in v] for t, v in sns.items()}
    out["~n"] = vec.names
    out["~k"] = vec.shapes
    out["~x"] = vec.vectors
    if "~cp" in cold:
        out["~pc"] = packed_cp
    if "~sn" in cold:
        out["~ps"] = packed_sn
    return out


def unpack(block: dict[str, Any]) -> dict[str, Any]:
    """A block's members as the scorer keeps them (``~cp``, ``~sn`` with dicts); a block
    that is not packed is returned as it is. Entries that referred to one vector share one
    dict, as they did when packed.

    Example:
        >>> unpack({"~cp": [[1, "t", "g", {"a": 1}, 0, 0, "r"]]})["~cp"][0][3]
        {'a': 1}
    """
    if "~x" not in block:
        return block
    names, vectors = block["~n"], block["~x"]
    shapes = [[names[n] for n in shape] for shape in block["~k"]]
    made: dict[int, dict[str, Any]] = {}

    def x(i: int) -> dict[str, Any]:
        d = made.get(i)
        if d is None:
            row = vectors[i]
            d = made[i] = dict(zip(shapes[row[0]], row[1:], strict=True))
        return d

    out = {k: v for k, v in block.items() if k not in PACKED_MEMBERS}
    if "~pc" in block:
        out["~cp"] = [_with(e, CP_X, x(e[CP_X])) for e in block["~pc"]]
    if "~ps" in block:
        out["~sn"] = {t: [_with(e, SN_X, x(e[SN_X])) for e in v]
                      for t, v in block["~ps"].items()}
    return out


def _holds_dict(entry: Any, at: int) -> bool:
    return isinstance(entry, list) and len(entry) > at and isinstance(entry[at], dict)


def _with(entry: list[Any], at: int, value: Any) -> list[Any]:
    out = list(entry)
    out[at] = value
    return out
