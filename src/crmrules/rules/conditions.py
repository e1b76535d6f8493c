"""Conditions: checked and normalised at load time, compiled to closures, explained on demand.

The pipeline is parse (admin's mapping → tree, every value coerced to its
field's type, every mistake collected with its location) → normalise
(``not`` pushed down to the leaves, empty lists and constants folded) →
compile (one closure per leaf, combined with short-circuit ``all``/``any``).

Missing values: a positive operator on a missing or null field is false; a
negated one (``ne``, ``not_in``, ``not_contains``, ``not: ...``) is true. That
is why ``not lt`` stays a negated ``lt`` and never becomes ``gte``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any, TypeAlias

import re2

from crmrules.calendar import BusinessCalendar, Duration
from crmrules.errors import Location, Problem
from crmrules.rules.fields import (
    NUMBER_TYPES,
    TEXT_TYPES,
    TIME_TYPES,
    FieldRegistry,
    FieldSpec,
    FieldType,
    coerce,
    coerce_datetime,
    unknown_field_hint,
)
from crmrules.rules.source import PathKey, SourceMap

# --- what a condition is evaluated against ------------------------------------------------


@dataclass(slots=True)
class Facts:
    """What a condition sees: plain records by namespace, the time, and the triggering update.

    ``records["client"]`` maps field keys to values already in their field
    types (see FieldRegistry.coerce_record). ``changes`` maps a field path to
    ``(before, after)`` for the update that raised the event. Nothing
    changes a Facts once made (it is not frozen only because a frozen
    dataclass costs twice as much to make, once per event).
    """

    records: Mapping[str, Mapping[str, Any] | None]
    now: datetime
    changes: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)

    def value(self, spec: FieldSpec) -> Any:
        record = self.records.get(spec.namespace)
        return None if record is None else record.get(spec.key)


# --- the normalised tree -------------------------------------------------------------------

#: Operators that compare with a value or with another field.
COMPARE_OPS = ("eq", "lt", "lte", "gt", "gte")
CHANGE_OPS = ("changed", "changed_from", "changed_to")
STRING_OPS = ("contains", "starts_with", "ends_with", "matches")

#: Operators an admin may write, with the positive operator and negation they stand for.
WRITTEN_OPS: dict[str, tuple[str, bool]] = {
    "eq": ("eq", False),
    "ne": ("eq", True),
    "lt": ("lt", False),
    "lte": ("lte", False),
    "gt": ("gt", False),
    "gte": ("gte", False),
    "between": ("between", False),
    "in": ("in", False),
    "not_in": ("in", True),
    "contains": ("contains", False),
    "not_contains": ("contains", True),
    "starts_with": ("starts_with", False),
    "ends_with": ("ends_with", False),
    "contains_any": ("contains_any", False),
    "contains_all": ("contains_all", False),
    "is_empty": ("is_empty", False),
    "older_than": ("older_than", False),
    "newer_than": ("newer_than", False),
    "before": ("before", False),
    "after": ("after", False),
    "matches": ("matches", False),
    "changed": ("changed", False),
    "changed_from": ("changed_from", False),
    "changed_to": ("changed_to", False),
}

#: Names admins bring from other tools (business-rules, HubSpot, SQL), for hints only.
SYNONYMS = {
    "equals": "eq", "equal": "eq", "equal_to": "eq", "is": "eq", "==": "eq",
    "not_equal": "ne", "not_equals": "ne", "not_equal_to": "ne", "neq": "ne", "!=": "ne",
    "greater_than": "gt", "greater_than_or_equal_to": "gte", "less_than": "lt",
    "less_than_or_equal_to": "lte", "one_of": "in", "is_one_of": "in", "not_one_of": "not_in",
    "matches_regex": "matches", "regex": "matches", "has_any": "contains_any",
    "has_all": "contains_all", "shares_at_least_one_element_with": "contains_any",
    "contains_all_elements_of": "contains_all", "exists": "is_empty", "is_set": "is_empty",
}  # fmt: skip

_ALL_TYPES = frozenset(FieldType)
#: Which field types each positive operator accepts (the spec's table).
OPERATOR_TYPES: dict[str, frozenset[FieldType]] = {
    "eq": _ALL_TYPES,
    "lt": NUMBER_TYPES | TIME_TYPES,
    "lte": NUMBER_TYPES | TIME_TYPES,
    "gt": NUMBER_TYPES | TIME_TYPES,
    "gte": NUMBER_TYPES | TIME_TYPES,
    "between": NUMBER_TYPES | TIME_TYPES,
    "in": TEXT_TYPES | NUMBER_TYPES,
    "contains": frozenset({FieldType.STRING, FieldType.SET}),
    "starts_with": frozenset({FieldType.STRING}),
    "ends_with": frozenset({FieldType.STRING}),
    "contains_any": frozenset({FieldType.SET}),
    "contains_all": frozenset({FieldType.SET}),
    "is_empty": _ALL_TYPES,
    "older_than": TIME_TYPES,
    "newer_than": TIME_TYPES,
    "before": TIME_TYPES,
    "after": TIME_TYPES,
    "matches": frozenset({FieldType.STRING}),
    "changed": _ALL_TYPES,
    "changed_from": _ALL_TYPES,
    "changed_to": _ALL_TYPES,
}
#: Operators that take ``ignore_case: true``.
CASE_OPS = frozenset(
    {"eq", "in", "contains", "starts_with", "ends_with", "matches", "changed_from", "changed_to"}
)
MAX_PATTERN_LENGTH = 1_000


@dataclass(frozen=True)
class DayRange:
    """A date written against a datetime field: the whole day, in the calendar's time zone."""

    day: date
    start: datetime
    end: datetime

    def __str__(self) -> str:
        return self.day.isoformat()


