r"""Segment expressions: grammar, tag catalog, and a planner onto Redis set operations.

A segment is the set of users of a tenant matching a boolean tag expression such as
``family.activity = high AND lifecycle IN (growth, mature) AND NOT tag:refunded``.
The full grammar is in ``docs/API.md``; in short::

    expr   := or
    or     := and ("OR" and)*
    and    := not ("AND" not)*
    not    := "NOT" not | atom
    atom   := "(" expr ")" | ref "=" value | ref "!=" value | ref ["NOT"] "IN" "(" value, ... ")"
            | ref ("<" | "<=" | ">" | ">=") number | "tag:" ref
    ref    := tag_id | family "." tag_id | "family." family      (the family's tag of that name)
    value  := name | number | 'single' or "double" quoted string

Keywords are case-insensitive. Planning never reads users: each leaf is an existing Redis
bitmap over the tenant's integer user ids (``seg:{tag}={value}``; a numeric range is the OR
of the bucket bitmaps ``nb:{tag}:{i}`` it covers, plus the members of partly covered buckets
read from the ``num:{tag}`` sorted set) and each operator becomes one ``BITOP AND``/``OR``
into a temporary key with an expiry. ``NOT`` inside ``AND`` becomes a difference
(``A AND NOT B`` = ``A XOR (A AND B)``); only a bare ``NOT`` needs the tenant's user bitmap.
Every operator costs O(users / 8) bytes, whatever the segment sizes. The simplifier also
intersects value lists of one tag in the plan (a user holds one value, so
``tag:x AND x != v`` is the union of x's other values) and drops contradictions.

This module is pure (no I/O): :func:`parse` gives an AST, :func:`plan` the command list that
:mod:`stream_app.serving.segment_runner` executes.

Example:
    >>> cat = Catalog({"activity": TagInfo("activity", "activity", "enum",
    ...                                    ("high", "medium", "low", "churned")),
    ...                "refunded": TagInfo("refunded", "consumption", "bool", (True,)),
    ...                "lead_points": TagInfo("lead_points", "lead", "number")})
    >>> p = plan(parse("family.activity = high AND NOT tag:refunded"), cat, "t1", qid="q")
    >>> for step in p.steps: print(step)
    ('BITOP', 'AND', 'sa:t1:tmp:q:1', 'sa:t1:seg:activity=high', 'sa:t1:seg:refunded=true')
    ('BITOP', 'XOR', 'sa:t1:tmp:q:2', 'sa:t1:seg:activity=high', 'sa:t1:tmp:q:1')
    >>> plan(parse("lead_points >= 10 and activity = high"), cat, "t1",
    ...      edges={"sa:t1:num:lead_points": [0, 10, 100]}).explain()
    'AND(OR(nb:lead_points:2, nb:lead_points:3) = num:lead_points[10, +inf], seg:activity=high)'
    >>> parse("activity = ")
    Traceback (most recent call last):
    ...
    stream_app.serving.segments.SegmentError: syntax error at column 12: expected a value
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer_NonRecursive
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from stream_app.errors import StreamAppError
from stream_app.serving import keys

__all__ = [
    "USERS", "Diff", "Empty", "Inter", "Key", "Range", "Union", "compile_node", "disjoint",
    "disjoint_keys", "estimate", "intersect", "leaves", "lower", "required_keys", "unite",
    "And", "Catalog", "Cmp", "Eq", "Has", "In", "Lit", "Ne", "Not", "Or", "Plan", "SegmentError",
    "TagInfo", "parse", "plan", "tags_needing_values",
]


class SegmentError(StreamAppError):
    """A segment expression is invalid (syntax, unknown tag or value, wrong kind)."""


# -- grammar -------------------------------------------------------------------------------

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr
        | or_expr _OR and_expr                      -> or_
?and_expr: not_expr
         | and_expr _AND not_expr                   -> and_
?not_expr: _NOT not_expr                            -> not_
         | atom
?atom: "(" or_expr ")"
     | ref "=" value                                -> eq
     | ref "!=" value                               -> ne
     | ref _IN "(" value ("," value)* ")"           -> in_
     | ref _NOT _IN "(" value ("," value)* ")"      -> not_in
     | ref CMP NUMBER                               -> cmp
     | HAS ref                                      -> has
ref: NAME
value: NAME | NUMBER | STRING

_OR.2: /or\b/i
_AND.2: /and\b/i
_NOT.2: /not\b/i
_IN.2: /in\b/i
HAS.3: /tag:/i
CMP: "<=" | ">=" | "<" | ">"
NAME: /[^\W\d][\w.\-]*/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
STRING: /"(?:[^"\\]|\\.)*"/ | /'(?:[^'\\]|\\.)*'/

%import common.WS
%ignore WS
"""


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)


