"""The business-rules package's operator types, written from its documented semantics.

Each of the five types (string, numeric, boolean, select, select_multiple)
casts the variable's value and the rule's value the way the package does
and answers each operator the same way, raising the same AssertionError
messages. ``interpret`` is the package's evaluation step by step, for what
the compiled path does not cover (custom types, odd operators, broken
conditions). Nothing here imports the package; ``known_types`` maps its
classes when it is installed.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

#: The package's tolerance for numeric comparisons (``NumericType.EPSILON``).
EPSILON = Decimal("0.000001")
#: ``business_rules.fields.FIELD_NO_INPUT``: operators called without the rule's value.
FIELD_NO_INPUT = "none"

_MISSING: Any = object()


# --- the package's casts and operators, per type ------------------------------------------------


def _cast_string(value: Any) -> str:
    value = value or ""
    if not isinstance(value, str):
        raise AssertionError(f"{value} is not a valid string type.")
    return value


def _cast_numeric(value: Any) -> Decimal:
    if isinstance(value, float):
        value.as_integer_ratio()  # NaN and infinities fail here, as in the package
        return Decimal(value)  # exact, like the package's float_to_decimal
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value
    raise AssertionError(f"{value} is not a valid numeric type.")


def _cast_boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise AssertionError(f"{value} is not a valid boolean type")
    return value


def _iterable(kind: str) -> Callable[[Any], Any]:
    def cast(value: Any) -> Any:
        if not hasattr(value, "__iter__"):
            raise AssertionError(f"{value} is not a valid {kind} type")
        return value

    return cast


_cast_select = _iterable("select")
_cast_select_multiple = _iterable("select multiple")


def _same(item: Any, other: Any) -> bool:
    """The package's select equality: ``str.lower`` for two strings, ``==`` otherwise."""
    if isinstance(item, str) and isinstance(other, str):
        return item.lower() == other.lower()
    return bool(item == other)


def _select_contains(values: Any, other: Any) -> bool:
    return any(_same(item, other) for item in values)


def _contains_all(values: Any, others: Any) -> bool:
    return all(_select_contains(values, other) for other in others)


def _shares_one(values: Any, others: Any) -> bool:
    return any(_select_contains(values, other) for other in others)


def _shares_exactly_one(values: Any, others: Any) -> bool:
    found = False
    for other in others:
        if _select_contains(values, other):
            if found:
                return False
            found = True
    return found


def _numeric(op: str, value: Decimal, other: Decimal) -> bool:
    """The package's numeric operators, with the same ``Decimal`` operations in the same order."""
    if op == "equal_to":
        return abs(value - other) <= EPSILON
    if op == "greater_than":
        return (value - other) > EPSILON
    if op == "less_than":
        return (other - value) > EPSILON
    if op == "greater_than_or_equal_to":
        return (value - other) > EPSILON or abs(value - other) <= EPSILON
    return (other - value) > EPSILON or abs(value - other) <= EPSILON  # less_than_or_equal_to


@dataclass(frozen=True)
class TypeSpec:
    """One of the package's operator types: how it casts values and which operators it has."""

    name: str
    cast: Callable[[Any], Any]
    #: operator -> (input type, whether the rule's value is cast first)
    operators: Mapping[str, tuple[str, bool]]


NUMERIC_OPS = (
    "equal_to",
    "greater_than",
    "greater_than_or_equal_to",
    "less_than",
    "less_than_or_equal_to",
)
TYPES: dict[str, TypeSpec] = {
    "StringType": TypeSpec(
        "string",
        _cast_string,
        {
            "equal_to": ("text", True),
            "equal_to_case_insensitive": ("text", True),
            "starts_with": ("text", True),
            "ends_with": ("text", True),
            "contains": ("text", True),
            "matches_regex": ("text", True),
            "non_empty": (FIELD_NO_INPUT, True),
        },
    ),
    "NumericType": TypeSpec(
        "numeric", _cast_numeric, {op: ("numeric", True) for op in NUMERIC_OPS}
    ),
    "BooleanType": TypeSpec(
        "boolean",
        _cast_boolean,
        {"is_true": (FIELD_NO_INPUT, True), "is_false": (FIELD_NO_INPUT, True)},
    ),
    "SelectType": TypeSpec(
        "select",
        _cast_select,
        {"contains": ("select", False), "does_not_contain": ("select", False)},
    ),
    "SelectMultipleType": TypeSpec(
        "select_multiple",
        _cast_select_multiple,
        {
            op: ("select_multiple", True)
            for op in (
                "contains_all",
                "is_contained_by",
                "shares_at_least_one_element_with",
                "shares_exactly_one_element_with",
                "shares_no_elements_with",
            )
        },
    ),
}