@dataclass(frozen=True)
class FieldRef:
    """The right-hand side ``{field: client.credit_limit}``."""

    spec: FieldSpec

    def __str__(self) -> str:
        return self.spec.path


@dataclass(frozen=True)
class Leaf:
    field: FieldSpec
    op: str
    value: Any
    negated: bool = False
    ignore_case: bool = False
    location: Location | None = None
    territory: str | None = None
    #: the OperatorPlugin of an operator a plugin added
    plugin: Any = None
    #: the segment a ``{segment: id}`` leaf names
    segment: str | None = None

    def parts(self) -> tuple[str, str, str]:
        """(field, operator, expected value) as an admin would write them; ``not`` included."""
        return self._written[1]

    def describe(self) -> str:
        """The leaf as an admin would write it."""
        return self._written[0]

    @cached_property
    def _written(self) -> tuple[str, tuple[str, str, str]]:
        """``describe()`` and ``parts()``, worked out once per leaf (they explain every miss)."""
        parts = self._parts()
        return self._describe(parts), parts

    def _parts(self) -> tuple[str, str, str]:
        if self.segment is not None:
            return ("client.segments", "not segment" if self.negated else "segment", self.segment)
        if self.territory is not None:
            return (
                "client.territories",
                "not territory" if self.negated else "territory",
                (self.territory),
            )
        op = self.op
        value = _show(self.value)
        if self.negated:
            named = {"eq": "ne", "in": "not_in", "contains": "not_contains"}
            if op in named:
                op = named[op]
            elif op in ("is_empty", "changed"):
                value = "false"
            else:
                op = f"not {op}"
        return self.field.path, op, value

    def _describe(self, parts: tuple[str, str, str]) -> str:
        if self.territory is not None or self.segment is not None:
            text = (
                f"territory {self.territory}"
                if self.territory is not None
                else f"segment {self.segment}"
            )
            return f"not in {text}" if self.negated else f"in {text}"
        path, op, value = parts
        if op.startswith("not "):
            return f"not ({path} {op[4:]} {value})"
        case = " (ignore case)" if self.ignore_case else ""
        return f"{path} {op} {value}{case}"


@dataclass(frozen=True)
class All:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class Const:
    value: bool


Node: TypeAlias = Leaf | All | AnyOf | Not | Const


def _show(value: Any) -> str:
    if isinstance(value, frozenset | set | list | tuple):
        return "[" + ", ".join(sorted(_show(v) for v in value)) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None:
        return "null"
    return str(value)


# --- parsing the admin's mapping -------------------------------------------------------------


@dataclass
class Scope:
    """What parsing a condition needs to know about the regulation it sits in."""

    registry: FieldRegistry
    calendar: BusinessCalendar
    source: SourceMap
    problems: list[Problem]
    #: territory id -> the territory and all its descendants
    territories: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: operators added by plugins (crmrules.plugins.OperatorPlugin), by name
    operators: Mapping[str, Any] = field(default_factory=dict)
    #: segment ids ``{segment: id}`` may name (none inside a segment's own condition)
    segments: frozenset[str] = frozenset()

    def error(
        self, path: PathKey, message: str, hint: str | None = None, *, key: bool = False
    ) -> None:
        self.problems.append(Problem(message, self.source.locate(path, key=key), hint))