@dataclass(frozen=True)
class Lit:
    """A literal as written: ``kind`` is ``name``, ``number`` or ``string``."""

    kind: str
    text: str

    @property
    def number(self) -> float:
        return float(self.text)


@dataclass(frozen=True)
class Eq:
    tag: str
    value: Lit


@dataclass(frozen=True)
class Ne:
    tag: str
    value: Lit


@dataclass(frozen=True)
class In:
    tag: str
    values: tuple[Lit, ...]


@dataclass(frozen=True)
class Cmp:
    tag: str
    op: str
    value: Lit


@dataclass(frozen=True)
class Has:
    tag: str


@dataclass(frozen=True)
class Not:
    item: Any


@dataclass(frozen=True)
class And:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Any, ...]


def _unquote(text: str) -> str:
    body = text[1:-1]
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            i += 1
            ch = body[i]
        out.append(ch)
        i += 1
    return "".join(out)


class _ToAst(Transformer_NonRecursive):
    """Parse tree -> AST, without recursion (a chain of 500 ANDs is 500 levels of tree)."""

    def ref(self, items: list[Token]) -> str:
        return str(items[0])

    def value(self, items: list[Token]) -> Lit:
        tok = items[0]
        if tok.type == "STRING":
            return Lit("string", _unquote(str(tok)))
        return Lit("number" if tok.type == "NUMBER" else "name", str(tok))

    def eq(self, items: list[Any]) -> Eq:
        return Eq(items[0], items[1])

    def ne(self, items: list[Any]) -> Ne:
        return Ne(items[0], items[1])

    def in_(self, items: list[Any]) -> In:
        return In(items[0], tuple(items[1:]))

    def not_in(self, items: list[Any]) -> Not:
        return Not(In(items[0], tuple(items[1:])))

    def cmp(self, items: list[Any]) -> Cmp:
        return Cmp(items[0], str(items[1]), Lit("number", str(items[2])))

    def has(self, items: list[Any]) -> Has:
        return Has(items[1])

    def not_(self, items: list[Any]) -> Any:
        inner = items[0]
        return inner.item if isinstance(inner, Not) else Not(inner)

    def and_(self, items: list[Any]) -> And:
        flat: list[Any] = []
        for it in items:
            flat.extend(it.items if isinstance(it, And) else [it])
        return And(tuple(flat))

    def or_(self, items: list[Any]) -> Or:
        flat: list[Any] = []
        for it in items:
            flat.extend(it.items if isinstance(it, Or) else [it])
        return Or(tuple(flat))


_EXPECTED = {"NAME": "a tag or value", "NUMBER": "a number", "STRING": "a string",
             "LPAR": "'('", "RPAR": "')'", "EQUAL": "'='", "CMP": "a comparison",
             "COMMA": "','", "_OR": "OR", "_AND": "AND", "_NOT": "NOT", "_IN": "IN",
             "HAS": "tag:", "__ANON_0": "'!='", "$END": "the end of the expression"}
_VALUES = frozenset({"NAME", "NUMBER", "STRING"})
#: deepest nesting of NOT, AND and OR an expression may have (the planner walks the AST
#: recursively); parentheses alone and a chain of one operator (``a AND b AND c``) add none
MAX_DEPTH = 100
_OPERATORS = frozenset({"not_", "and_", "or_"})


def _depth(tree: Any) -> int:
    """Levels of ``NOT``/``AND``/``OR`` nested in a parse tree, found without recursion.

    Parentheses alone make no node, and an ``AND`` (``OR``) directly under an ``AND``
    (``OR``) is the same level: the AST flattens such chains into one operator.

    >>> p = _parser().parse
    >>> _depth(p("a = 1")), _depth(p("NOT NOT a = 1")), _depth(p("((a = 1))"))
    (0, 2, 0)
    >>> _depth(p("a = 1 AND b = 2 AND (c = 3 AND d = 4)")), _depth(p("a = 1 AND (b = 2 OR c = 3)"))
    (1, 2)
    """
    deepest, stack = 0, [(tree, 0, "")]
    while stack:
        node, d, parent = stack.pop()
        op = node.data if node.data in _OPERATORS else ""
        if op and not (op == parent and op != "not_"):
            d += 1
        deepest = max(deepest, d)
        stack.extend((c, d, op or parent) for c in node.children if hasattr(c, "data"))
    return deepest


