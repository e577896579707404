"""Redis key layout of the profile/segment projection (shared by writers and the API).

All keys of a tenant start with ``sa:{tenant}:`` so tenants never see each other's data.

=================================  ======  ==============================================
key                                type    content
=================================  ======  ==============================================
``sa:{t}:user:{uid}``              hash    ``tag:<tag_id>`` -> JSON value, ``score:<target>``
                                           -> ``[score, layer, source]`` (before session 27:
                                           a float, with ``layer:``/``source:<target>``
                                           fields; still read), ``upd`` -> ms,
                                           ``_id`` -> the user's integer id (bitmaps),
                                           ``~w`` -> the why records of the user's tags,
                                           packed (see :func:`pack_why`)
``sa:{t}:wd``                      hash    why shape code -> JSON shape ``[tag, rule version,
                                           rule set, case, [value names], {extras}]``
                                           (content-addressed, shared by every user)
``sa:{t}:seg:{tag_id}={value}``    bitmap  bit ``n`` set: the user of integer id ``n`` holds that
                                           (enumerated/boolean/text/set) value
``sa:{t}:num:{tag_id}``            zset    integer user id -> value, for numeric tags
``sa:{t}:nb:{tag_id}:{i}``         bitmap  users whose numeric value is in bucket ``i`` of the
                                           tag's edges (``sa:{t}:nbe:{tag_id}``, a string
                                           ``e1,e2,...``: bucket 0 is ``< e1``, bucket ``i``
                                           is ``[e_i, e_i+1)``)
``sa:{t}:ids:{n // 128}``          hash    ``n % 128`` -> user id (integer id -> user id)
``sa:{t}:nextid``                  string  next integer id to assign (``INCR``)
``sa:{t}:why:{uid}``               hash    old layout (before ``~w``): tag_id -> compact JSON
                                           why record (``compact_why``); still read, no
                                           longer written (``redis-rebuild`` migrates)
``sa:{t}:timeline:{uid}``          list    newest-first compact tag changes (the last
                                           ``redis_timeline``, default 0 = none; the full
                                           history is the ``tags.changes`` topic)
``sa:{t}:vals:{tag_id}``           set     values present of enumerated/text/set tags
``sa:{t}:users``                   bitmap  every user of the tenant (for NOT)
``sa:tenants``                     set     tenant names
=================================  ======  ==============================================

Integer ids are assigned by the writer's Lua scripts (``INCR nextid`` when the user hash has
no ``_id``; atomic, so two workers never collide) and are never reused.

Example:
    >>> ids_key("t1", 300), ID_FIELD
    ('sa:t1:ids:2', '_id')
    >>> user_key("default", "u1"), seg_key("default", "activity", "high")
    ('sa:default:user:u1', 'sa:default:seg:activity=high')
    >>> seg_key("t1", "refund", True)
    'sa:t1:seg:refund=true'
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson

PREFIX = "sa"
TIMELINE_MAX = 5
"""Tag changes kept per user in Redis (newest first); older ones are on ``tags.changes``."""
WHY_MAX_BYTES = 64
"""Budget of one stored why record: Redis keeps a hash compact (listpack) while every value
is at most ``hash-max-listpack-value`` (64) bytes; one longer value makes the whole hash a
hashtable (~60 B more per field)."""
TIMELINE_FIELDS = ("tag_id", "old", "new", "reason", "ts", "seq", "trigger", "rule_version")
"""Fields of a tag-change record kept in the Redis timeline, in the stored array's order."""
WHY_FIELDS = (("v", "rule_version"), ("t", "trigger"), ("rs", "ruleset"), ("c", "case"),
              ("x", "values"))
"""Short stored name and API name of the why record's fields, most important first."""