_COMBINATORS = ("all", "any", "not")


def parse(raw: Any, path: PathKey, scope: Scope) -> Node | None:
    """The normalised tree of ``raw``, or None after recording why it is wrong."""
    tree = _parse(raw, path, scope)
    return None if tree is None else normalise(tree)


def _parse(raw: Any, path: PathKey, scope: Scope) -> Node | None:
    if not isinstance(raw, dict):
        scope.error(
            path,
            "a condition must be a mapping",
            "write {field: client.region, eq: Москва}, {territory: id}, or all/any/not",
        )
        return None
    if not raw:
        scope.error(path, "empty condition", "write {field: ..., <operator>: ...}")
        return None
    combinator = [k for k in raw if k in _COMBINATORS]
    if combinator:
        name = combinator[0]
        extra = [k for k in raw if k != name]
        if extra:
            scope.error(
                (*path, extra[0]),
                f"{name!r} cannot be combined with {extra[0]!r} in one mapping",
                f"put each condition in its own item under {name}",
                key=True,
            )
            return None
        body = raw[name]
        if name == "not":
            inner = _parse(body, (*path, name), scope)
            return None if inner is None else Not(inner)
        if not isinstance(body, list):
            scope.error((*path, name), f"{name} takes a list of conditions")
            return None
        if not body:
            scope.error((*path, name), f"{name} with an empty list", "add conditions or remove it")
            return None
        items = [_parse(item, (*path, name, i), scope) for i, item in enumerate(body)]
        if any(item is None for item in items):
            return None
        kept = tuple(item for item in items if item is not None)
        return All(kept) if name == "all" else AnyOf(kept)
    if "territory" in raw:
        return _territory(raw, path, scope)
    if "segment" in raw:
        return _segment(raw, path, scope)
    if "field" in raw:
        return _leaf(raw, path, scope)
    first = next(iter(raw))
    keys = [*_COMBINATORS, "field", "territory", "segment"]
    close = difflib.get_close_matches(str(first), keys, n=1)
    scope.error(
        (*path, first),
        f"unknown condition key {first!r}",
        f"did you mean {close[0]}?"
        if close
        else "a condition starts with field, territory, all, any or not",
        key=True,
    )
    return None


def _territory(raw: dict[str, Any], path: PathKey, scope: Scope) -> Node | None:
    extra = [k for k in raw if k != "territory"]
    if extra:
        scope.error((*path, extra[0]), f"unexpected key {extra[0]!r} beside territory", key=True)
        return None
    name = raw["territory"]
    if not isinstance(name, str) or name not in scope.territories:
        close = difflib.get_close_matches(str(name), list(scope.territories), n=1)
        scope.error(
            (*path, "territory"),
            f"unknown territory {name!r}",
            f"did you mean {close[0]}?" if close else "territories are defined under territories:",
        )
        return None
    spec = scope.registry.get("client.territories")
    assert spec is not None
    return Leaf(
        spec,
        "territory",
        scope.territories[name],
        location=scope.source.locate((*path, "territory")),
        territory=name,
    )


def _segment(raw: dict[str, Any], path: PathKey, scope: Scope) -> Node | None:
    """``{segment: id}``: the client is a member (by its condition or a manual override)."""
    extra = [k for k in raw if k != "segment"]
    if extra:
        scope.error((*path, extra[0]), f"unexpected key {extra[0]!r} beside segment", key=True)
        return None
    name = raw["segment"]
    if not isinstance(name, str) or name not in scope.segments:
        close = difflib.get_close_matches(str(name), list(scope.segments), n=1)
        hint = "segments are defined under segments: (a segment's own condition cannot name one)"
        scope.error(
            (*path, "segment"),
            f"unknown segment {name!r}",
            f"did you mean {close[0]}?" if close else hint,
        )
        return None
    spec = scope.registry.get("client.segments")
    assert spec is not None
    location = scope.source.locate((*path, "segment"))
    return Leaf(spec, "contains_any", frozenset({name}), location=location, segment=name)