def _syntax_hint(exc: UnexpectedToken) -> str:
    """What the parser could take where it stopped, in the expression's words (an operand
    ends where AND may follow as well as OR; a value right after a value asks for quotes)."""
    accepts = set(exc.accepts or exc.expected)
    if "_OR" in accepts:
        accepts.add("_AND")
    want = sorted({_EXPECTED.get(t, t) for t in accepts})
    if want == ["a number", "a string", "a tag or value"]:
        return "expected a value"
    if "NAME" in accepts and "STRING" not in accepts and "NUMBER" not in accepts:
        want = sorted({w.replace("a tag or value", "a tag name") for w in want})
    hint = "expected " + " or ".join(want)
    if exc.token.type == "STRING" and "NAME" in accepts and "STRING" not in accepts:
        hint += " (a tag name is written without quotes)"
    # lark's token_history is [None] when the very first token is the unexpected one
    prev = [t for t in (getattr(exc, "token_history", None) or ()) if t is not None]
    if exc.token.type in _VALUES and prev and prev[-1].type in _VALUES:
        glued = next((k for k in ("AND", "OR", "NOT") if str(exc.token).upper().startswith(k)),
                     None)
        hint += (f" (a space is missing after {glued}?)" if glued else
                 " (quote a value that holds spaces or signs, e.g. \"25-30\")")
    return hint


def parse(text: str) -> Any:
    """Parse a segment expression into an AST (``Eq``, ``In``, ``And``, ...).

    >>> parse("a = x AND (b IN (1, 2) OR NOT tag:c)")
    And(items=(Eq(tag='a', value=Lit(kind='name', text='x')), Or(items=(In(tag='b', \
values=(Lit(kind='number', text='1'), Lit(kind='number', text='2'))), Not(item=Has(tag='c'))))))
    """
    if not text or not text.strip():
        raise SegmentError("empty segment expression")
    if len(text) > 4000:
        raise SegmentError("segment expression longer than 4000 characters")
    try:
        tree = _parser().parse(text)
    except UnexpectedEOF:
        raise SegmentError(f"syntax error at column {len(text) + 1}: unexpected end") from None
    except UnexpectedToken as exc:
        col = exc.column if isinstance(exc.column, int) and exc.column > 0 else len(text) + 1
        if exc.token.type == "$END":
            col = len(text) + 1
        raise SegmentError(f"syntax error at column {col}: {_syntax_hint(exc)}") from None
    except UnexpectedCharacters as exc:
        raise SegmentError(f"syntax error at column {exc.column}: unexpected character "
                           f"{text[exc.pos_in_stream]!r}") from None
    except UnexpectedInput as exc:  # pragma: no cover - other lark errors
        raise SegmentError(f"syntax error: {exc}") from None
    if _depth(tree) > MAX_DEPTH:
        raise SegmentError(f"segment expression nested more than {MAX_DEPTH} levels deep "
                           "(levels of NOT, AND and OR; parentheses alone and a chain "
                           "like a AND b AND c add none)")
    return _ToAst().transform(tree)


# -- catalog -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TagInfo:
    """What the planner must know of a tag: its kind and (enum/bool) declared values."""

    id: str
    family: str
    kind: str                         # enum | bool | number | text | set
    values: tuple[Any, ...] = ()      # declared values (enum, bool); others: found in Redis


@dataclass
class Catalog:
    """The tags a segment expression may name (built from the rule set)."""

    tags: dict[str, TagInfo]

    @classmethod
    def from_ruleset(cls, ruleset: Any) -> Catalog:
        """Visible tags of a :class:`~stream_app.rules.model.RuleSet`."""
        out = {}
        for t in ruleset.tags:
            values = tuple(v.value for v in t.values)
            if t.kind == "bool":
                values = (True, False)
            out[t.id] = TagInfo(t.id, t.family, t.kind, values)
        return cls(out)

    def resolve(self, ref: str) -> TagInfo:
        """``activity``, ``activity.activity`` (family.tag) or ``family.activity``."""
        if ref in self.tags:
            return self.tags[ref]
        head, _, rest = ref.partition(".")
        if rest:
            if head == "family" and rest in self.tags and self.tags[rest].family == rest:
                return self.tags[rest]
            if head == "family":
                names = sorted(t.id for t in self.tags.values() if t.family == rest)
                if names:
                    raise SegmentError(f"family {rest!r} has no tag named {rest!r}; "
                                       f"name one of: {', '.join(names)}")
            info = self.tags.get(rest)
            if info is not None and info.family == head:
                return info
        raise SegmentError(f"unknown tag {ref!r}")


