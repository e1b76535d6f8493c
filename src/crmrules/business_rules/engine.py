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

import contextlib
import copy
import json
import operator
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeAlias

from crmrules.business_rules.codegen import Runner, generate
from crmrules.business_rules.semantics import (
    _MISSING,
    EPSILON,
    FIELD_NO_INPUT,
    _leaf_tests,
    _string_fast,
    fast_numeric,
    interpret,
    interpret_condition,
    known_types,
)

#: A compiled condition: ``test(variables, memo)``; ``memo`` is None or the values read so far.
Test: TypeAlias = Callable[[Any, "dict[str, tuple[Any, Any]] | None"], Any]


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


class Compiled:
    """A compiled rule list: one test per rule, and the generated runners (built on first use)."""

    def __init__(self, rule_list: Sequence[Any]) -> None:
        self.tests = tuple(_compile_rule(rule) for rule in rule_list)
        self._source = rule_list
        self._runners: dict[bool, Runner | None] = {}

    def runner(self, reuse: bool) -> Runner | None:
        if reuse not in self._runners:
            self._runners[reuse] = generate(self._source, reuse)
        return self._runners[reuse]


@dataclass
class _Entry:
    source: Any
    #: the rule objects of the list when it was compiled
    rules: tuple[Any, ...]
    compiled: Compiled


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
    _by_key: OrderedDict[str, Compiled] = field(default_factory=OrderedDict)
    _by_id: dict[int, _Entry] = field(default_factory=dict)
    compilations: int = 0

    def rules(self, rule_list: Sequence[Any]) -> Compiled:
        entry = self._by_id.get(id(rule_list))
        if (
            entry is not None
            and entry.source is rule_list
            and len(rule_list) == len(entry.rules)
            and all(map(operator.is_, rule_list, entry.rules))
        ):
            return entry.compiled
        key = content_key(rule_list)
        if key is not None:
            found = self._by_key.get(key)
            if found is not None:
                with contextlib.suppress(KeyError):  # another thread may have dropped it
                    self._by_key.move_to_end(key)
                self._remember(rule_list, found)
                return found
        self.compilations += 1
        compiled = Compiled(copy.deepcopy(rule_list) if key is not None else rule_list)
        if key is not None:
            self._by_key[key] = compiled
            if len(self._by_key) > self.size:
                self._by_key.popitem(last=False)
            self._remember(rule_list, compiled)
        return compiled

    def _remember(self, rule_list: Sequence[Any], compiled: Compiled) -> None:
        if len(self._by_id) >= self.size:
            self._by_id.clear()
        self._by_id[id(rule_list)] = _Entry(rule_list, tuple(rule_list), compiled)

    def clear(self) -> None:
        self._by_key.clear()
        self._by_id.clear()


CACHE = CompiledCache()


def _compiled(rule_list: Any) -> Compiled | None:
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
    return do_actions(actions, defined_actions)


def _run(
    rule_list: Iterable[Any],
    defined_variables: Any,
    defined_actions: Any,
    stop: bool,
    reuse: bool,
    fired: list[FiredRule] | None,
) -> bool:
    """The loop of ``run_all``; ``fired`` collects what fired when given."""
    compiled = _compiled(rule_list)
    runner = compiled.runner(reuse) if compiled is not None else None
    if runner is not None:
        rules: Sequence[Any] = rule_list  # type: ignore[assignment]
        triggered = False

        def fire(index: int) -> bool:
            nonlocal triggered
            returned = do_actions(rules[index]["actions"], defined_actions)
            triggered = True
            if fired is not None:
                fired.append(FiredRule(index, rules[index], tuple(returned)))
            return stop

        runner(defined_variables, fire)
        return triggered
    memo: dict[str, tuple[Any, Any]] | None = {} if reuse else None
    tests = compiled.tests if compiled is not None else None
    triggered = False
    for index, rule in enumerate(rule_list):
        test = tests[index] if tests is not None else None
        returned = _fire(rule, test, defined_variables, defined_actions, memo)
        if returned is not None:
            triggered = True
            if fired is not None:
                fired.append(FiredRule(index, rule, tuple(returned)))
            if stop:
                break
    return triggered


def run_all_results(
    rule_list: Iterable[Any],
    defined_variables: Any,
    defined_actions: Any,
    stop_on_first_trigger: bool = False,
    *,
    reuse_values: bool = False,
) -> RunResult:
    """``run_all`` that also says which rules fired and what each action returned."""
    fired: list[FiredRule] = []
    _run(rule_list, defined_variables, defined_actions, stop_on_first_trigger, reuse_values, fired)
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
    most once per call, when a condition first reads it, instead of once per
    condition that reads it. The answers are the same when variables only
    read the object and actions do not change what they read; it is several
    times faster for rule lists that test the same variables often.
    """
    return _run(
        rule_list, defined_variables, defined_actions, stop_on_first_trigger, reuse_values, None
    )


def run(rule: Any, defined_variables: Any, defined_actions: Any) -> bool:
    """``business_rules.engine.run``: one rule; True if it fired."""
    test = CACHE.rules([rule]).tests[0] if isinstance(rule, dict) else None
    return _fire(rule, test, defined_variables, defined_actions, None) is not None


def check_conditions_recursively(conditions: Any, defined_variables: Any) -> Any:
    """``business_rules.engine.check_conditions_recursively``."""
    return CACHE.rules([{"conditions": conditions}]).tests[0](defined_variables, None)


def check_condition(condition: Any, defined_variables: Any) -> Any:
    """``business_rules.engine.check_condition``: one leaf; returns what the operator returns."""
    return compile_leaf(condition)(defined_variables, None)


__all__ = [
    "CACHE",
    "EPSILON",
    "FIELD_NO_INPUT",
    "Compiled",
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