def _leaf(raw: dict[str, Any], path: PathKey, scope: Scope) -> Node | None:
    name = raw["field"]
    spec = scope.registry.get(name) if isinstance(name, str) else None
    if spec is None:
        suggestion = scope.registry.suggest(str(name))
        scope.error(
            (*path, "field"), f"unknown field {name!r}", unknown_field_hint(str(name), suggestion)
        )
        return None
    ops = [k for k in raw if k not in ("field", "ignore_case")]
    if not ops:
        scope.error(path, f"no operator for {spec.path}", "add one, e.g. eq: <value>")
        return None
    if len(ops) == 1 and ops[0] in scope.operators and ops[0] not in WRITTEN_OPS:
        return _plugin_leaf(spec, ops[0], raw, path, scope)
    unknown = [k for k in ops if k not in WRITTEN_OPS]
    if unknown:
        name = str(unknown[0])
        close = (
            [SYNONYMS[name]]
            if name in SYNONYMS
            else difflib.get_close_matches(name, list(WRITTEN_OPS), n=1)
        )
        scope.error(
            (*path, name),
            f"unknown operator {name!r}",
            f"did you mean {close[0]}?" if close else "see the operators in the rule language",
            key=True,
        )
        return None
    if len(ops) > 1:
        scope.error(
            (*path, ops[1]),
            f"a condition takes exactly one operator; found {', '.join(ops)}",
            "combine several with all: [...]",
            key=True,
        )
        return None
    written = ops[0]
    op, negated = WRITTEN_OPS[written]
    value_path = (*path, written)
    if spec.type not in OPERATOR_TYPES[op]:
        fits = sorted(t.value for t in OPERATOR_TYPES[op])
        scope.error(
            (*path, written),
            f"operator {written!r} does not fit {spec.path}, which is {spec.type.value}",
            f"{written} works on {', '.join(fits)}",
            key=True,
        )
        return None
    ignore_case = raw.get("ignore_case", False)
    if not isinstance(ignore_case, bool):
        scope.error((*path, "ignore_case"), "ignore_case must be true or false")
        return None
    if ignore_case and (op not in CASE_OPS or spec.type not in TEXT_TYPES | {FieldType.SET}):
        scope.error(
            (*path, "ignore_case"),
            f"ignore_case does not apply to {written} on {spec.type.value}",
            key=True,
        )
        return None
    try:
        value = _operand(spec, op, raw[written], scope, written, ignore_case)
    except ItemError as error:
        scope.error((*value_path, error.index), str(error))
        return None
    except ValueError as error:
        scope.error(value_path, str(error))
        return None
    if isinstance(value, bool) and op in ("is_empty", "changed") and not value:
        negated, value = not negated, True
    if ignore_case and op != "matches":  # a pattern is matched case-insensitively instead
        value = _fold(value)
    return Leaf(spec, op, value, negated, ignore_case, scope.source.locate(value_path))


def _plugin_leaf(
    spec: FieldSpec, name: str, raw: dict[str, Any], path: PathKey, scope: Scope
) -> Node | None:
    plugin = scope.operators[name]
    if spec.type not in plugin.types:
        fits = ", ".join(sorted(t.value for t in plugin.types))
        scope.error(
            (*path, name),
            f"operator {name!r} does not fit {spec.path}, which is {spec.type.value}",
            f"{name} works on {fits}",
            key=True,
        )
        return None
    if "ignore_case" in raw:
        scope.error((*path, "ignore_case"), f"ignore_case does not apply to {name}", key=True)
        return None
    try:
        operand = plugin.operand(raw[name])
    except ValueError as error:
        scope.error((*path, name), f"{name}: {error}")
        return None
    return Leaf(spec, name, operand, location=scope.source.locate((*path, name)), plugin=plugin)