def value_token(value: Any) -> str:
    """Canonical text of a tag value inside a key (``True`` -> ``true``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def user_key(tenant: str, uid: str) -> str:
    return f"{PREFIX}:{tenant}:user:{uid}"


def score_field(target: str) -> str:
    """Field of the user hash holding a model target's ``[score, layer, source]`` (one field
    instead of three: ~30 B less per target and user).

    Example:
        >>> score_field("convert")
        'score:convert'
    """
    return f"score:{target}"


def score_fields(scores: dict[str, float], layers: dict[str, Any], sources: dict[str, Any]
                 ) -> dict[str, tuple[float, Any, Any]]:
    """The user-hash fields of a scoring step: :func:`score_field` of each target ->
    ``(score, layer, source)``.

    Example:
        >>> score_fields({"convert": 0.37}, {"convert": "medium"}, {"convert": "model"})
        {'score:convert': (0.37, 'medium', 'model')}
    """
    return {score_field(t): (v, layers.get(t), sources.get(t)) for t, v in scores.items()}


def seg_key(tenant: str, tag_id: str, value: Any) -> str:
    return f"{PREFIX}:{tenant}:seg:{tag_id}={value_token(value)}"


def num_key(tenant: str, tag_id: str) -> str:
    return f"{PREFIX}:{tenant}:num:{tag_id}"


def why_key(tenant: str, uid: str) -> str:
    return f"{PREFIX}:{tenant}:why:{uid}"


def timeline_key(tenant: str, uid: str) -> str:
    return f"{PREFIX}:{tenant}:timeline:{uid}"


def user_keys(tenant: str, uid: str) -> tuple[str, str, str]:
    """Every key named after one user: its hash, its old-layout why hash and its timeline
    (a user's other traces are members: its bit in the bitmaps, its integer id in the
    sorted sets and the ``ids:`` map). Compare key names with these, not by substring:
    ``lead-7`` is part of ``lead-77``'s key names.

    Example:
        >>> user_keys("default", "lead-7")
        ('sa:default:user:lead-7', 'sa:default:why:lead-7', 'sa:default:timeline:lead-7')
        >>> "sa:default:user:lead-77" in user_keys("default", "lead-7")
        False
    """
    return user_key(tenant, uid), why_key(tenant, uid), timeline_key(tenant, uid)


def values_key(tenant: str, tag_id: str) -> str:
    return f"{PREFIX}:{tenant}:vals:{tag_id}"


def users_key(tenant: str) -> str:
    return f"{PREFIX}:{tenant}:users"


TENANTS_KEY = f"{PREFIX}:tenants"
#: epoch ms at which the last completed ``stream-app redis-rebuild`` started reading the
#: table: writes a worker lost before then are in Redis again (stream_app/app/unwritten.py)
REBUILT_KEY = f"{PREFIX}:rebuilt_from"
ID_FIELD = "_id"
"""Field of the user hash holding the user's integer id (not shown by the API)."""
IDS_PER_HASH = 128
"""Integer ids per ``ids:`` hash: small enough to stay a listpack (~25 B per user)."""


def ids_key(tenant: str, n: int) -> str:
    """The hash mapping integer id ``n`` (field ``n % 128``) to its user id."""
    return f"{PREFIX}:{tenant}:ids:{n // IDS_PER_HASH}"


def next_id_key(tenant: str) -> str:
    return f"{PREFIX}:{tenant}:nextid"


def bucket_key(tenant: str, tag_id: str, i: int) -> str:
    """Bitmap of the users whose value of numeric ``tag_id`` is in bucket ``i``."""
    return f"{PREFIX}:{tenant}:nb:{tag_id}:{i}"


def edges_key(tenant: str, tag_id: str) -> str:
    """The bucket edges of a numeric tag as written (``"0,1,5"``), set once by the writer."""
    return f"{PREFIX}:{tenant}:nbe:{tag_id}"


def prefix(tenant: str) -> str:
    return f"{PREFIX}:{tenant}:"


