"""The users table's record: a user's state as JSON, with the scorer's cold part kept apart.

Most of an older user's state is the scorer's checkpoints and feature snapshots (``sc.cp``,
``sc.sn``: half of a 6 KB state after 300k events, docs/PERFORMANCE.md item 35), and the
scorer reads them only on label events and scheduled snapshots. Decoding and encoding them
on every event cost ~10 µs of orjson per event, 25 µs in all (item 36). So the record keeps
them as one *opaque* block that is parsed only when the scorer asks for it, and copied back
unparsed otherwise:

    {"~c":<n>,"~cp":[...],"~sn":{...},<the other members of the state>}

``<n>`` is the byte length of the cold members (``"~cp":[...],"~sn":{...}``) that follow the
header. They are written packed (:mod:`stream_app.state.cold_pack`: each feature name once
per block, ``"~n":...,"~k":...,"~x":...,"~pc":...,"~ps":...``), and read in either form.
The record is still one JSON object, written atomically as before (one changelog
record per event): tools that read the changelog (``redis-rebuild``, ``rules diff``) parse it
as they did, and a worker of an earlier release reads the hot part as its state (it then
finds no checkpoints or snapshots in ``sc``: pending training examples are lost, nothing
crashes). A state without cold data is plain JSON without a header; a record in the earlier
layout (``cp``/``sn`` inside ``sc``) is read as it is, and written in this layout the next
time the user's cold data is touched or the state is written.

Example:
    >>> rec = encode({"nd": 5, "sc": {"t0": 1, "cp": [[1, "convert"]], "sn": {}}})
    >>> rec                                  # (empty ones are left out)
    b'{"~c":21,"~cp":[[1,"convert"]],"nd":5,"sc":{"t0":1}}'
    >>> state, cold = decode(rec)
    >>> state, bytes(cold.raw)
    ({'nd': 5, 'sc': {'t0': 1}}, b'"~cp":[[1,"convert"]]')
    >>> cold(state["sc"]); state["sc"]["cp"]           # what the scorer does when it needs it
    [[1, 'convert']]
    >>> encode(state, cold) == rec
    True
"""

from __future__ import annotations

from typing import Any

import orjson

from stream_app.state.cold_pack import PACKED_MEMBERS, pack, unpack

__all__ = ["COLD_KEYS", "ColdState", "decode", "due_of", "encode", "merged"]

#: the scorer state's keys kept in the cold block, and their names there
COLD_KEYS = ("cp", "sn")
_RECORD_NAME = {"cp": "~cp", "sn": "~sn"}
_STATE_NAME = {v: k for k, v in _RECORD_NAME.items()}
HEADER = b'{"~c":'
_COMMA, _CLOSE = ord(","), ord("}")


class ColdState:
    """A user's cold scoring state as read from the record: parsed only when called.

    The scorer calls it (``cold(sc_state)``) before it reads or changes checkpoints or
    snapshots; the first call merges them into ``sc_state`` (keys the state already holds
    win: an earlier release wrote them there after this block). :meth:`detach` takes them
    out again before the state is encoded, and says whether the block must be rewritten.

    Example:
        >>> c = ColdState(b'"~cp":[],"~sn":{"convert":[[7,{"a|7d":1.5}]]}')
        >>> sc = {"t0": 1}
        >>> c.detach(sc), c.raw                  # never read: the block is copied back
        (False, b'"~cp":[],"~sn":{"convert":[[7,{"a|7d":1.5}]]}')
        >>> c(sc); sc["sn"]["convert"].append([9, {"a|7d": 2.0}])
        >>> c.detach(sc), sc                     # written again, packed (cold_pack)
        (True, {'t0': 1})
        >>> c.raw
        b'"~n":["a|7d"],"~k":[[0]],"~x":[[0,1.5],[0,2.0]],"~ps":{"convert":[[7,0],[9,1]]}'
    """

    __slots__ = ("raw", "loaded")

    def __init__(self, raw: bytes | memoryview | None = None) -> None:
        #: the cold members' JSON text (no braces), or None when there is no cold data
        self.raw = raw
        self.loaded = False

    def __call__(self, sc: dict[str, Any]) -> None:
        """Merge the cold data into the scoring state ``sc`` (once)."""
        if self.loaded:
            return
        self.loaded = True
        if self.raw:
            _merge(sc, unpack(orjson.loads(b"".join((b"{", self.raw, b"}")))))

    def detach(self, sc: dict[str, Any] | None, packed: bool = True) -> bool:
        """Take the cold keys out of ``sc``; True if the block changed (``raw`` is then the
        new block, None when nothing is left; written packed unless ``packed`` is False)."""
        if sc is None:
            return False
        if "~x" in sc:
            # a packed block's members that a release before cold_pack kept in the state and
            # wrote back: they go back into the block
            _merge(sc, _take_packed(sc))
        if not self.loaded:
            if not any(k in sc for k in COLD_KEYS):
                return False          # not read, not written: the block stays as it is
            self(sc)                  # written inline (new user, earlier layout): merge first
        cold = {}
        for k in COLD_KEYS:
            value = sc.pop(k, None)
            if value:
                cold[_RECORD_NAME[k]] = value
        raw = orjson.dumps(pack(cold) if packed else cold)[1:-1] if cold else None
        self.loaded = False           # the state holds none of it now: a call reads it again
        if raw == (bytes(self.raw) if self.raw else None):
            return False
        self.raw = raw
        return True