class ItemError(ValueError):
    """A bad item of a list value; ``index`` points at it."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def _operand(
    spec: FieldSpec, op: str, raw: Any, scope: Scope, written: str, ignore_case: bool = False
) -> Any:
    """The admin's value for ``op`` on ``spec``, in the field's type; ValueError if it won't go."""
    if op in ("is_empty", "changed"):
        if not isinstance(raw, bool):
            raise ValueError(f"{written} takes true or false")
        return raw
    if isinstance(raw, dict):
        if op not in COMPARE_OPS or set(raw) != {"field"}:
            raise ValueError(f"{written} takes a value here, not a mapping")
        return _field_ref(spec, raw["field"], scope)
    if op in ("older_than", "newer_than"):
        if not isinstance(raw, str):
            raise ValueError(f"{written} takes a duration such as '30 days'")
        return Duration.parse(raw)
    if op == "between":
        if not isinstance(raw, list) or len(raw) != 2:
            raise ValueError("between takes a list of two values: [low, high]")
        bounds = []
        for index, item in enumerate(raw):
            try:
                bounds.append(_scalar(spec, item, scope))
            except ValueError as error:
                raise ItemError(str(error), index) from None
        low, high = bounds
        low_start = low.start if isinstance(low, DayRange) else low
        high_end = high.end if isinstance(high, DayRange) else high
        if low_start > high_end or (isinstance(high, DayRange) and low_start == high_end):
            raise ValueError(f"between: {_show(low)} is greater than {_show(high)}")
        return (low, high)
    if op in ("in", "contains_any", "contains_all"):
        if not isinstance(raw, list):
            raise ValueError(f"{written} takes a list of values")
        item_spec = FieldSpec(spec.path, FieldType.STRING) if spec.type is FieldType.SET else spec
        items = []
        for index, item in enumerate(raw):
            try:
                items.append(_scalar(item_spec, item, scope))
            except ValueError as error:
                raise ItemError(str(error), index) from None
        return frozenset(items)
    if op in ("contains", "starts_with", "ends_with", "matches"):
        if not isinstance(raw, str | int) or isinstance(raw, bool):
            raise ValueError(f"{written} takes text")
        text = str(raw)
        if op == "matches":
            compile_pattern(text, ignore_case=ignore_case)
        return text
    if op in ("before", "after"):
        return _scalar(spec, raw, scope)
    return _scalar(spec, raw, scope)


def _scalar(spec: FieldSpec, raw: Any, scope: Scope) -> Any:
    if spec.type is FieldType.DATETIME and _is_date_only(raw):
        day = raw if isinstance(raw, date) else date.fromisoformat(raw.strip())
        start = scope.calendar.start_of_day(day)
        if day == date.max:  # the whole day has no next midnight to end at
            raise ValueError(f"{day.isoformat()} is out of range; compare with a moment instead")
        return DayRange(day, start, scope.calendar.start_of_day(day + timedelta(days=1)))
    if spec.type is FieldType.DATETIME:
        return coerce_datetime(raw, scope.calendar)
    return coerce(spec, raw, scope.calendar)


def _is_date_only(raw: Any) -> bool:
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return True
    if isinstance(raw, str) and len(raw.strip()) == 10:
        try:
            date.fromisoformat(raw.strip())
        except ValueError:
            return False
        return True
    return False


def _field_ref(spec: FieldSpec, name: Any, scope: Scope) -> FieldRef:
    other = scope.registry.get(name) if isinstance(name, str) else None
    if other is None:
        suggestion = scope.registry.suggest(str(name))
        raise ValueError(f"unknown field {name!r} ({unknown_field_hint(str(name), suggestion)})")
    same = {spec.type, other.type}
    if not (len(same) == 1 or same <= NUMBER_TYPES or same <= TEXT_TYPES):
        raise ValueError(
            f"cannot compare {spec.path} ({spec.type.value}) with {other.path} ({other.type.value})"
        )
    return FieldRef(other)


def fold_pattern(pattern: str) -> str:
    """Case-fold the literal text of a pattern, leaving escapes and group syntax alone.

    ``ignore_case`` compares case-folded text, so ``Straße`` must match
    ``STRASSE``: the value is folded, and so must the pattern's letters be.
    Folding blindly would turn ``\\D`` into ``\\d`` or ``(?P<Name>`` into
    ``(?p<name>``; those parts are copied as written.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            end = i + 2
            if pattern[i + 1] in "pPx" and pattern[end : end + 1] == "{":
                close = pattern.find("}", end)
                end = len(pattern) if close < 0 else close + 1
            out.append(pattern[i:end])
            i = end
        elif char == "(" and pattern[i + 1 : i + 2] == "?":
            stops = [p for p in (pattern.find(c, i) for c in ":)>") if p >= 0]
            end = min(stops) + 1 if stops else len(pattern)
            out.append(pattern[i:end])
            i = end
        else:
            out.append(char.casefold())
            i += 1
    return "".join(out)


def compile_pattern(pattern: str, *, ignore_case: bool = False) -> Any:
    """An RE2 pattern: linear-time matching, no backreferences or lookaround."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"pattern is too long (over {MAX_PATTERN_LENGTH} characters)")
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True
    options.case_sensitive = not ignore_case
    try:
        return re2.compile(fold_pattern(pattern) if ignore_case else pattern, options=options)
    except Exception as error:  # re2 raises its own error type, with a bytes message
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(
            f"invalid pattern: {reason}; patterns use RE2 syntax (no backreferences or lookaround)"
        ) from None


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, frozenset):
        return frozenset(_fold(v) for v in value)
    return value