def compact_change(change: dict[str, Any]) -> list[Any]:
    """The timeline entry of a tag-change record: the values of ``TIMELINE_FIELDS`` as an
    array (no evidence, no user/tenant/event id/family); :func:`expand_change` reverses it.

    Example:
        >>> c = compact_change({"user_id": "u1", "tenant": "t", "tag_id": "activity",
        ...                     "old": None, "new": "low", "seq": 3, "evidence": {}})
        >>> c
        ['activity', None, 'low', None, None, 3]
        >>> expand_change(c)
        {'tag_id': 'activity', 'old': None, 'new': 'low', 'seq': 3}
    """
    out = [change.get(k) for k in TIMELINE_FIELDS]
    while out and out[-1] is None:
        out.pop()
    return out


def expand_change(stored: Any) -> dict[str, Any]:
    """A stored timeline entry as a tag-change dict (older dict entries pass through)."""
    if isinstance(stored, list):
        out = dict(zip(TIMELINE_FIELDS, stored, strict=False))
        return {k: v for k, v in out.items() if v is not None or k in ("old", "new")}
    return stored


def compact_why(tag_id: str, why: dict[str, Any]) -> dict[str, Any]:
    """The why record as stored in Redis, at most ``WHY_MAX_BYTES`` of JSON: short names
    (``WHY_FIELDS``), taken in order of importance while they fit; ``rule`` (the tag id),
    ``value`` (in the user hash) and ``recent_events`` (on ``tags.changes``) are not stored;
    ``o: 1`` says something did not fit. :func:`expand_why` restores the API's names.

    Example:
        >>> w = compact_why("activity", {"rule": "activity", "rule_version": 1,
        ...     "values": {"count(x)": 4}, "value": "high", "trigger": "e9",
        ...     "recent_events": ["e7", "e8", "e9"], "case": "count(x) > 3"})
        >>> w
        {'v': 1, 't': 'e9', 'c': 'count(x) > 3', 'x': {'count(x)': 4}}
        >>> expand_why("activity", w)["values"], expand_why("activity", w)["rule"]
        ({'count(x)': 4}, 'activity')
        >>> compact_why("a", {"trigger": "e1", "values": {"x": "y" * 80}})
        {'t': 'e1', 'o': 1}
    """
    out: dict[str, Any] = {}
    size, omitted = 2, False  # "{}"
    known = {long for _, long in WHY_FIELDS}
    extra = [(k, k) for k in why if k not in known
             and k not in ("recent_events", "value") and not (k == "rule" and why[k] == tag_id)]
    for short, long in (*WHY_FIELDS, *extra):
        if long not in why:
            continue
        cost = len(orjson.dumps({short: why[long]})) - 1  # '"k":v' plus a comma
        if size + cost <= WHY_MAX_BYTES - 6:  # room for ',"o":1'
            out[short] = why[long]
            size += cost
        else:
            omitted = True
    if omitted:
        out["o"] = 1
    return out


def expand_why(tag_id: str, stored: dict[str, Any]) -> dict[str, Any]:
    """A stored why record as the API shows it (long names, ``rule``, ``omitted``)."""
    if not isinstance(stored, dict):
        return stored
    names = dict(WHY_FIELDS)
    out: dict[str, Any] = {"rule": tag_id}
    for k, v in stored.items():
        if k == "o":
            out["omitted"] = True
        else:
            out[names.get(k, k)] = v
    return out


# -- packed why records (field ``~w`` of the user hash) ---------------------------------------

WHY_FIELD = "~w"
"""Field of the user hash holding the packed why records of the user's current tags."""
WHY_CODE_LEN = 4
"""Characters of a shape code (base64url of SHA-1: 24 bits; a tenant has a few dozen shapes
per rule set version)."""
SAME = b"{}"
"""A packed value equal to the tag's current value (which the user hash holds already). A
record whose only value is the tag's is stored as its shape code alone (no body: its shape has
one value name, so an empty body cannot mean no values); ``code{}`` (written before) still
reads the same."""
_WHY_KNOWN = ("rule", "rule_version", "ruleset", "case", "values", "value", "trigger",
              "recent_events")
_WHY_KNOWN_SET = frozenset(_WHY_KNOWN)
_SHAPES: dict[tuple[Any, ...], tuple[str, bytes]] = {}
"""Shapes computed (:func:`why_shape`), by their parts: a tenant has a few dozen per rule set
(cleared when it reaches ``_SHAPES_MAX``)."""
_SHAPES_MAX = 4096


