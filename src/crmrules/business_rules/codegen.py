"""A rule list compiled to Python source: the drop-in's fast path for ``run_all``.

Calling one closure per condition costs more than the comparison it makes,
so a well-formed rule list becomes one generated function: each rule's
condition is one expression (``and``/``or`` short-circuit as the package's
loops do), each leaf reads its variable as the package does (``getattr``,
call, ``field_type``; with ``reuse_values`` once, at first use, into a local
variable) and then, for an int, float, str, bool or list-of-str value of a
known type, makes one comparison with a constant worked out at compile time
(see ``semantics.fast_numeric``); any other value goes through the same
closures as the slow path. Names and constants never enter the source as
text: names are ``repr`` literals of checked ``str`` values and constants
are looked up in the function's globals.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from crmrules.business_rules.semantics import (
    _MISSING,
    _leaf_tests,
    fast_numeric,
    interpret,
    interpret_condition,
    known_types,
)

#: ``runner(variables, fire)``: ``fire(index)`` runs rule ``index``'s actions; True stops.
Runner = Callable[[Any, Callable[[int], bool]], None]

_INT = {
    "equal_to": "{0} <= x <= {1}",
    "greater_than": "x > {1}",
    "greater_than_or_equal_to": "x >= {0}",
    "less_than": "x < {0}",
    "less_than_or_equal_to": "x <= {1}",
}
_FLOAT = {
    "equal_to": "{2} <= x < {3}",
    "greater_than": "x >= {3}",
    "greater_than_or_equal_to": "x >= {2}",
    "less_than": "x < {2}",
    "less_than_or_equal_to": "x < {3}",
}
_STRING = {
    "equal_to": "x == {0}",
    "equal_to_case_insensitive": "x.lower() == {0}",
    "starts_with": "x.startswith({0})",
    "ends_with": "x.endswith({0})",
    "contains": "{0} in x",
    "matches_regex": "{0}.search(x)",
    "non_empty": "x",
}


#: select / select_multiple operators on ``L``, the lowered strs of the value, and ``K``
_SETS = {
    "contains": "{0} in L",
    "does_not_contain": "{0} not in L",
    "contains_all": "{0} <= L",
    "is_contained_by": "L <= {0}",
    "shares_at_least_one_element_with": "not {0}.isdisjoint(L)",
    "shares_no_elements_with": "{0}.isdisjoint(L)",
    "shares_exactly_one_element_with": "count({0}, L) == 1",
}


def _lowered(values: Any) -> set[str] | None:
    """The lowered items of a list or tuple of str; None for anything else (the slow path)."""
    kind = type(values)
    if kind is not list and kind is not tuple:
        return None
    lowered = set()
    for item in values:
        if type(item) is not str:
            return None
        lowered.add(item.lower())
    return lowered


def _count(others: tuple[str, ...], lowered: set[str]) -> int:
    return sum(other in lowered for other in others)


def _set_constant(op: str, raw: Any) -> Any:
    """The lowered rule value a select fast path compares with, or None when there is none."""
    if op in ("contains", "does_not_contain"):
        return raw.lower() if type(raw) is str else None
    kind = type(raw)
    if op not in _SETS or (kind is not list and kind is not tuple):
        return None
    if any(type(item) is not str for item in raw):
        return None
    lowered = tuple(item.lower() for item in raw)
    return lowered if op == "shares_exactly_one_element_with" else frozenset(lowered)


def _missing(variables: Any, name: str) -> None:
    raise AssertionError(f"Variable {name} is not defined in class {type(variables).__name__}")


class _Writer:
    """Writes each rule's condition as one Python expression; constants go in ``names``."""

    def __init__(self, reuse: bool) -> None:
        self.reuse = reuse
        self.names: dict[str, Any] = {"missing": _missing, "count": _count}
        self.types = {spec.name: kind for kind, spec in known_types().items()}
        self.names["rd"] = _reader(self.types)
        #: with reuse, the local variable that keeps each variable's reading
        self.slots: dict[str, str] = {}

    def const(self, value: Any) -> str:
        name = f"k{len(self.names)}"
        self.names[name] = value
        return name


def _plain_leaf(item: dict[str, Any]) -> bool:
    return (
        {"name", "operator", "value"} <= item.keys()
        and isinstance(item["name"], str)
        and isinstance(item["operator"], str)
    )


def _string_constant(op: str, raw: Any) -> Any:
    """The constant a str fast path compares with, or None when there is none."""
    if op not in _STRING:
        return None
    if op == "non_empty":
        return ""
    other = raw or ""
    if not isinstance(other, str):
        return None
    if op == "equal_to_case_insensitive":
        return other.lower()
    if op == "matches_regex":
        try:
            return re.compile(other)
        except re.error:
            return None
    return other


def well_formed(rule_list: Sequence[Any]) -> bool:
    """Rules whose ``conditions`` and ``actions`` are there to read (else the slow path raises)."""
    return all(
        isinstance(rule, dict) and "conditions" in rule and "actions" in rule
        and isinstance(rule["conditions"], dict) and rule["conditions"]
        for rule in rule_list
    )  # fmt: skip


# --- reuse_values: each variable read once, every condition one expression --------------------

#: what ``read`` says about a value, so that a leaf picks its fast form with one comparison
_KINDS = {"int": 1, "float": 2, "str": 3, "bool": 4, "select": 5, "select_multiple": 6}
_X = re.compile(r"\bx\b")
_L = re.compile(r"\bL\b")
_MAX_DEPTH = 25