# --- normalisation --------------------------------------------------------------------------


def normalise(node: Node, negate: bool = False) -> Node:
    """Push ``not`` to the leaves, fold constants and flatten nested all/any."""
    if isinstance(node, Not):
        return normalise(node.item, not negate)
    if isinstance(node, Const):
        return Const(node.value != negate)
    if isinstance(node, Leaf):
        constant = _constant(node)
        if constant is not None:
            return Const(constant != (node.negated != negate))
        return replace(node, negated=node.negated != negate) if negate else node
    conjunction = isinstance(node, All) != negate
    items: list[Node] = []
    for item in node.items:
        child = normalise(item, negate)
        if isinstance(child, Const):
            if child.value != conjunction:  # false in all / true in any decides
                return child
            continue
        if (isinstance(child, All) and conjunction) or (
            isinstance(child, AnyOf) and not conjunction
        ):
            items.extend(child.items)
        else:
            items.append(child)
    if not items:
        return Const(conjunction)
    if len(items) == 1:
        return items[0]
    return All(tuple(items)) if conjunction else AnyOf(tuple(items))


def _constant(leaf: Leaf) -> bool | None:
    """The answer of a positive leaf that does not depend on the record (empty lists)."""
    if leaf.op in ("in", "contains_any") and not leaf.value:
        return False
    if leaf.op == "contains_all" and not leaf.value:
        return True
    return None


# --- compiling ------------------------------------------------------------------------------

Test: TypeAlias = Callable[[Facts], bool]


def _getter(spec: FieldSpec) -> Callable[[Facts], Any]:
    namespace, key = spec.namespace, spec.key

    def get(facts: Facts) -> Any:
        record = facts.records.get(namespace)
        return None if record is None else record.get(key)

    return get


def _is_empty(value: Any) -> bool:
    if value is None or value == "":
        return True
    return isinstance(value, frozenset | set | list | tuple) and not value


def _as_set(value: Any) -> frozenset[str]:
    return value if isinstance(value, frozenset) else frozenset(value)


def _fold_value(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, frozenset | set | list | tuple):
        return frozenset(str(v).casefold() for v in value)
    return value


def _ordered(op: str, value: Any, bound: Any) -> bool:
    """``value op bound`` where a DayRange bound stands for a whole day."""
    if isinstance(bound, DayRange):
        if op == "lt":
            return bool(value < bound.start)
        if op == "lte":
            return bool(value < bound.end)
        if op == "gt":
            return bool(value >= bound.end)
        if op == "gte":
            return bool(value >= bound.start)
        return bool(bound.start <= value < bound.end)  # eq
    if op == "lt":
        return bool(value < bound)
    if op == "lte":
        return bool(value <= bound)
    if op == "gt":
        return bool(value > bound)
    if op == "gte":
        return bool(value >= bound)
    if isinstance(bound, frozenset):
        return _as_set(value) == bound
    return bool(value == bound)


def _threshold(calendar: BusinessCalendar, spec: FieldSpec, now: datetime, ago: Duration) -> Any:
    moment = calendar.subtract(now, ago)
    return calendar.local(moment).date() if spec.type is FieldType.DATE else moment


def _positive(leaf: Leaf, calendar: BusinessCalendar) -> Callable[[Any, Facts], bool]:
    """``test(value, facts)`` for a present (not None) value, before negation."""
    op, bound, spec = leaf.op, leaf.value, leaf.field
    if leaf.plugin is not None:
        plugin_test = leaf.plugin.test
        return lambda value, facts: bool(plugin_test(value, bound))
    fold = _fold_value if leaf.ignore_case else (lambda v: v)
    if isinstance(bound, FieldRef):
        other = _getter(bound.spec)

        def compare_fields(value: Any, facts: Facts) -> bool:
            right = other(facts)
            return right is not None and _ordered(op, fold(value), fold(right))

        return compare_fields
    if op in COMPARE_OPS:
        return lambda value, facts: _ordered(op, fold(value), bound)
    if op == "between":
        low, high = bound
        return lambda value, facts: _ordered("gte", value, low) and _ordered("lte", value, high)
    if op == "in":
        return lambda value, facts: fold(value) in bound
    if op == "contains":
        if spec.type is FieldType.SET:
            return lambda value, facts: bound in fold(_as_set(value))
        return lambda value, facts: bound in fold(value)
    if op == "starts_with":
        return lambda value, facts: bool(fold(value).startswith(bound))
    if op == "ends_with":
        return lambda value, facts: bool(fold(value).endswith(bound))
    if op == "contains_any" or op == "territory":
        return lambda value, facts: not bound.isdisjoint(fold(_as_set(value)))
    if op == "contains_all":
        return lambda value, facts: bound.issubset(fold(_as_set(value)))
    if op == "matches":
        pattern = compile_pattern(bound, ignore_case=leaf.ignore_case)
        return lambda value, facts: pattern.search(fold(value)) is not None
    if op in ("older_than", "newer_than"):
        older = op == "older_than"

        def age(value: Any, facts: Facts) -> bool:
            threshold = _threshold(calendar, spec, facts.now, bound)
            return bool(value < threshold) if older else bool(value > threshold)

        return age
    if op == "before":
        start = bound.start if isinstance(bound, DayRange) else bound
        return lambda value, facts: bool(value < start)
    if op == "after":
        end = bound.end if isinstance(bound, DayRange) else bound
        if isinstance(bound, DayRange):
            return lambda value, facts: bool(value >= end)
        return lambda value, facts: bool(value > end)
    raise AssertionError(op)  # pragma: no cover