def _merge(sc: dict[str, Any], block: dict[str, Any]) -> None:
    """Put a block's members into the scoring state ``sc`` by their state names (keys ``sc``
    already holds win)."""
    for name, value in block.items():
        sc.setdefault(_STATE_NAME.get(name, name), value)


def _take_packed(d: dict[str, Any]) -> dict[str, Any]:
    """Take a packed block's members out of ``d``; the block's ``~cp``/``~sn`` unpacked."""
    return unpack({k: d.pop(k) for k in PACKED_MEMBERS if k in d})


def encode(state: dict[str, Any], cold: ColdState | None = None, *,
           packed: bool = True) -> bytes:
    """The record of ``state`` (cold data inline in ``state["sc"]`` or in ``cold``), as an
    exact-size ``bytes`` (orjson's own output keeps a ~4-8 KB buffer); ``packed=False``
    writes a changed cold block unpacked (the layout before :mod:`.cold_pack`).

    Example:
        >>> encode({"nd": 1})
        b'{"nd":1}'
        >>> encode({}, ColdState(b'"~cp":[1]'))
        b'{"~c":9,"~cp":[1]}'
    """
    if cold is None:
        cold = ColdState()
    cold.detach(state.get("sc"), packed)
    hot = orjson.dumps(state)
    block = cold.raw
    if not block:
        return memoryview(hot).tobytes()
    head = b'%s%d,' % (HEADER, len(block))
    if hot == b"{}":
        return b"".join((head, block, b"}"))
    return b"".join((head, block, b",", memoryview(hot)[1:]))


def _split(raw: bytes) -> tuple[memoryview | None, bytes | memoryview]:
    """(the cold members or None, the hot part as a JSON object)."""
    if not raw.startswith(HEADER):
        return None, raw
    start = len(HEADER)
    comma = raw.find(b",", start, start + 12)
    if comma > start:
        try:
            n = int(raw[start:comma])
        except ValueError:
            n = -1
        end = comma + 1 + n
        if (n > 0 and end < len(raw) and raw[end] in (_COMMA, _CLOSE)
                and raw.startswith(b'"~', comma + 1)):
            view = memoryview(raw)
            hot = b"{}" if raw[end] == _CLOSE else b"{" + view[end + 1:]
            return view[comma + 1:end], hot
    return None, b""   # a header that does not add up: read the whole record


def decode(raw: bytes) -> tuple[dict[str, Any], ColdState]:
    """The hot state of a record and its cold block (parsed when the scorer calls it).

    A record whose header does not add up (e.g. rewritten by hand) is parsed whole, with
    its cold members moved back into ``sc``.

    Example:
        >>> decode(b'{"nd":1,"sc":{"cp":[2]}}')[0]          # the earlier layout
        {'nd': 1, 'sc': {'cp': [2]}}
        >>> decode(b'{"~c":99,"~cp":[2],"nd":1}')[0]         # a wrong length
        {'nd': 1, 'sc': {'cp': [2]}}
    """
    block, hot = _split(raw)
    if block is not None:
        return orjson.loads(hot), ColdState(block)
    if hot:
        return orjson.loads(hot), ColdState()
    return merged(orjson.loads(raw)), ColdState()


def merged(state: dict[str, Any]) -> dict[str, Any]:
    """A state parsed whole from a record, with its cold members back inside ``sc`` (the
    scorer's in-memory layout; for tools that read the changelog).

    Example:
        >>> merged({"~c": 9, "~cp": [1], "nd": 2})
        {'nd': 2, 'sc': {'cp': [1]}}
    """
    state.pop("~c", None)
    if "~x" in state:
        state.update(_take_packed(state))
    for name, key in _STATE_NAME.items():
        if name in state:
            sc = state.get("sc")
            if sc is None:
                sc = state["sc"] = {}
            sc.setdefault(key, state.pop(name))
    return state


def due_of(raw: bytes) -> int:
    """The state's next due time (``nd``) without parsing its cold block.

    Example:
        >>> due_of(encode({"nd": 7, "sc": {"sn": {"convert": [[1, {}]]}}}))
        7
    """
    return decode(raw)[0]["nd"]
