r"""The rule expression language: a lark LALR grammar and its parser.

Expressions combine comparisons, ``and``/``or``/``not``, ``in [..]``, arithmetic, literals
(numbers, durations such as ``30d``/``12h``/``15m``/``10s``/``2w``, strings, ``true``,
``false``, ``null``), dotted names (``profile.region``, ``score.convert``), parameters
(``$churn_period``), event selectors (``stream:click|order_paid``), prop alternatives
(``click.channel|utm_source``: a selector's props, for ``first()`` / ``last()``) and function
calls with positional and keyword arguments (``streak(lesson_missed, reset: lesson_attended)``).

Example:
    >>> parse("count(course_view, 30d) >= 2 and profile.region in ['bj', 'sh']").data
    'and_'
    >>> t = parse("first(click.channel|utm_source)").children[1]
    >>> t.data, [str(c) for c in t.children]
    ('prop_alts', ['click', 'channel', 'utm_source'])
    >>> parse("1 +")
    Traceback (most recent call last):
    ...
    lark.exceptions.UnexpectedToken: ...
"""

from __future__ import annotations

from functools import lru_cache

from lark import Lark, Tree

GRAMMAR = r"""
?start: expr

?expr: or_expr
?or_expr: and_expr
        | or_expr "or" and_expr                -> or_
?and_expr: not_expr
         | and_expr "and" not_expr             -> and_
?not_expr: "not" not_expr                      -> not_
         | comparison
?comparison: sum
           | sum COMP_OP sum                   -> compare
           | sum "in" sum                      -> in_
           | sum "not" "in" sum                -> not_in
?sum: product
    | sum ADD_OP product                       -> arith
?product: unary
        | product MUL_OP unary                 -> arith
?unary: "-" unary                              -> neg
      | atom
?atom: NUMBER                                  -> number
     | DURATION                                -> duration
     | STRING                                  -> string
     | "true"                                  -> true
     | "false"                                 -> false
     | "null"                                  -> null
     | "[" [expr ("," expr)*] "]"              -> list
     | NAME "(" [arg ("," arg)*] ")"           -> call
     | selector
     | "$" NAME                                -> param
     | "(" expr ")"
?selector: dotted
         | STREAMSEL                           -> selector
         | selpart ("|" selpart)+              -> selector
         | NAME "." NAME ("|" NAME)+           -> prop_alts
?selpart: NAME | STREAMSEL
dotted: NAME ("." NAME)*
?arg: expr
    | NAME ":" expr                            -> kwarg

COMP_OP: "==" | "!=" | "<=" | ">=" | "<" | ">"
ADD_OP: "+" | "-"
MUL_OP: "*" | "/" | "%"
DURATION.2: /\d+(\.\d+)?(w|d|h|m|s|ms)\b/
NUMBER: /\d+(\.\d+)?([eE][+-]?\d+)?/
STRING: /'[^'\n]*'/ | /"[^"\n]*"/
STREAMSEL.2: /stream:[A-Za-z_][A-Za-z0-9_]*/
NAME: /[A-Za-z_][A-Za-z0-9_]*/

%import common.WS
%ignore WS
"""

KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def parse(text: str) -> Tree:
    """Parse one expression (raises lark exceptions with line/column on error)."""
    return _parser().parse(text)