def why_dict_key(tenant: str) -> str:
    """The tenant's why shapes: shape code -> JSON shape (see :func:`why_shape`)."""
    return f"{PREFIX}:{tenant}:wd"


def why_shape(tag_id: str, why: dict[str, Any]) -> tuple[str, bytes]:
    """The part of a why record that many users share, and its code: ``[tag, rule_version,
    ruleset, case, [value names], {other keys}]`` (no trigger, no recent events, no values).

    Example:
        >>> code, shape = why_shape("activity", {"rule": "activity", "rule_version": 1,
        ...     "values": {"count(x)": 4}, "case": "count(x) > 3", "trigger": "e9"})
        >>> shape
        b'["activity",1,null,"count(x) > 3",["count(x)"],{}]'
        >>> len(code) == WHY_CODE_LEN and code == why_shape("activity", {"rule_version": 1,
        ...     "case": "count(x) > 3", "values": {"count(x)": 9}})[0]
        True
    """
    rv = why.get("rule_version")
    key = None
    if why.keys() <= _WHY_KNOWN_SET:  # no extra keys: the shape is a function of these
        key = (tag_id, rv, rv.__class__, why.get("ruleset"), why.get("case"), why.get("rule"),
               tuple(why.get("values") or ()))
        try:
            return _SHAPES[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable part: not cached
            key = None
    extra = {k: v for k, v in why.items() if k not in _WHY_KNOWN}
    if why.get("rule") not in (None, tag_id):
        extra["rule"] = why["rule"]
    shape = orjson.dumps([tag_id, rv, why.get("ruleset"), why.get("case"),
                          list(why.get("values") or {}), extra], option=orjson.OPT_SORT_KEYS)
    code = base64.urlsafe_b64encode(hashlib.sha1(shape).digest())[:WHY_CODE_LEN].decode()
    if key is not None:
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        _SHAPES[key] = (code, shape)
    return code, shape


def pack_why(tag_id: str, why: dict[str, Any]) -> tuple[str, bytes, bytes]:
    """``(code, shape, record)``: the record stored for one tag in the packed field is the
    shape code and the JSON of each value, comma-joined (a value equal to the tag's value is
    :data:`SAME`; ``|`` is escaped), escaped as the content of a JSON string; a record whose
    one value is the tag's is the code alone.

    Example:
        >>> code, _, rec = pack_why("goal", {"rule_version": 1, "value": "career_switch",
        ...     "values": {"profile.goal": "career_switch", "n": 2, "s": 'a"|b'}})
        >>> rec[len(code):len(code) + 5]
        b'{},2,'
        >>> unpack_why(b'"' + rec + b'"') == [(code, [SAME, 2, 'a"|b'])]
        True
        >>> code, _, rec = pack_why("pts", {"value": 12, "values": {"points": 12}})
        >>> rec == code.encode(), pack_why("ch", {"value": "x", "values": {"c": "x"}})[2][4:]
        (True, b'')
    """
    code, shape = why_shape(tag_id, why)
    values = list((why.get("values") or {}).values())
    value = why.get("value")
    if len(values) == 1 and value.__class__ is str and values[0].__class__ is str and value \
            and values[0] == value:
        # one value, the tag's text (first/last channel, profile fields: ~40% of records):
        # what the general path makes of it: the code alone
        return code, shape, code.encode()
    if len(values) == 1 and value is not None and orjson.dumps(values[0]) == orjson.dumps(value):
        return code, shape, code.encode()  # one value, the tag's (a number, a list ...)
    if value is not None and value not in values:
        # no value can equal the tag's (a JSON-equal pair is == in Python, but for None/NaN)
        body = orjson.dumps(values)
    else:
        body = _same_marked(values, value)
    # the JSON text as the content of a JSON string: orjson's output has no control
    # characters, so only backslashes and quotes need escaping
    body = body[1:-1].replace(b"|", b"\\u007c").replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return code, shape, code.encode() + body


_SAME_JSON = orjson.Fragment(SAME)
_NOT_TEXT = frozenset((int, float, bool, type(None), list, dict))
"""Classes orjson never writes as a JSON string."""


def _same_marked(values: list[Any], value: Any) -> bytes:
    """The JSON array of ``values`` with :data:`SAME` for each one whose JSON is the tag
    value's (when that is longer than ``SAME``).

    Example:
        >>> _same_marked(["x", 1, None, "y"], "x"), _same_marked([1, 100], 100)
        (b'[{},1,null,"y"]', b'[1,{}]')
        >>> _same_marked(["", None], ""), _same_marked([None, 1], None)
        (b'["",null]', b'[{},1]')
    """
    if value.__class__ is str:  # the common case: text values compared without JSON
        if not value:  # '""' is not longer than SAME
            return orjson.dumps(values)
        marked: list[Any] = []
        for v in values:
            if v.__class__ is str:
                marked.append(_SAME_JSON if v == value else v)
            elif v.__class__ in _NOT_TEXT:
                marked.append(v)
            else:  # e.g. an enum or a date: compare its JSON
                return _same_marked_json(values, value)
        return orjson.dumps(marked)
    return _same_marked_json(values, value)


def _same_marked_json(values: list[Any], value: Any) -> bytes:
    """:func:`_same_marked` comparing each value's JSON."""
    same = orjson.dumps(value)
    if len(same) <= len(SAME):
        return orjson.dumps(values)
    return orjson.dumps([_SAME_JSON if orjson.dumps(v) == same else v for v in values])


def join_packed(records: list[bytes]) -> bytes:
    """The stored field of packed records (a JSON string: the API's other readers may
    ``json.loads`` every field of the user hash)."""
    return b'"' + b"|".join(records) + b'"'


def unpack_why(raw: bytes | str | None) -> list[tuple[str, list[Any]]]:
    """``(code, values)`` of each record of a stored packed field (:data:`SAME` marks a value
    equal to the tag's value).

    Example:
        >>> unpack_why(b'"Abcd1,[2]|Wxyz{}"')
        [('Abcd', [1, [2]]), ('Wxyz', [b'{}'])]
        >>> unpack_why(None), unpack_why(b'""')
        ([], [])
    """
    if not raw:
        return []
    text = orjson.loads(raw)
    out = []
    for rec in text.split("|") if text else []:
        code, body = rec[:WHY_CODE_LEN], rec[WHY_CODE_LEN:]
        vals = orjson.loads(f"[{body}]") if body else []
        out.append((code, [SAME if v == {} else v for v in vals]))
    return out


def expand_packed(shape: bytes | str | None, values: list[Any], tag_value: Any
                  ) -> tuple[str, dict[str, Any]] | None:
    """``(tag_id, record)`` as the API shows it, from a shape and a record's values
    (``tag_value``: the tag's current value, for :data:`SAME`); None for an unknown shape.

    Example:
        >>> _, shape = why_shape("goal", {"rule_version": 1, "ruleset": "r1",
        ...                               "values": {"profile.goal": "x", "n": 1}})
        >>> expand_packed(shape, [SAME, 1], "x")
        ('goal', {'rule': 'goal', 'rule_version': 1, 'ruleset': 'r1', \
'values': {'profile.goal': 'x', 'n': 1}})
    """
    if not shape:
        return None
    tag, version, ruleset, case, names, extra = orjson.loads(shape)
    if not values and len(names) == 1:  # the code alone: the one value is the tag's
        values = [SAME]
    out: dict[str, Any] = {"rule": tag, "rule_version": version}
    if ruleset is not None:
        out["ruleset"] = ruleset
    if case is not None:
        out["case"] = case
    vals = [tag_value if v is SAME else v for v in values]
    out["values"] = dict(zip(names, vals, strict=False))
    if len(vals) != len(names):
        out["values_unnamed"] = vals[len(names):] if len(vals) > len(names) else []
    out.update(extra)
    out["rule"] = extra.get("rule", tag)
    return tag, out
