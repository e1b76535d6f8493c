"""Type checks of template expressions against the declared field types, at load time.

The template checker (``templates.py``) makes sure a template only reads
fields and uses whitelisted syntax; it does not know that
``{{ event.occurred_at + 3 }}`` adds a number to a moment and fails on every
render. This module infers the kind of each expression from what is known
for sure (the declared type of each field read, literals, filters' results)
and refuses the operations Python would refuse at run time: arithmetic on
text or dates, a decimal mixed with a fraction, ordering a date against a
number, ``|date`` on a number, ``|length`` on a number, and so on.

Where a kind is not known (a name bound by ``set`` or ``for``, ``default``,
``first``...) nothing is assumed and nothing is refused: the check only
reports what is certain to fail. A missing value (None) is a matter of data,
not of types, and is left to the render.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from jinja2 import Environment, nodes

from crmrules.rules.fields import FieldType
from crmrules.rules.templates import NAMESPACES, TemplateError

#: ``tuple`` is a set field (it reaches templates as a tuple), ``list`` a list literal or
#: a filter's list: Python joins neither with the other.
Kind = Literal["text", "int", "decimal", "float", "bool", "date", "datetime", "list", "tuple"]
#: How an admin reads each kind in a message.
SHOWN: dict[Kind, str] = {
    "text": "text",
    "int": "a whole number",
    "decimal": "a decimal number",
    "float": "a fractional number",
    "bool": "true/false",
    "date": "a date",
    "datetime": "a date and time",
    "list": "a list",
    "tuple": "a set of values",
}
NUMBERS: frozenset[Kind] = frozenset({"int", "decimal", "float", "bool"})
FIELD_KINDS: dict[FieldType, Kind] = {
    FieldType.STRING: "text",
    FieldType.ENUM: "text",
    FieldType.INTEGER: "int",
    FieldType.DECIMAL: "decimal",
    FieldType.BOOLEAN: "bool",
    FieldType.DATE: "date",
    FieldType.DATETIME: "datetime",
    FieldType.SET: "tuple",
}
_SYMBOLS: dict[type[nodes.Node], str] = {
    nodes.Add: "+",
    nodes.Sub: "-",
    nodes.Mul: "*",
    nodes.Div: "/",
    nodes.FloorDiv: "//",
    nodes.Mod: "%",
    nodes.Pow: "**",
}
_TEXT_FILTERS = frozenset(
    {"upper", "lower", "title", "capitalize", "trim", "striptags", "string", "e", "escape"}
    | {"join", "replace", "truncate", "date"}
)
#: Filters that go through the items of a list or of a text (numbers and dates fail).
_SEQUENCE_FILTERS = frozenset(
    {"length", "count", "join", "first", "last", "min", "max", "sort", "unique", "list", "reverse"}
)
_DATE_HINT = "templates print dates, e.g. {{ event.occurred_at | date('%d.%m.%Y') }}; "
_DATE_HINT += "they cannot compute with them"
_TEXT_HINT = "join text with ~, e.g. {{ 'Order ' ~ deal.number }}"
_FRACTION_HINT = "a decimal field computes with whole numbers or other decimals; "
_FRACTION_HINT += "convert it first, e.g. {{ deal.amount | float * 1.2 }}"
_SET_HINT = "make the set a list first, e.g. {{ (client.tags | list) + ['new'] }}"
SEQUENCES: frozenset[Kind] = frozenset({"text", "list", "tuple"})

#: Parsing only: the syntax is Jinja2's default, the same the sandbox uses.
_PARSER = Environment(keep_trailing_newline=True, autoescape=False)

FieldKind = Callable[[str], FieldType | None]


#: The inside of ``{{ ... }}`` and ``{% ... %}``, without whitespace control (``-``, ``+``).
_TAGS = re.compile(r"\{\{[-+]?(.*?)[-+]?\}\}|\{%[-+]?(.*?)[-+]?%\}", re.DOTALL)
#: What an expression needs before it can fail by type: an operator, a filter, ``in``.
_RISKY = re.compile(r"[-+*/%<>|]|\bin\b")


def check_template_types(source: str, field_type: FieldKind) -> None:
    """Raise TemplateError (with the line) for the first operation certain to fail."""
    if not any(_RISKY.search(a or b) for a, b in _TAGS.findall(source)):
        return  # prints and plain tests only: nothing to check, and no second parse
    try:
        tree = _PARSER.parse(source)
    except Exception:  # the template checker reports syntax errors; nothing to add here
        return
    _Inference(field_type).visit(tree)


class _Inference:
    def __init__(self, field_type: FieldKind) -> None:
        self.field_type = field_type

    def visit(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Expr):
            self.kind(node)
            return
        for child in node.iter_child_nodes():
            self.visit(child)

    # -- expressions

    def kind(self, node: nodes.Expr) -> Kind | None:
        """The kind ``node`` certainly has, or None; raises where it certainly fails."""
        if isinstance(node, nodes.Const):
            return _const_kind(node.value)
        if isinstance(node, nodes.TemplateData | nodes.Concat):
            self.children(node)
            return "text"
        if isinstance(node, nodes.List | nodes.Tuple):
            self.children(node)
            return "list" if isinstance(node, nodes.List) else "tuple"
        if isinstance(node, nodes.Getattr | nodes.Getitem):
            return self.field(node)
        if isinstance(node, nodes.BinExpr) and type(node) in _SYMBOLS:
            return self.binary(node)
        if isinstance(node, nodes.Neg | nodes.Pos):
            inner = self.kind(node.node)
            if inner is not None and inner not in NUMBERS:
                sign = "-" if isinstance(node, nodes.Neg) else "+"
                raise self.fail(node, f"'{sign}' needs a number, not {self.what(node.node, inner)}")
            return "int" if inner == "bool" else inner
        if isinstance(node, nodes.Compare):
            self.compare(node)
            return "bool"
        if isinstance(node, nodes.Filter):
            return self.filter(node)
        if isinstance(node, nodes.Test | nodes.Not):
            self.children(node)
            return "bool"
        if isinstance(node, nodes.CondExpr):
            self.kind(node.test)
            first = self.kind(node.expr1)
            second = None if node.expr2 is None else self.kind(node.expr2)
            return first if first == second else None
        self.children(node)
        return None

    def children(self, node: nodes.Node) -> None:
        for child in node.iter_child_nodes():
            if isinstance(child, nodes.Expr):
                self.kind(child)
            else:
                self.visit(child)

    def field(self, node: nodes.Getattr | nodes.Getitem) -> Kind | None:
        base = node.node
        key = node.attr if isinstance(node, nodes.Getattr) else _const_key(node)
        if not isinstance(base, nodes.Name) or key is None:
            self.children(node)
            return None
        if base.name == "loop":
            return "int" if key in ("index", "index0", "revindex", "revindex0", "length") else None
        if base.name not in NAMESPACES:
            return None
        declared = self.field_type(f"{base.name}.{key}")
        return None if declared is None else FIELD_KINDS.get(declared)

    def binary(self, node: nodes.BinExpr) -> Kind | None:
        left, right = self.kind(node.left), self.kind(node.right)
        if left is None or right is None:
            return None
        symbol = _SYMBOLS[type(node)]
        result, problem = _arithmetic(symbol, left, right)
        if problem is not None:
            raise self.fail(
                node,
                f"'{symbol}' does not work on {self.what(node.left, left)} and "
                f"{self.what(node.right, right)}: the template would fail on every render",
                problem,
            )
        return result

    def compare(self, node: nodes.Compare) -> None:
        left_node: nodes.Expr = node.expr
        left = self.kind(left_node)
        for operand in node.ops:
            right = self.kind(operand.expr)
            if left is not None and right is not None:
                problem = _comparison(operand.op, left, right)
                if problem is not None:
                    raise self.fail(
                        node,
                        f"{self.what(left_node, left)} and {self.what(operand.expr, right)} "
                        f"cannot be compared with {_OPERATORS.get(operand.op, operand.op)}",
                        problem,
                    )
            left_node, left = operand.expr, right

    def filter(self, node: nodes.Filter) -> Kind | None:
        for arg in [*node.args, *(kw.value for kw in node.kwargs)]:
            self.kind(arg)
        value = None if node.node is None else self.kind(node.node)
        name = node.name
        if value is not None and node.node is not None:
            problem = _filter_input(name, value)
            if problem is not None:
                raise self.fail(
                    node, f"filter {name!r} {problem}, not {self.what(node.node, value)}"
                )
        if name in _TEXT_FILTERS:
            return "text"
        if name in ("length", "count", "int"):
            return "int"
        if name == "float":
            return "float"
        if name in ("round", "abs"):
            return value
        if name in ("sort", "unique", "list"):
            return "list"
        if name in ("first", "last", "min", "max") and value == "text":
            return "text"
        if name == "reverse":
            return "text" if value == "text" else "list" if value in ("list", "tuple") else None
        return None

    # -- messages

    def what(self, node: nodes.Expr, kind: Kind) -> str:
        shown = SHOWN[kind]
        if isinstance(node, nodes.Const):
            return f"{node.value!r} ({shown})"
        if isinstance(node, nodes.Getattr | nodes.Getitem) and isinstance(node.node, nodes.Name):
            key = node.attr if isinstance(node, nodes.Getattr) else _const_key(node)
            return f"{node.node.name}.{key} ({shown})"
        return shown

    def fail(self, node: nodes.Node, message: str, hint: str | None = None) -> TemplateError:
        return TemplateError(message, node.lineno, hint)


_OPERATORS = {"lt": "<", "lteq": "<=", "gt": ">", "gteq": ">=", "in": "in", "notin": "not in"}


def _const_kind(value: object) -> Kind | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, str):
        return "text"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    return None


def _const_key(node: nodes.Getitem) -> str | None:
    arg = node.arg
    return arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None


def _arithmetic(symbol: str, left: Kind, right: Kind) -> tuple[Kind | None, str | None]:
    """The result kind (None: unknown), or a hint when the operation certainly fails."""
    if left in NUMBERS and right in NUMBERS:
        if {left, right} == {"decimal", "float"}:
            return None, _FRACTION_HINT
        if symbol == "/" and "decimal" not in (left, right):
            return "float", None
        for kind in ("decimal", "float"):
            if kind in (left, right):
                return kind, None
        return "int", None
    if "date" in (left, right) or "datetime" in (left, right):
        if symbol == "-" and left == right:
            return None, None  # a time span; it prints, but nothing more is known
        return None, _DATE_HINT
    if symbol == "+" and left == right and left in SEQUENCES:
        return left, None
    for sequence, times in ((left, right), (right, left)):
        if symbol == "*" and sequence in SEQUENCES and times in ("int", "bool"):
            return sequence, None  # repetition
    if symbol == "+" and {left, right} == {"list", "tuple"}:
        return None, _SET_HINT
    if "text" in (left, right):
        return None, _TEXT_HINT
    return None, "templates compute with numbers only"


def _comparison(op: str, left: Kind, right: Kind) -> str | None:
    """None if ``left op right`` can run; else a hint."""
    if op in ("eq", "ne"):
        return None
    if op in ("in", "notin"):
        if right in ("list", "tuple") or (right == "text" and left == "text"):
            return None
        return "'in' looks in a list or in a text"
    if left == right or (left in NUMBERS and right in NUMBERS):
        return None
    if {left, right} == {"date", "datetime"}:
        return "a date and a date with a time do not compare; compare two dates, or two moments"
    return "only numbers with numbers, text with text, dates with dates can be ordered"


def _filter_input(name: str, value: Kind) -> str | None:
    """What filter ``name`` needs, if ``value`` certainly is not it."""
    if name == "date" and value not in ("date", "datetime"):
        return "formats a date"
    if name in ("round", "abs") and (value not in NUMBERS or value == "bool"):
        return "needs a number"
    if name in _SEQUENCE_FILTERS and value not in SEQUENCES:
        return "needs a list or a text"
    return None


__all__ = ["FIELD_KINDS", "check_template_types"]