def _package_types() -> dict[type, TypeSpec]:
    """The package's own operator classes, mapped to their specs (empty if it is not installed)."""
    try:
        from business_rules import operators
    except ImportError:  # pragma: no cover - the extra is installed in tests
        return {}
    return {getattr(operators, name): spec for name, spec in TYPES.items()}


_KNOWN: dict[type, TypeSpec] | None = None


def known_types() -> dict[type, TypeSpec]:
    global _KNOWN
    if _KNOWN is None:
        _KNOWN = _package_types()
    return _KNOWN


def _specialise(spec: TypeSpec, op: str, raw: Any) -> Callable[[Any], Any]:
    """``test(variable_value)`` for a known type and operator, the rule's value prepared once."""
    cast = spec.cast
    input_type, cast_argument = spec.operators[op]
    if input_type == FIELD_NO_INPUT:
        if op == "non_empty":
            return lambda value: bool(cast(value))
        if op == "is_true":
            return cast
        return lambda value: not cast(value)  # is_false
    try:
        other = cast(raw) if cast_argument else raw
    except Exception as error:  # raised after the variable is read, as in the package
        failure = error

        def fail(value: Any) -> Any:
            cast(value)
            raise copy.copy(failure)

        return fail
    if spec.name == "numeric":
        return lambda value: _numeric(op, cast(value), other)
    if spec.name == "string":
        return _string_test(op, other, cast)
    if op in ("contains", "does_not_contain"):
        wanted = op == "contains"
        return lambda value: _select_contains(cast(value), other) is wanted
    if op == "contains_all":
        return lambda value: _contains_all(cast(value), other)
    if op == "is_contained_by":
        return lambda value: _contains_all(other, cast(value))
    if op == "shares_at_least_one_element_with":
        return lambda value: _shares_one(cast(value), other)
    if op == "shares_exactly_one_element_with":
        return lambda value: _shares_exactly_one(cast(value), other)
    return lambda value: not _shares_one(cast(value), other)  # shares_no_elements_with


def _string_test(op: str, other: str, cast: Callable[[Any], str]) -> Callable[[Any], Any]:
    if op == "equal_to":
        return lambda value: cast(value) == other
    if op == "equal_to_case_insensitive":
        lowered = other.lower()
        return lambda value: cast(value).lower() == lowered
    if op == "starts_with":
        return lambda value: cast(value).startswith(other)
    if op == "ends_with":
        return lambda value: cast(value).endswith(other)
    if op == "contains":
        return lambda value: other in cast(value)
    try:  # matches_regex: re.search, so the result is a match object or None
        pattern = re.compile(other)
    except re.error:
        return lambda value: re.search(other, cast(value))
    return lambda value: pattern.search(cast(value))


# --- step-by-step interpretation, for whatever the fast path does not cover ------------------


def _variable(defined_variables: Any, name: Any) -> tuple[Any, Any]:
    """(the variable method, its value), failing like the package for an unknown name."""
    method = getattr(defined_variables, name, _MISSING)
    if method is _MISSING:
        raise AssertionError(
            f"Variable {name} is not defined in class {type(defined_variables).__name__}"
        )
    return method, method()


def _compare(typed: Any, op: Any, value: Any) -> Any:
    """``_do_operator_comparison`` of the package, for any operator type."""
    method = getattr(typed, op, _MISSING)
    if method is _MISSING:
        raise AssertionError(f"Operator {op} does not exist for type {type(typed).__name__}")
    if getattr(method, "input_type", "") == FIELD_NO_INPUT:
        return method()
    return method(value)


def interpret_condition(condition: Any, defined_variables: Any) -> Any:
    """``check_condition`` of the package, step by step (no compilation)."""
    name, op, value = condition["name"], condition["operator"], condition["value"]
    method, result = _variable(defined_variables, name)
    return _compare(method.field_type(result), op, value)


def _check(holds: bool) -> None:
    """The package's bare ``assert``: an AssertionError without a message, none under -O."""
    if __debug__ and not holds:
        raise AssertionError


def interpret(conditions: Any, defined_variables: Any) -> Any:
    """``check_conditions_recursively`` of the package, step by step."""
    keys = list(conditions.keys())
    if keys == ["all"]:
        _check(len(conditions["all"]) >= 1)
        return all(interpret(item, defined_variables) for item in conditions["all"])
    if keys == ["any"]:
        _check(len(conditions["any"]) >= 1)
        return any(interpret(item, defined_variables) for item in conditions["any"])
    _check(not ("any" in keys or "all" in keys))
    return interpret_condition(conditions, defined_variables)


