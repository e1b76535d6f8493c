"""A faster drop-in for ``business_rules.engine``: same calls, same answers, same errors.

Applications built on the ``business-rules`` package call ``run_all`` once per
object with the same rule list. The package re-reads every condition, builds
an operator object per leaf and re-casts the rule's value on every call; here
a rule list is compiled once (cached by content) into closures, and only the
variable methods run per object, in the order and as often as the package
calls them (a variable method may have side effects or read the clock).

Exactness is by construction: the five operator types of the package get
specialised tests written from its documented semantics (numeric comparisons
with its epsilon in ``Decimal``, ``matches_regex`` as ``re.search``,
case-insensitive select membership with ``str.lower``); anything else (a
custom ``BaseType``, an unknown operator, a malformed condition) is
interpreted step by step the way the package does it, so it fails with the
same exception at the same moment.
"""

from __future__ import annotations

import copy
import json
import math
import operator
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any, TypeAlias

#: The package's tolerance for numeric comparisons (``NumericType.EPSILON``).
EPSILON = Decimal("0.000001")
#: ``business_rules.fields.FIELD_NO_INPUT``: operators called without the rule's value.
FIELD_NO_INPUT = "none"

#: A compiled condition: ``test(variables, memo)``; ``memo`` is None or the values read so far.
Test: TypeAlias = Callable[[Any, "dict[str, tuple[Any, Any]] | None"], Any]
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


def compile_leaf(condition: Any) -> Test:
    """The compiled ``check_condition`` of one leaf; odd leaves are interpreted."""
    if not (
        isinstance(condition, dict)
        and {"name", "operator", "value"} <= condition.keys()
        and isinstance(condition["name"], str)
        and isinstance(condition["operator"], str)
    ):
        return lambda variables, memo: interpret_condition(condition, variables)
    name, op, raw = condition["name"], condition["operator"], condition["value"]
    tests = _leaf_tests(op, raw)
    numeric = fast_numeric(op, raw)
    numeric_type = next((t for t, spec in known_types().items() if spec.name == "numeric"), None)
    string_type = next((t for t, spec in known_types().items() if spec.name == "string"), None)
    string_test = _string_fast(op, raw)

    def leaf(variables: Any, memo: dict[str, tuple[Any, Any]] | None) -> Any:
        read = memo.get(name) if memo is not None else None
        if read is None:
            method = getattr(variables, name, _MISSING)
            if method is _MISSING:
                raise AssertionError(
                    f"Variable {name} is not defined in class {type(variables).__name__}"
                )
            value = method()
            field_type = method.field_type
            if memo is not None:
                memo[name] = (value, field_type)
        else:
            value, field_type = read
        if field_type is numeric_type and numeric is not None:
            kind = type(value)
            if kind is int:
                return numeric.ints(value)
            if kind is float and value - value == 0.0:  # finite
                return numeric.floats(value)
        elif field_type is string_type and string_test is not None and type(value) is str:
            return string_test(value)
        return tests(field_type)(value)

    return leaf


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
    if op == "equal_to":
        return FastNumeric(
            lambda v: int_low <= v <= int_high, lambda v: float_low <= v < float_high
        )
    if op == "greater_than":
        return FastNumeric(lambda v: v > int_high, lambda v: v >= float_high)
    if op == "greater_than_or_equal_to":
        return FastNumeric(lambda v: v >= int_low, lambda v: v >= float_low)
    if op == "less_than":
        return FastNumeric(lambda v: v < int_low, lambda v: v < float_low)
    return FastNumeric(lambda v: v <= int_high, lambda v: v < float_high)


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


def _all_of(parts: tuple[Test, ...]) -> Test:
    def all_of(variables: Any, memo: dict[str, tuple[Any, Any]] | None) -> bool:
        for part in parts:  # noqa: SIM110 - a loop is cheaper than all() on a generator
            if not part(variables, memo):
                return False
        return True

    return all_of


def _any_of(parts: tuple[Test, ...]) -> Test:
    def any_of(variables: Any, memo: dict[str, tuple[Any, Any]] | None) -> bool:
        for part in parts:  # noqa: SIM110 - a loop is cheaper than all() on a generator
            if part(variables, memo):
                return True
        return False

    return any_of