def tags_needing_values(ast: Any, catalog: Catalog) -> set[str]:
    """Text/set tags whose present values must be looked up in Redis before planning."""
    out: set[str] = set()

    def walk(n: Any) -> None:
        if isinstance(n, And | Or):
            for it in n.items:
                walk(it)
        elif isinstance(n, Not):
            walk(n.item)
        else:
            info = catalog.resolve(n.tag)
            if info.kind == "set" or (info.kind == "text" and isinstance(n, Has | Ne)):
                out.add(info.id)

    walk(ast)
    return out


# -- set algebra ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Key:
    """An existing key; ``z`` when it is a sorted set. Keys of one ``group`` are disjoint
    (the values of one tag), ``group == "@users"`` marks the tenant's user set."""

    name: str
    z: bool = False
    group: str = field(default="", compare=False)


@dataclass(frozen=True)
class Range:
    """Members of sorted set ``zkey`` with score in [lo, hi] (``(`` prefix = exclusive)."""

    zkey: str
    lo: str
    hi: str


@dataclass(frozen=True)
class Empty:
    pass


@dataclass(frozen=True)
class Inter:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Union:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Diff:
    base: Any
    minus: tuple[Any, ...]


EMPTY = Empty()
USERS = "@users"
MAX_BRANCHES = 1
"""An intersection is distributed over unions up to this many branches: 1, never (a bitmap
``AND(OR(a, b), d)`` is two operators, ``OR(AND(a, d), AND(b, d))`` three; with sets it saved
copying the union)."""