def _reader(types: dict[str, Any]) -> Callable[[Any, str], tuple[int, Any, Any, Any]]:
    """``read(variables, name)``: (kind, value, field type, lowered items) of one variable."""
    absent = object()
    numeric, string, boolean, select, multiple = (
        types.get(name, absent)
        for name in ("numeric", "string", "boolean", "select", "select_multiple")
    )

    def read(variables: Any, name: str) -> tuple[int, Any, Any, Any]:
        method = getattr(variables, name, _MISSING)
        if method is _MISSING:
            _missing(variables, name)
        value = method()
        field_type = method.field_type
        kind = type(value)
        if field_type is numeric:
            if kind is int:
                return 1, value, field_type, None
            if kind is float and value - value == 0.0:
                return 2, value, field_type, None
        elif field_type is string:
            if kind is str:
                return 3, value, field_type, None
        elif field_type is boolean:
            if kind is bool:
                return 4, value, field_type, None
        elif field_type is select or field_type is multiple:
            lowered = _lowered(value)
            if lowered is not None:
                return (5 if field_type is select else 6), value, field_type, lowered
        return 0, value, field_type, None

    return read


class _Conditions(_Writer):
    """The conditions of a rule list, read as the package reads them."""

    def expression(self, node: Any, depth: int = 0) -> str:
        if depth > _MAX_DEPTH:
            raise RecursionError("too deep for one expression")
        keys = list(node) if isinstance(node, dict) else []
        if keys in (["all"], ["any"]):
            items = node[keys[0]]
            if isinstance(items, list | tuple) and items:
                joined = (" and " if keys == ["all"] else " or ").join(
                    self.expression(item, depth + 1) for item in items
                )
                return f"({joined})"
        if not isinstance(node, dict) or "all" in keys or "any" in keys:
            return f"{self.const(lambda v, c=node: interpret(c, v))}(v)"
        if not _plain_leaf(node):
            return f"{self.const(lambda v, c=node: interpret_condition(c, v))}(v)"
        return self.leaf_expression(node["name"], node["operator"], node["value"])

    def leaf_expression(self, name: str, op: str, raw: Any) -> str:
        if self.reuse:
            slot = self.slots.setdefault(name, f"e{len(self.slots)}")
            read = f"({slot} if {slot} is not None else ({slot} := rd(v, {name!r})))"
        else:
            read = f"rd(v, {name!r})"
        slow = f"{self.const(_leaf_tests(op, raw))}(e[2])(e[1])"
        kinds = self.kinds(op, raw)
        if not kinds:
            return f"{self.const(_leaf_tests(op, raw))}((e := {read})[2])(e[1])"
        (code, first), rest = kinds[0], kinds[1:]
        chain = f"({first} if (e := {read})[0] == {code} else "
        chain += "".join(f"{expression} if e[0] == {code} else " for code, expression in rest)
        return f"{chain}{slow})"

    def kinds(self, op: str, raw: Any) -> list[tuple[int, str]]:
        """(kind, expression) for each kind of value with a fast form of ``op``."""
        found: list[tuple[int, str]] = []
        numeric = fast_numeric(op, raw) if "numeric" in self.types else None
        if numeric is not None:
            bounds = [self.const(b) for b in numeric.bounds]
            found.append((_KINDS["int"], _INT[op].format(*bounds)))
            found.append((_KINDS["float"], _FLOAT[op].format(*bounds)))
        text = _string_constant(op, raw) if "string" in self.types else None
        if text is not None:
            found.append((_KINDS["str"], _STRING[op].format(self.const(text))))
        if op in ("is_true", "is_false") and "boolean" in self.types:
            found.append((_KINDS["bool"], "x" if op == "is_true" else "(not x)"))
        constant = _set_constant(op, raw)
        kind = "select" if op in ("contains", "does_not_contain") else "select_multiple"
        if constant is not None and kind in self.types:
            found.append((_KINDS[kind], _SETS[op].format(self.const(constant))))
        return [(code, "(" + _L.sub("e[3]", _X.sub("e[1]", text)) + ")") for code, text in found]


def _generate_expressions(rule_list: Sequence[Any], reuse: bool) -> Runner | None:
    writer = _Conditions(reuse)
    try:
        tests = [writer.expression(rule["conditions"]) for rule in rule_list]
    except RecursionError:
        return None
    body = ["def run(v, fire):"]
    if writer.slots:
        body.append(f"    {' = '.join(writer.slots.values())} = None")
    for index, test in enumerate(tests):
        body += [f"    if {test}:", f"        if fire({index}): return"]
    body.append("    return None")
    return _build(body, writer.names)


def _build(lines: list[str], names: dict[str, Any]) -> Runner:
    namespace = dict(names)
    exec(compile("\n".join([*lines, ""]), "<business-rules>", "exec"), namespace)
    runner: Runner = namespace["run"]
    return runner


def generate(rule_list: Sequence[Any], reuse: bool) -> Runner | None:
    """The generated ``runner`` for a rule list; None when the closures must run instead.

    Those are a list that is not well formed (so that it fails as in the
    package) and conditions nested deeper than one expression may be.
    """
    if not well_formed(rule_list):
        return None
    return _generate_expressions(rule_list, reuse)


__all__ = ["Runner", "generate", "well_formed"]