def compile_conditions(conditions: Any) -> Test:
    """The compiled ``check_conditions_recursively``; anything unusual is interpreted."""
    if not isinstance(conditions, dict):
        return lambda variables, memo: interpret(conditions, variables)
    keys = list(conditions)
    if keys in (["all"], ["any"]):
        items = conditions[keys[0]]
        if not isinstance(items, list | tuple) or not items:
            return lambda variables, memo: interpret(conditions, variables)
        parts = tuple(compile_conditions(item) for item in items)
        return _all_of(parts) if keys == ["all"] else _any_of(parts)
    if "all" in keys or "any" in keys:
        return lambda variables, memo: interpret(conditions, variables)
    return compile_leaf(conditions)


def _compile_rule(rule: Any) -> Test:
    try:
        conditions = rule["conditions"]
    except Exception:
        return lambda variables, memo: rule["conditions"]  # raises as the package does
    return compile_conditions(conditions)


# --- the cache ----------------------------------------------------------------------------------


def content_key(value: Any) -> str | None:
    """A key that tells rule lists apart by content (types included); None if it can't."""
    try:
        return json.dumps(value, sort_keys=True, default=_typed, allow_nan=True)
    except (TypeError, ValueError):
        return None


def _typed(value: Any) -> str:
    if isinstance(value, Decimal | tuple):
        return f"{type(value).__name__}:{value!r}"
    raise TypeError(type(value).__name__)


@dataclass
class _Entry:
    source: Any
    #: the rule objects of the list when it was compiled
    rules: tuple[Any, ...]
    tests: tuple[Test, ...]


@dataclass
class CompiledCache:
    """Compiled rule lists by content; the lists seen lately are also found by identity.

    A new list object is looked up by its content (a canonical JSON text), so
    rules read again from the same JSON reuse the compiled form. The same list
    object seen again, holding the same rule objects, is a hit without reading
    its content: that is what makes a loop over many objects cheap. A rule
    dictionary edited in place after it ran is not noticed; call ``clear()``.
    """

    size: int = 64
    _by_key: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)
    _by_id: dict[int, _Entry] = field(default_factory=dict)
    compilations: int = 0

    def rules(self, rule_list: Sequence[Any]) -> tuple[Test, ...]:
        entry = self._by_id.get(id(rule_list))
        if (
            entry is not None
            and entry.source is rule_list
            and len(rule_list) == len(entry.rules)
            and all(map(operator.is_, rule_list, entry.rules))
        ):
            return entry.tests
        key = content_key(rule_list)
        if key is not None:
            found = self._by_key.get(key)
            if found is not None:
                self._by_key.move_to_end(key)
                self._remember(rule_list, found.tests)
                return found.tests
        self.compilations += 1
        tests = tuple(_compile_rule(rule) for rule in rule_list)
        if key is not None:
            self._by_key[key] = _Entry(None, (), tests)
            if len(self._by_key) > self.size:
                self._by_key.popitem(last=False)
            self._remember(rule_list, tests)
        return tests

    def _remember(self, rule_list: Sequence[Any], tests: tuple[Test, ...]) -> None:
        if len(self._by_id) >= self.size:
            self._by_id.clear()
        self._by_id[id(rule_list)] = _Entry(rule_list, tuple(rule_list), tests)

    def clear(self) -> None:
        self._by_key.clear()
        self._by_id.clear()


CACHE = CompiledCache()


def _compiled(rule_list: Any) -> tuple[Test, ...] | None:
    if isinstance(rule_list, list | tuple):
        return CACHE.rules(rule_list)
    return None  # an iterator: read and compiled rule by rule, as the package reads it


# --- the drop-in API ----------------------------------------------------------------------------


def do_actions(actions: Iterable[Any], defined_actions: Any) -> list[Any]:
    """Call each action's method with its params; returns what each call returned."""
    returned = []
    for action in actions:
        name = action["name"]
        params = action.get("params") or {}
        method = getattr(defined_actions, name, _MISSING)
        if method is _MISSING:
            raise AssertionError(
                f"Action {name} is not defined in class {type(defined_actions).__name__}"
            )
        returned.append(method(**params))
    return returned