def _change_test(leaf: Leaf) -> Test:
    path, op, bound = leaf.field.path, leaf.op, leaf.value
    fold = _fold_value if leaf.ignore_case else (lambda v: v)

    def same(value: Any) -> bool:
        return value is not None and _ordered("eq", fold(value), bound)

    def test(facts: Facts) -> bool:
        change = facts.changes.get(path)
        if change is None:
            return False
        before, after = change
        if (_is_empty(before) and _is_empty(after)) or before == after:
            return False
        if op == "changed":
            return True
        return same(before) if op == "changed_from" else same(after)

    return test


def compile_leaf(leaf: Leaf, calendar: BusinessCalendar) -> Test:
    """The leaf's test, negation included."""
    if leaf.op in CHANGE_OPS:
        base = _change_test(leaf)
    elif leaf.op == "is_empty":
        get = _getter(leaf.field)

        def base(facts: Facts) -> bool:
            return _is_empty(get(facts))
    else:
        get, positive = _getter(leaf.field), _positive(leaf, calendar)

        def base(facts: Facts) -> bool:
            value = get(facts)
            return value is not None and positive(value, facts)

    if leaf.negated:
        return lambda facts: not base(facts)
    return base


def _compile(node: Node, calendar: BusinessCalendar, leaves: dict[int, Test]) -> Test:
    if isinstance(node, Leaf):
        test = compile_leaf(node, calendar)
        leaves[id(node)] = test
        return test
    if isinstance(node, Const):
        constant = node.value
        return lambda facts: constant
    if isinstance(node, Not):  # only before normalisation; kept for completeness
        inner = _compile(node.item, calendar, leaves)
        return lambda facts: not inner(facts)
    parts = tuple(_compile(item, calendar, leaves) for item in node.items)
    if isinstance(node, All):
        return lambda facts: all(part(facts) for part in parts)
    return lambda facts: any(part(facts) for part in parts)


# --- explanation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LeafTrace:
    leaf: Leaf
    actual: Any
    result: bool

    def shown_actual(self) -> str | None:
        """The actual value as an admin would write it; None when it is missing."""
        actual = self.actual
        if actual is None:
            return None
        if isinstance(actual, tuple) and len(actual) == 2 and self.leaf.op in CHANGE_OPS:
            return f"{_show(actual[0])} → {_show(actual[1])}"
        return _show(actual)

    def describe(self) -> str:
        return self.describe_shown(self.shown_actual())

    def describe_shown(self, shown: str | None) -> str:
        """``describe()`` with ``shown_actual()`` already worked out."""
        outcome = "true" if self.result else "false"
        return f"{self.leaf.describe()}: actual {'missing' if shown is None else shown} → {outcome}"


@dataclass(frozen=True)
class Trace:
    """Every leaf with its actual value, and the first leaf that decided the result."""

    result: bool
    leaves: tuple[LeafTrace, ...]
    decided_by: LeafTrace | None

    def describe(self) -> str:
        if self.decided_by is None:
            return "always " + ("true" if self.result else "false")
        return self.decided_by.describe()