def _num_text(x: float) -> str:
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return repr(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _bounds(op: str, x: float) -> tuple[str, str]:
    v = _num_text(x)
    return {"=": (v, v), ">": (f"({v}", "+inf"), ">=": (v, "+inf"),
            "<": ("-inf", f"({v}"), "<=": ("-inf", v)}[op]


def _union(items: list[Any]) -> Any:
    flat: list[Any] = []
    for it in items:
        for x in (it.items if isinstance(it, Union) else (it,)):
            if not isinstance(x, Empty) and x not in flat:
                flat.append(x)
    if not flat:
        return EMPTY
    return flat[0] if len(flat) == 1 else Union(tuple(flat))


def _bound(b: str) -> tuple[float, bool]:
    """``"(3"`` -> (3.0, exclusive); ``"-inf"`` -> (-inf, False)."""
    return (float(b[1:]), True) if b.startswith("(") else (float(b), False)


def _merge_ranges(a: Range, b: Range) -> Any:
    """Intersection of two ranges of the same sorted set (Empty when disjoint)."""
    (alo, alx), (blo, blx) = _bound(a.lo), _bound(b.lo)
    (ahi, ahx), (bhi, bhx) = _bound(a.hi), _bound(b.hi)
    lo = a.lo if (alo, alx) >= (blo, blx) else b.lo
    hi = a.hi if (ahi, not ahx) <= (bhi, not bhx) else b.hi
    (low, lx), (high, hx) = _bound(lo), _bound(hi)
    if low > high or (low == high and (lx or hx)):
        return EMPTY
    return Range(a.zkey, lo, hi)


def _value_group(x: Any) -> str | None:
    """The tag whose values ``x`` lists (a tag-value key or a union of them), if any."""
    keys_ = x.items if isinstance(x, Union) else (x,)
    groups = {k.group if isinstance(k, Key) and not k.z else None for k in keys_}
    g = groups.pop() if len(groups) == 1 else None
    return g if g and g != USERS else None


def _same_tag_values(flat: list[Any]) -> list[Any]:
    """In an intersection, value lists of one tag intersect as lists: a user holds one value,
    so ``(a | b | c) & (b | c | d)`` is ``b | c``."""
    out: list[Any] = []
    by_group: dict[str, int] = {}
    for x in flat:
        g = _value_group(x)
        if g is None:
            out.append(x)
            continue
        names = list(x.items) if isinstance(x, Union) else [x]
        if g in by_group:
            prev = out[by_group[g]]
            prev_keys = list(prev.items) if isinstance(prev, Union) else [prev]
            out[by_group[g]] = _union([k for k in prev_keys if k in names])
        else:
            by_group[g] = len(out)
            out.append(x)
    return out


def _inter(items: list[Any]) -> Any:
    merged: list[Any] = []
    for it in items:
        j = next((k for k, m in enumerate(merged) if isinstance(it, Range)
                  and isinstance(m, Range) and m.zkey == it.zkey), None)
        if j is None:
            merged.append(it)
        else:
            merged[j] = _merge_ranges(merged[j], it)
    items = merged
    diffs = [it for it in items if isinstance(it, Diff)]
    if diffs:  # A & (B - C) & (D - E) = (A & B & D) - (C | E)
        rest = [it for it in items if not isinstance(it, Diff)]
        base = _inter(rest + [d.base for d in diffs])
        return _diff(base, [m for d in diffs for m in d.minus])
    flat: list[Any] = []
    for it in items:
        for x in (it.items if isinstance(it, Inter) else (it,)):
            if isinstance(x, Empty):
                return EMPTY
            if x not in flat:
                flat.append(x)
    flat = _same_tag_values(flat)
    if any(isinstance(x, Empty) for x in flat):
        return EMPTY
    if len(flat) == 1:
        return flat[0]
    unions = [x for x in flat if isinstance(x, Union)]
    has_range = any(isinstance(x, Range) for x in flat)  # ranges fuse best with one set
    if unions and not has_range and math.prod(len(u.items) for u in unions) <= MAX_BRANCHES:
        # (a | b) & d = (a & d) | (b & d): each branch costs at most its smallest operand,
        # where the union first would copy every member of a and b
        u = unions[0]
        rest = [x for x in flat if x is not u]
        return _union([_inter([*rest, x]) for x in u.items])
    return flat[0] if len(flat) == 1 else Inter(tuple(flat))


def _diff(base: Any, minus: list[Any]) -> Any:
    if isinstance(base, Empty):
        return EMPTY
    if isinstance(base, Diff):  # (B - C) - D = B - (C | D)
        return _diff(base.base, [*base.minus, *minus])
    flat: list[Any] = []
    for m in minus:
        for x in (m.items if isinstance(m, Union) else (m,)):
            if not isinstance(x, Empty) and x not in flat:
                flat.append(x)
    if base in flat:
        return EMPTY
    return Diff(base, tuple(flat)) if flat else base


class _Lowering:
    def __init__(self, catalog: Catalog, tenant: str, found: dict[str, list[Any]]) -> None:
        self.cat = catalog
        self.t = tenant
        self.found = found
        self.universe = Key(keys.users_key(tenant), group=USERS)

    def seg(self, tag: str, value: Any) -> Key:
        return Key(keys.seg_key(self.t, tag, value), group=tag)

    def values_of(self, info: TagInfo) -> list[Any]:
        if info.kind in ("enum", "bool"):
            return list(info.values)
        return list(self.found.get(info.id, []))

    def literal(self, info: TagInfo, lit: Lit) -> Any:
        """The tag value a literal denotes for this tag's kind."""
        if info.kind == "number":
            if lit.kind != "number":
                raise SegmentError(f"tag {info.id!r} is numeric: compare it with a number, "
                                   f"not {lit.text!r}")
            return lit.number
        if info.kind == "bool":
            low = lit.text.lower()
            if lit.kind == "name" and low in ("true", "false"):
                return low == "true"
            raise SegmentError(f"tag {info.id!r} is boolean: use true or false, "
                               f"not {lit.text!r}")
        if info.kind == "enum" and lit.text not in info.values:
            raise SegmentError(f"tag {info.id!r} has no value {lit.text!r}; values: "
                               f"{', '.join(str(v) for v in info.values)}")
        return lit.text

    def eq(self, info: TagInfo, lit: Lit) -> Any:
        v = self.literal(info, lit)
        if info.kind == "number":
            lo, hi = _bounds("=", v)
            return Range(keys.num_key(self.t, info.id), lo, hi)
        if info.kind == "set":  # the projection keys a set value by the whole sorted list
            return _union([self.seg(info.id, combo) for combo in self.values_of(info)
                           if isinstance(combo, list) and v in combo])
        return self.seg(info.id, v)

    def has(self, info: TagInfo) -> Any:
        if info.kind == "number":
            return Key(keys.num_key(self.t, info.id), z=True)
        if info.kind == "bool":
            return self.seg(info.id, True)
        return _union([self.seg(info.id, v) for v in self.values_of(info)])

    def holds_any(self, info: TagInfo) -> Any:
        """Users holding the tag with any value (for ``!=``: a false bool counts)."""
        if info.kind == "bool":
            return _union([self.seg(info.id, True), self.seg(info.id, False)])
        return self.has(info)

    def lower(self, n: Any) -> Any:
        if isinstance(n, And):
            pos = [self.lower(i) for i in n.items if not isinstance(i, Not)]
            neg = [self.lower(i.item) for i in n.items if isinstance(i, Not)]
            base = _inter(pos) if pos else self.universe
            return _diff(base, neg)
        if isinstance(n, Or):
            return _union([self.lower(i) for i in n.items])
        if isinstance(n, Not):
            return _diff(self.universe, [self.lower(n.item)])
        info = self.cat.resolve(n.tag)
        if isinstance(n, Eq):
            return self.eq(info, n.value)
        if isinstance(n, Ne):
            if info.kind in ("enum", "bool", "text"):  # one value per user: the other values
                v = self.literal(info, n.value)
                values = [True, False] if info.kind == "bool" else self.values_of(info)
                return _union([self.seg(info.id, x) for x in values if x != v])
            return _diff(self.holds_any(info), [self.eq(info, n.value)])
        if isinstance(n, In):
            return _union([self.eq(info, v) for v in n.values])
        if isinstance(n, Has):
            return self.has(info)
        if isinstance(n, Cmp):
            if info.kind != "number":
                raise SegmentError(f"{n.op} needs a numeric tag; {info.id!r} is {info.kind}")
            lo, hi = _bounds(n.op, self.literal(info, n.value))
            return Range(keys.num_key(self.t, info.id), lo, hi)
        raise SegmentError(f"cannot plan {n!r}")  # pragma: no cover


# -- compilation to Redis commands ---------------------------------------------------------

Command = tuple[Any, ...]


@dataclass
class Plan:
    """Commands computing a segment into ``result`` (None: the segment is empty).

    ``steps`` store into temporary keys (listed in ``temps``; each gets ``PEXPIRE`` from the
    runner); ``root`` is the simplified set-algebra tree. Every result is a bitmap over the
    tenant's integer user ids (``z`` stays False; kept for the cursor format).
    """

    tenant: str
    root: Any
    steps: list[Command] = field(default_factory=list)
    result: str | None = None
    z: bool = False
    temps: list[str] = field(default_factory=list)
    _text: dict[str, str] = field(default_factory=dict, repr=False)

    def explain(self) -> str:
        """Human-readable form of the plan (key names without the tenant prefix)."""
        if self.result is None:
            return "EMPTY"
        return self._text.get(self.result, self._short(self.result))

    def _short(self, key: str) -> str:
        prefix = f"{keys.PREFIX}:{self.tenant}:"
        return key[len(prefix):] if key.startswith(prefix) else key

    def size_command(self) -> Command | None:
        """A single command giving the size without running ``steps``, when one exists."""
        if isinstance(self.root, Key) and not self.root.z:
            return ("BITCOUNT", self.root.name)
        return None


def estimate(node: Any, sizes: dict[Any, int]) -> float:
    """Upper bound of a node's size from leaf sizes (``inf`` when unknown).

    >>> a, b = Key("a"), Key("b")
    >>> estimate(Inter((a, Union((a, b)))), {a: 5, b: 7}), estimate(Diff(b, (a,)), {})
    (5, inf)
    """
    if isinstance(node, Key | Range):
        return sizes.get(node, math.inf)
    if isinstance(node, Inter):
        return min(estimate(i, sizes) for i in node.items)
    if isinstance(node, Union):
        return sum(estimate(i, sizes) for i in node.items)
    if isinstance(node, Diff):
        return estimate(node.base, sizes)
    return 0


def leaves(node: Any) -> set[Any]:
    """The Key and Range nodes of a tree (whose sizes :func:`estimate` uses)."""
    if isinstance(node, Key | Range):
        return {node}
    if isinstance(node, Inter | Union):
        return set().union(*(leaves(i) for i in node.items))
    if isinstance(node, Diff):
        return leaves(node.base).union(*(leaves(i) for i in node.minus))
    return set()


RANGE_SCRIPT = """
local m = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2])
for i = 1, #m do redis.call('SETBIT', KEYS[2], m[i], 1) end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return #m
"""
"""KEYS: sorted set (members: integer ids), destination bitmap; ARGV: min, max, expiry ms.
Sets the bit of every member with a score in [min, max] (only for the part of a range that
does not cover a whole bucket)."""

INF = math.inf


def _edge_text(x: float) -> str:
    return _num_text(x)


def bucket_parts(r: Range, edges: list[float]) -> tuple[list[int], list[tuple[str, str]]]:
    """How a numeric range is read: the buckets it covers whole (their bitmaps are OR-ed) and
    the (min, max) score bounds of the parts of partly covered buckets (read from the sorted
    set). Bucket 0 is ``< edges[0]``, bucket ``i`` is ``[edges[i-1], edges[i])``.

    >>> bucket_parts(Range("z", "1", "+inf"), [0, 1, 5])
    ([2, 3], [])
    >>> bucket_parts(Range("z", "(1", "+inf"), [0, 1, 5])
    ([3], [('(1', '(5')])
    >>> bucket_parts(Range("z", "-inf", "(0"), [0, 1, 5])
    ([0], [])
    >>> bucket_parts(Range("z", "2.5", "2.5"), [0, 1, 5])
    ([], [('2.5', '2.5')])
    """
    lo, lox = _bound(r.lo)
    hi, hix = _bound(r.hi)
    bounds = [-INF, *edges, INF]
    whole: list[int] = []
    parts: list[tuple[str, str]] = []
    for i in range(len(bounds) - 1):
        a, b = bounds[i], bounds[i + 1]          # bucket [a, b)
        if not (lo < b and (hi > a if hix else hi >= a)):
            continue                             # no overlap
        lo_in = lo < a or (lo == a and not lox) or a == -INF and lo == -INF
        hi_in = hi >= b
        if lo_in and hi_in:
            whole.append(i)
            continue
        plo = r.lo if not lo_in else (_edge_text(a) if a != -INF else "-inf")
        phi = r.hi if not hi_in else (f"({_edge_text(b)}" if b != INF else "+inf")
        parts.append((plo, phi))
    return whole, parts


class _Compiler:
    """Set algebra -> ``BITOP`` steps over the tenant's bitmaps (temporaries ``tmp:{qid}:n``).

    ``A AND B`` is ``BITOP AND``, ``A OR B`` ``BITOP OR``; ``B AND NOT M`` is
    ``B XOR (B AND M)`` (``BITOP NOT`` would also flip the padding past the shorter key);
    a numeric range is the OR of the bucket bitmaps it covers plus, for a partly covered
    bucket, the members read from the sorted set by :data:`RANGE_SCRIPT`.
    """

    def __init__(self, p: Plan, qid: str, edges: dict[str, list[float]] | None = None,
                 ttl_ms: int = 30_000) -> None:
        self.p = p
        self.qid = qid
        self.edges = edges or {}
        self.ttl_ms = ttl_ms

    def tmp(self) -> str:
        k = f"{keys.PREFIX}:{self.p.tenant}:tmp:{self.qid}:{len(self.p.temps) + 1}"
        self.p.temps.append(k)
        return k

    def bitop(self, op: str, names: list[str], text: str) -> str:
        dst = self.tmp()
        self.p.steps.append(("BITOP", op, dst, *names))
        self.p._text[dst] = text
        return dst

    def emit(self, n: Any) -> str:
        p = self.p
        if isinstance(n, Key) and not n.z:
            return n.name
        if isinstance(n, Key):  # tag:<numeric>: every bucket
            return self.emit(Range(n.name, "-inf", "+inf"))
        if isinstance(n, Range):
            tag = n.zkey.rsplit(":num:", 1)[-1]
            whole, parts = bucket_parts(n, self.edges.get(n.zkey, []))
            names = [keys.bucket_key(p.tenant, tag, i) for i in whole]
            for lo, hi in parts:
                dst = self.tmp()
                p.steps.append(("EVAL", RANGE_SCRIPT, 2, n.zkey, dst, lo, hi, self.ttl_ms))
                p._text[dst] = f"{p._short(n.zkey)}[{lo}, {hi}]"
                names.append(dst)
            text = f"{p._short(n.zkey)}[{n.lo}, {n.hi}]"
            if len(names) == 1:
                if names[0] in p.temps:
                    p._text[names[0]] = text
                return names[0]
            if not names:
                dst = self.tmp()
                p.steps.append(("SET", dst, b""))
                p._text[dst] = text
                return dst
            return self.bitop("OR", names, f"OR({', '.join(map(p._short, names))}) = {text}")
        if isinstance(n, Inter | Union):
            op = "AND" if isinstance(n, Inter) else "OR"
            names = [self.emit(i) for i in n.items]
            inner = ", ".join(p._text.get(x, p._short(x)) for x in names)
            return self.bitop(op, names, f"{op}({inner})")
        if isinstance(n, Diff):
            base = self.emit(n.base)
            ms = [self.emit(i) for i in n.minus]
            inner = ", ".join(p._text.get(x, p._short(x)) for x in ms)
            m = ms[0] if len(ms) == 1 else self.bitop("OR", ms, f"OR({inner})")
            both = self.bitop("AND", [base, m], "")
            btext = p._text.get(base, p._short(base))
            return self.bitop("XOR", [base, both], f"{btext} - {inner}")
        raise SegmentError(f"cannot compile {n!r}")  # pragma: no cover


def lower(ast: Any, catalog: Catalog, tenant: str,
          found_values: dict[str, list[Any]] | None = None) -> Any:
    """The simplified set-algebra tree (Key, Range, Inter, Union, Diff, Empty) of an AST."""
    return _Lowering(catalog, tenant, found_values or {}).lower(ast)


def plan(ast: Any, catalog: Catalog, tenant: str, *, qid: str = "0",
         found_values: dict[str, list[Any]] | None = None,
         edges: dict[str, list[float]] | None = None) -> Plan:
    """Compile an AST into Redis commands over ``tenant``'s keys.

    ``found_values`` gives, for text/set tags (see :func:`tags_needing_values`), the values
    present in Redis; ``qid`` names the temporary keys (unique per query); ``edges`` (sorted
    set key -> the numeric tag's bucket edges, see :func:`bucket_parts`) says which ranges
    are whole bucket bitmaps.
    """
    return compile_node(lower(ast, catalog, tenant, found_values), tenant, qid=qid,
                        edges=edges)


def intersect(items: list[Any]) -> Any:
    """Simplified intersection of set-algebra nodes (what ``AND`` plans to)."""
    return _inter(items)


def unite(items: list[Any]) -> Any:
    """Simplified union of set-algebra nodes (what ``OR`` plans to)."""
    return _union(items)


def compile_node(root: Any, tenant: str, *, qid: str = "0",
                 edges: dict[str, list[float]] | None = None, ttl_ms: int = 30_000) -> Plan:
    """The commands computing one set-algebra node (see :func:`plan`)."""
    p = Plan(tenant=tenant, root=root)
    if isinstance(root, Empty):
        return p
    p.result = _Compiler(p, qid, edges, ttl_ms).emit(root)
    return p


def required_keys(node: Any) -> set[Key]:
    """Set keys every member of ``node`` belongs to (tag-value keys only)."""
    if isinstance(node, Key):
        return {node} if node.group and node.group != USERS and not node.z else set()
    if isinstance(node, Inter):
        return set().union(*(required_keys(i) for i in node.items))
    if isinstance(node, Diff):
        return required_keys(node.base)
    if isinstance(node, Union):
        sets = [required_keys(i) for i in node.items]
        return set.intersection(*sets) if sets else set()
    return set()


def disjoint(a: Any, b: Any) -> bool:
    """Can no user be in both? (each needs a different value of one tag)

    >>> hi, lo = Key("act=hi", group="act"), Key("act=lo", group="act")
    >>> disjoint(Inter((hi, Key("x=1", group="x"))), Diff(lo, (Key("y=1", group="y"),)))
    True
    >>> disjoint(hi, Key("x=1", group="x"))
    False
    """
    ra, rb = required_keys(a), required_keys(b)
    return any(ka.group == kb.group and ka.name != kb.name for ka in ra for kb in rb)


def disjoint_keys(items: tuple[Any, ...]) -> bool:
    """Are these plain set keys of one tag (so the size of their union is the sum)?

    >>> disjoint_keys((Key("a=1", group="a"), Key("a=2", group="a")))
    True
    >>> disjoint_keys((Key("a=1", group="a"), Key("b=1", group="b")))
    False
    """
    groups = {i.group if isinstance(i, Key) and not i.z else None for i in items}
    return len(groups) == 1 and None not in groups and "" not in groups \
        and USERS not in groups