@dataclass(frozen=True)
class FiredRule:
    """A rule that fired: its position in the list, the rule, and what its actions returned."""

    index: int
    rule: Any
    returned: tuple[Any, ...]


@dataclass(frozen=True)
class RunResult:
    """What ``run_all_results`` did: the rules that fired, in order."""

    fired: tuple[FiredRule, ...]

    @property
    def triggered(self) -> bool:
        """What ``run_all`` returns."""
        return bool(self.fired)


def _fire(
    rule: Any,
    test: Test | None,
    defined_variables: Any,
    defined_actions: Any,
    memo: dict[str, tuple[Any, Any]] | None,
) -> list[Any] | None:
    conditions = rule["conditions"]  # both read before the conditions run, as in the package
    actions = rule["actions"]
    if test is None:
        test = compile_conditions(conditions)
    if not test(defined_variables, memo):
        return None
    if memo is not None:
        memo.clear()  # an action may change what the variables read
    return do_actions(actions, defined_actions)


def run_all_results(
    rule_list: Iterable[Any],
    defined_variables: Any,
    defined_actions: Any,
    stop_on_first_trigger: bool = False,
    *,
    reuse_values: bool = False,
) -> RunResult:
    """``run_all`` that also says which rules fired and what each action returned."""
    tests = _compiled(rule_list)
    memo: dict[str, tuple[Any, Any]] | None = {} if reuse_values else None
    fired: list[FiredRule] = []
    for index, rule in enumerate(rule_list):
        test = tests[index] if tests is not None else None
        returned = _fire(rule, test, defined_variables, defined_actions, memo)
        if returned is not None:
            fired.append(FiredRule(index, rule, tuple(returned)))
            if stop_on_first_trigger:
                break
    return RunResult(tuple(fired))


def run_all(
    rule_list: Iterable[Any],
    defined_variables: Any,
    defined_actions: Any,
    stop_on_first_trigger: bool = False,
    *,
    reuse_values: bool = False,
) -> bool:
    """``business_rules.engine.run_all``: run every rule in order; True if any fired.

    ``reuse_values=True`` (not in the package) calls each variable method at
    most once per call until an action runs, instead of once per condition
    that reads it: the same answers for variables that only read the object,
    and several times faster for rule lists that test a variable often.
    """
    tests = _compiled(rule_list)
    memo: dict[str, tuple[Any, Any]] | None = {} if reuse_values else None
    triggered = False
    if tests is not None:
        for rule, test in zip(rule_list, tests, strict=True):
            if _fire(rule, test, defined_variables, defined_actions, memo) is not None:
                triggered = True
                if stop_on_first_trigger:
                    return True
        return triggered
    for rule in rule_list:
        if _fire(rule, None, defined_variables, defined_actions, memo) is not None:
            triggered = True
            if stop_on_first_trigger:
                return True
    return triggered


def run(rule: Any, defined_variables: Any, defined_actions: Any) -> bool:
    """``business_rules.engine.run``: one rule; True if it fired."""
    test = CACHE.rules([rule])[0] if isinstance(rule, dict) else None
    return _fire(rule, test, defined_variables, defined_actions, None) is not None


def check_conditions_recursively(conditions: Any, defined_variables: Any) -> Any:
    """``business_rules.engine.check_conditions_recursively``."""
    return CACHE.rules([{"conditions": conditions}])[0](defined_variables, None)


def check_condition(condition: Any, defined_variables: Any) -> Any:
    """``business_rules.engine.check_condition``: one leaf; returns what the operator returns."""
    return compile_leaf(condition)(defined_variables, None)


__all__ = [
    "CACHE",
    "EPSILON",
    "FIELD_NO_INPUT",
    "CompiledCache",
    "FiredRule",
    "RunResult",
    "check_condition",
    "check_conditions_recursively",
    "do_actions",
    "interpret",
    "interpret_condition",
    "run",
    "run_all",
    "run_all_results",
]