class Condition:
    """A compiled condition: call it for the answer, ``trace`` it for the reasons."""

    def __init__(self, tree: Node, calendar: BusinessCalendar) -> None:
        self.tree = tree
        self._leaves: dict[int, Test] = {}
        self._test = _compile(tree, calendar, self._leaves)

    def __call__(self, facts: Facts) -> bool:
        return self._test(facts)

    @cached_property
    def reads(self) -> dict[str, tuple[str, ...]]:
        """Every record field the condition reads, by namespace: a leaf's field, and the
        field it compares with (a change leaf reads the update's changes instead)."""
        found: dict[str, dict[str, None]] = {}

        def walk(node: Node) -> None:
            if isinstance(node, Leaf):
                if node.op not in CHANGE_OPS:
                    found.setdefault(node.field.namespace, {})[node.field.key] = None
                if isinstance(node.value, FieldRef):
                    other = node.value.spec
                    found.setdefault(other.namespace, {})[other.key] = None
            elif isinstance(node, All | AnyOf):
                for item in node.items:
                    walk(item)
            elif isinstance(node, Not):
                walk(node.item)

        walk(self.tree)
        return {namespace: tuple(keys) for namespace, keys in found.items()}

    def trace(self, facts: Facts, *, short_circuit: bool = False) -> Trace:
        """Why the condition holds or not: each leaf's value and answer, and the deciding leaf.

        With ``short_circuit`` only the leaves an evaluation looks at are
        traced (what explaining a rule that did not match needs); ``result``,
        ``decided_by`` and so ``describe()`` are the same either way.
        """
        traces: list[LeafTrace] = []
        result, decided = self._trace(self.tree, facts, traces, short_circuit)
        return Trace(result, tuple(traces), decided)

    def decide(self, facts: Facts) -> tuple[bool, LeafTrace | None]:
        """``trace(facts, short_circuit=True)``'s result and deciding leaf, and nothing else.

        What explaining a rule that did not match needs: the leaves that did
        not decide are neither traced nor kept.
        """
        result, leaf = self._decide(self.tree, facts)
        if leaf is None:
            return result, None
        if leaf.op in CHANGE_OPS:
            actual = facts.changes.get(leaf.field.path)
        else:
            actual = facts.value(leaf.field)
        return result, LeafTrace(leaf, actual, self._leaves[id(leaf)](facts))

    def _decide(self, node: Node, facts: Facts) -> tuple[bool, Leaf | None]:
        """``_trace`` with ``short``, returning the deciding leaf itself (see ``decide``)."""
        if isinstance(node, Leaf):
            return self._leaves[id(node)](facts), node
        if isinstance(node, Const):
            return node.value, None
        if isinstance(node, Not):
            result, decided = self._decide(node.item, facts)
            return not result, decided
        conjunction = isinstance(node, All)
        first: Leaf | None = None
        for index, item in enumerate(node.items):
            result, decided = self._decide(item, facts)
            if index == 0:
                first = decided
            if result != conjunction:
                return result, decided
        return conjunction, first

    def _trace(
        self, node: Node, facts: Facts, traces: list[LeafTrace], short: bool
    ) -> tuple[bool, LeafTrace | None]:
        if isinstance(node, Leaf):
            if node.op in CHANGE_OPS:
                actual = facts.changes.get(node.field.path)
            else:
                actual = facts.value(node.field)
            leaf_trace = LeafTrace(node, actual, self._leaves[id(node)](facts))
            traces.append(leaf_trace)
            return leaf_trace.result, leaf_trace
        if isinstance(node, Const):
            return node.value, None
        if isinstance(node, Not):
            result, decided = self._trace(node.item, facts, traces, short)
            return not result, decided
        conjunction = isinstance(node, All)
        deciding: tuple[bool, LeafTrace | None] | None = None
        first: LeafTrace | None = None
        for index, item in enumerate(node.items):
            result, decided = self._trace(item, facts, traces, short)
            if index == 0:
                first = decided
            # all: decided by the first false child; any: by the first true one.
            if deciding is None and result != conjunction:
                deciding = (result, decided)
                if short:
                    break
        # all true (for all) / all false (for any): the first child stands for the rest.
        return deciding if deciding is not None else (conjunction, first)


ALWAYS = Const(True)

__all__ = [
    "ALWAYS",
    "CASE_OPS",
    "OPERATOR_TYPES",
    "WRITTEN_OPS",
    "All",
    "AnyOf",
    "Condition",
    "Const",
    "DayRange",
    "Facts",
    "FieldRef",
    "Leaf",
    "LeafTrace",
    "Node",
    "Not",
    "Scope",
    "Trace",
    "compile_leaf",
    "normalise",
    "parse",
]
