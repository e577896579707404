"""A coarse static type check of rule expressions, run once at compile time.

Every expression node gets one of a few types: ``number`` (numbers and durations, which are
milliseconds), ``text``, ``bool``, ``list``, ``null`` (the literal) or ``unknown`` (profile
fields, props read by ``first``/``last``, model scores, ``tag(id)`` of a tag whose kind is not
known, ...). Only what is sure to misbehave for every user is refused, as a
:class:`~stream_app.rules.compiler.CompileError` with the column of the offending operand:

* arithmetic with a text operand where a number is needed (``count(x) + 'x'``; ``+`` of two
  texts concatenates and is allowed), with a ``true``/``false`` literal (a comparison's result
  still counts as 1: ``(count(a) > 0) * 5``), or a list with a number;
* unary minus of text, a bool or a list;
* an ordering comparison (``< <= > >=``) of two different known types (``count(x) > 'three'``,
  ``count(x) > true``): always false; ``==``/``!=`` of a number with text: always
  false / always true;
* ``in``/``not in`` whose right side is a number or a bool (``count(x) in 5``), or text when
  the left side is a number, bool or list;
* a helper's argument of the wrong type: ``days``, ``round``, ``min``, ``max`` take numbers,
  ``size`` a list (or text).

``unknown`` is never refused. ``tag(id)`` has the type of the tag's kind when the rule set
knows it (``number``, ``bool``, ``text``, ``enum`` -> text, ``set`` -> list), so does
``prev()`` for the tag being evaluated. The loader checks the type of a tag's ``value``
expression against the tag's kind (:func:`kind_mismatch`).

Example:
    >>> from stream_app.rules.grammar import parse
    >>> def t(text, params={}, kinds=None):
    ...     return infer_type(parse(text), text, params, kinds)
    >>> t("count(x, 30d) / 2"), t("distinct(order_paid.course)"), t("profile.region")
    ('number', 'list', 'unknown')
    >>> t("tag(points) * 2", kinds={"points": "number"}), t("coalesce(tag(a), 'x')")
    ('number', 'unknown')
    >>> t("count(course_view) + 'x'")
    Traceback (most recent call last):
    ...
    stream_app.rules.compiler.CompileError: 'x' is text: + needs numbers (count(course_view) \
+ 'x' would be null for everyone) (column 22)
    >>> t("profile.region > 3"), t("last(click.channel) + '!'")
    ('bool', 'unknown')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lark import Token, Tree

NUMBER, TEXT, BOOL, LIST, NULL, UNKNOWN = "number", "text", "bool", "list", "null", "unknown"

#: the type of a tag's value by its kind (``tag(id)``, ``prev()``)
KIND_TYPES = {"number": NUMBER, "bool": BOOL, "text": TEXT, "enum": TEXT, "set": LIST}

#: types a tag's ``value`` expression may not have, by kind (the value would be lost or
#: turned into something else: a number tag given text holds nothing, a bool tag given a
#: count holds ``true`` for any count but 0, a text tag given a number holds ``'3'``)
KIND_REFUSES = {"number": {TEXT, BOOL, LIST}, "bool": {NUMBER, TEXT, LIST},
                "text": {NUMBER, BOOL, LIST}, "set": {NUMBER, BOOL}}

#: event functions: their value's type (arguments are selectors / props / windows, which the
#: compiler checks)
_EVENT_FUNCTIONS = {"count": NUMBER, "active_days": NUMBER, "sum": NUMBER, "avg": NUMBER,
                    "peak": NUMBER, "since": NUMBER, "since_first": NUMBER, "streak": NUMBER,
                    "rate": NUMBER, "seq": BOOL, "distinct": LIST, "first": UNKNOWN,
                    "last": UNKNOWN}
_ORDERING = ("<", "<=", ">", ">=")
_DESCRIBE = {NUMBER: "a number", TEXT: "text", BOOL: "a bool", LIST: "a list", NULL: "null"}


def value_type(value: Any) -> str:
    """The type of a constant (a parameter's value): a duration text is a number.

    >>> [value_type(v) for v in (3, 0.5, "30d", "three", True, [1], None, {})]
    ['number', 'number', 'number', 'text', 'bool', 'list', 'null', 'unknown']
    """
    from stream_app.rules.compiler import parse_duration

    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return NUMBER
    if isinstance(value, str):
        return NUMBER if parse_duration(value) is not None else TEXT
    if isinstance(value, list):
        return LIST
    return NULL if value is None else UNKNOWN


def join(types: list[str]) -> str:
    """The type of a value that is one of ``types`` (``coalesce``, ``if``): null aside, their
    common type, else ``unknown``.

    >>> join([NUMBER, NULL, NUMBER]), join([NUMBER, TEXT]), join([NULL])
    ('number', 'unknown', 'null')
    """
    known = {t for t in types if t != NULL}
    if not known:
        return NULL
    return known.pop() if len(known) == 1 else UNKNOWN


def kind_mismatch(kind: str, vtype: str) -> str | None:
    """Why a ``value`` expression of type ``vtype`` does not fit a tag of ``kind`` (None: it
    fits, or is not known).

    >>> kind_mismatch("number", TEXT)
    "a number tag's value must be a number, this expression gives text (the tag would be \
null for everyone)"
    >>> kind_mismatch("set", TEXT), kind_mismatch("bool", UNKNOWN)
    (None, None)
    """
    if vtype not in KIND_REFUSES.get(kind, ()):
        return None
    effect = {"number": "the tag would be null for everyone",
              "bool": "the tag would be true for any value but 0 or empty: compare it, "
                      "e.g. count(x) > 0",
              "text": "the tag would hold its text form",
              "set": "the tag would hold it as text, e.g. ['3']"}[kind]
    want = {"number": "a number", "bool": "true or false", "text": "text",
            "set": "a list or text"}[kind]
    return (f"a {kind} tag's value must be {want}, this expression gives "
            f"{_DESCRIBE[vtype]} ({effect})")


def infer_type(tree: Tree, text: str, params: Mapping[str, Any],
               tag_kinds: Mapping[str, str] | None = None, tag_id: str | None = None) -> str:
    """The type of the parsed expression ``tree`` (its source ``text``); raise
    :class:`~stream_app.rules.compiler.CompileError` on a type error (see the module).

    ``tag_kinds``: tag id -> kind of the rule set (``tag(id)``'s type); ``tag_id``: the tag
    whose rule this is (``prev()``'s type).

    >>> from stream_app.rules.grammar import parse
    >>> infer_type(parse("prev() == 'high'"), "", {}, {"t": "enum"}, "t")
    'bool'
    >>> infer_type(parse("days('abc')"), "days('abc')", {})
    Traceback (most recent call last):
    ...
    stream_app.rules.compiler.CompileError: days() takes a number, got text 'abc' (column 6)
    """
    return _Checker(text, params, tag_kinds or {}, tag_id).infer(tree)


class _Checker:
    def __init__(self, text: str, params: Mapping[str, Any], tag_kinds: Mapping[str, str],
                 tag_id: str | None) -> None:
        self.text, self.params, self.tag_kinds, self.tag_id = text, params, tag_kinds, tag_id

    def err(self, node: Tree | Token, message: str) -> Exception:
        from stream_app.rules.compiler import CompileError

        col = getattr(node, "column", None)
        if col is None and isinstance(node, Tree) and not node.meta.empty:
            col = node.meta.column
        return CompileError(message, col)

    def src(self, node: Tree | Token) -> str:
        if isinstance(node, Token):
            return str(node)
        if node.meta.empty:
            return "?"
        return " ".join(self.text[node.meta.start_pos:node.meta.end_pos].split())

    def what(self, node: Tree | Token, t: str) -> str:
        """``text 'abc'``, ``a number (5)``: an operand described for a message."""
        return f"{_DESCRIBE.get(t, t)} {self.src(node)}" if t == TEXT else \
            f"{_DESCRIBE.get(t, t)} ({self.src(node)})"

    def bool_literal(self, node: Tree | Token) -> bool:
        if not isinstance(node, Tree):
            return False
        if node.data in ("true", "false"):
            return True
        return node.data == "param" and isinstance(self.params.get(str(node.children[0])),
                                                   bool)

    def infer(self, node: Tree | Token) -> str:
        if isinstance(node, Token):  # pragma: no cover - all tokens sit in trees
            return UNKNOWN
        kind, ch = node.data, node.children
        if kind in ("number", "duration"):
            return NUMBER
        if kind == "string":
            return TEXT
        if kind in ("true", "false"):
            return BOOL
        if kind == "null":
            return NULL
        if kind == "param":
            name = str(ch[0])
            return value_type(self.params[name]) if name in self.params else UNKNOWN
        if kind == "list":
            for c in ch:
                self.infer(c)
            return LIST
        if kind in ("or_", "and_", "not_"):
            for c in ch:
                self.infer(c)
            return BOOL
        if kind == "neg":
            t = self.infer(ch[0])
            if t in (TEXT, BOOL, LIST):
                raise self.err(ch[0], f"unary - needs a number, got {self.what(ch[0], t)}")
            return NUMBER
        if kind == "arith":
            return self.arith(node)
        if kind == "compare":
            self.compare(node)
            return BOOL
        if kind in ("in_", "not_in"):
            self.membership(node)
            return BOOL
        if kind == "call":
            return self.call(node)
        return UNKNOWN   # dotted (profile.X, score.X) and anything the compiler refused

    def arith(self, node: Tree) -> str:
        left, op_tok, right = node.children
        op = str(op_tok)
        lt, rt = self.infer(left), self.infer(right)
        whole = self.src(node)
        for side, t, other in ((left, lt, rt), (right, rt, lt)):
            if self.bool_literal(side):
                raise self.err(side, f"{self.src(side)} is a bool: {op} needs numbers "
                                     f"(in {whole} write 1 or 0)")
            if t == TEXT and not (op == "+" and other in (TEXT, UNKNOWN)):
                raise self.err(side, f"{self.src(side)} is text: {op} needs numbers "
                                     f"({whole} would be null for everyone)")
            if t == LIST and not (op == "+" and other in (LIST, UNKNOWN, NULL)):
                raise self.err(side, f"{self.src(side)} is a list: {op} needs numbers "
                                     f"({whole} would be null for everyone)")
        if lt in (TEXT, LIST) or rt in (TEXT, LIST):
            return join([lt, rt])    # '+' of texts / lists (or with unknown)
        if op == "+" and {lt, rt} <= {UNKNOWN, NULL} and UNKNOWN in (lt, rt):
            return UNKNOWN           # unknown + unknown: numbers, or texts concatenated
        return NUMBER

    def compare(self, node: Tree) -> None:
        left, op_tok, right = node.children
        op = str(op_tok)
        lt, rt = self.infer(left), self.infer(right)
        if UNKNOWN in (lt, rt) or NULL in (lt, rt) or lt == rt:
            return
        if op in _ORDERING:
            raise self.err(right if rt in (TEXT, BOOL) or lt == NUMBER else left,
                           f"{self.src(node)} orders {_DESCRIBE[lt]} with {_DESCRIBE[rt]}: "
                           "always false (both sides must be numbers, or both text)")
        if {lt, rt} == {NUMBER, TEXT}:
            always = "false" if op == "==" else "true"
            raise self.err(right if rt == TEXT else left,
                           f"{self.src(node)} compares a number with text: always {always}")

    def membership(self, node: Tree) -> None:
        left, right = node.children
        lt, rt = self.infer(left), self.infer(right)
        if rt in (NUMBER, BOOL) or (rt == TEXT and lt in (NUMBER, BOOL, LIST)):
            word = "not in" if node.data == "not_in" else "in"
            raise self.err(right, f"{self.src(node)}: the right side of {word} must be a list "
                                  f"(or text to find text in), got {self.what(right, rt)}")

    def want(self, fname: str, arg: Tree | Token, allowed: tuple[str, ...], need: str) -> str:
        t = self.infer(arg)
        if t not in allowed + (UNKNOWN, NULL):
            raise self.err(arg, f"{fname}() takes {need}, got {self.what(arg, t)}")
        return t

    def call(self, node: Tree) -> str:
        fname = str(node.children[0])
        args = [a for a in node.children[1:]
                if not (isinstance(a, Tree) and a.data == "kwarg")]
        if fname in _EVENT_FUNCTIONS:
            return _EVENT_FUNCTIONS[fname]
        if fname == "tag":
            a = args[0] if args else None
            tid = str(a.children[0]) if isinstance(a, Tree) and a.children else ""
            return KIND_TYPES.get(self.tag_kinds.get(tid, ""), UNKNOWN)
        if fname == "prev":
            return KIND_TYPES.get(self.tag_kinds.get(self.tag_id or "", ""), UNKNOWN)
        if fname in ("days", "round"):
            self.want(fname, args[0], (NUMBER,), "a number")
            if fname == "round" and len(args) == 2:
                self.want(fname, args[1], (NUMBER,), "a number of decimals")
            return NUMBER
        if fname in ("min", "max"):
            for a in args:
                self.want(fname, a, (NUMBER,), "numbers")
            return NUMBER
        if fname == "size":
            self.want(fname, args[0], (LIST, TEXT), "a list")
            return NUMBER
        types = [self.infer(a) for a in args]
        if fname == "if":
            return join(types[1:])
        if fname == "coalesce":
            return join(types)
        if fname in ("nullif", "lower"):
            return types[0] if types else UNKNOWN
        return UNKNOWN   # pragma: no cover - the compiler refused unknown functions