# --- compilation --------------------------------------------------------------------------------


def _leaf_tests(op: str, raw: Any) -> Callable[[Any], Callable[[Any], Any]]:
    """``tests(field_type)``: the leaf's test for a variable type, built on first use."""
    built: dict[Any, Callable[[Any], Any]] = {}

    def tests(field_type: Any) -> Callable[[Any], Any]:
        test = built.get(field_type)
        if test is not None:
            return test
        spec = known_types().get(field_type) if isinstance(field_type, type) else None
        if spec is not None and op in spec.operators:
            test = _specialise(spec, op, raw)
        else:

            def test(value: Any) -> Any:
                return _compare(field_type(value), op, raw)

        built[field_type] = test
        return test

    return tests


@dataclass(frozen=True)
class FastNumeric:
    """A numeric leaf as plain comparisons of ints and floats with precomputed bounds.

    The package computes ``value - other`` in ``Decimal`` and compares it with
    the epsilon; for an int or finite float value and a rule value that is
    not pathologically precise, that is the same as comparing the value with
    ``other +/- epsilon`` exactly, which for ints and floats is one
    comparison with an int or float bound worked out here once.
    """

    ints: Callable[[int], bool]
    floats: Callable[[float], bool]
    #: (int low, int high, float low, float high) that the two tests compare with
    bounds: tuple[int, int, float, float]


def _nice(raw: Any) -> Decimal | None:
    """The rule's value as an exact Decimal when the fast comparisons are exact for it."""
    if isinstance(raw, bool):
        return Decimal(raw)
    if isinstance(raw, int):
        return Decimal(raw) if abs(raw) < 10**18 else None
    if isinstance(raw, float):
        if raw - raw != 0.0 or (raw != 0.0 and abs(raw) < 2.0**-20) or abs(raw) >= 2.0**60:
            return None
        return Decimal(raw)
    if isinstance(raw, Decimal) and raw.is_finite():
        digits = len(raw.as_tuple().digits)
        if digits <= 15 and (raw == 0 or Decimal("1e-6") <= abs(raw) < Decimal("1e15")):
            return raw
    return None


def _float_at_least(bound: Decimal) -> float:
    """The smallest float >= bound."""
    nearest = float(bound)
    return nearest if Decimal(nearest) >= bound else math.nextafter(nearest, math.inf)


def _float_above(bound: Decimal) -> float:
    """The smallest float > bound."""
    nearest = float(bound)
    return nearest if Decimal(nearest) > bound else math.nextafter(nearest, math.inf)


def fast_numeric(op: str, raw: Any) -> FastNumeric | None:
    other = _nice(raw)
    if other is None or op not in NUMERIC_OPS:
        return None
    with localcontext() as exact:
        exact.prec = 60
        low, high = other - EPSILON, other + EPSILON
    # lo <= v <= hi is equal_to; the others are one side of it
    int_low, int_high = math.ceil(low), math.floor(high)
    float_low, float_high = _float_at_least(low), _float_above(high)
    bounds = (int_low, int_high, float_low, float_high)
    if op == "equal_to":
        return FastNumeric(
            lambda v: int_low <= v <= int_high, lambda v: float_low <= v < float_high, bounds
        )
    if op == "greater_than":
        return FastNumeric(lambda v: v > int_high, lambda v: v >= float_high, bounds)
    if op == "greater_than_or_equal_to":
        return FastNumeric(lambda v: v >= int_low, lambda v: v >= float_low, bounds)
    if op == "less_than":
        return FastNumeric(lambda v: v < int_low, lambda v: v < float_low, bounds)
    return FastNumeric(lambda v: v <= int_high, lambda v: v < float_high, bounds)


def _string_fast(op: str, raw: Any) -> Callable[[str], Any] | None:
    """A string leaf for a value that is already a str (the package's cast is then a no-op)."""
    spec = TYPES["StringType"]
    if op not in spec.operators or spec.operators[op][0] == FIELD_NO_INPUT:
        return (lambda v: bool(v)) if op == "non_empty" else None
    try:
        _cast_string(raw)
    except AssertionError:
        return None
    return _string_test(op, _cast_string(raw), lambda v: v)


__all__ = [
    "EPSILON",
    "FIELD_NO_INPUT",
    "NUMERIC_OPS",
    "TYPES",
    "FastNumeric",
    "TypeSpec",
    "fast_numeric",
    "interpret",
    "interpret_condition",
    "known_types",
]
