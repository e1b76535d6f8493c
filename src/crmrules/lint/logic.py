"""Deciding, on the normalised condition tree, whether a condition can hold and what implies what.

The reasoning, and why it is sound:

1. A tree is expanded to a disjunction of conjunctions of leaves (at most
   ``MAX_CONJUNCTS``; beyond that the answer is "unknown").
2. The leaves of one conjunction are grouped by field. Leaves on different
   fields are independent (each reads only its own field), so the
   conjunction holds for some record exactly when each group holds for some
   value of its field.
3. For each field, a finite set of *candidate* values is built from the
   constants the leaves mention, chosen so that every leaf's answer is
   constant between neighbouring candidates (interval reasoning: each bound,
   the bound plus and minus one step, midpoints for decimals; set reasoning:
   the values named, the empty value, a value named nowhere, and for set
   fields every subset of the elements named). "Missing" is a candidate too.
   Each candidate is tested with the leaf's own compiled test, so a witness
   found is a real one.
4. Leaves this cannot decide exhaustively (another field on the right-hand
   side, change operators, text patterns, ages relative to now, plugin
   operators, ``ignore_case`` mixes) are left out of the search and make the
   group *incomplete*: a failed search then proves nothing.

So ``satisfiable`` says "unsat" only when every conjunction has a complete
group with no witness, and "sat" only with a witness for every group of one
conjunction that left nothing out. ``implies(a, b)`` is "a and not b" being
unsat. tests/test_lint_logic.py checks both against brute force on random
records.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from crmrules.calendar import BusinessCalendar
from crmrules.rules.conditions import (
    CHANGE_OPS,
    All,
    AnyOf,
    Const,
    DayRange,
    Facts,
    FieldRef,
    Leaf,
    Node,
    Not,
    compile_leaf,
    normalise,
)
from crmrules.rules.fields import FieldSpec, FieldType

#: Conjunctions a tree may expand to before the answer is "unknown".
MAX_CONJUNCTS = 512
#: Elements of a set field beyond which not every subset is tried.
MAX_SET_ELEMENTS = 8
#: A moment no calendar computation depends on (ages are left out of the search).
NOW = datetime(2000, 1, 1, tzinfo=UTC)
#: Text no admin writes, standing for "any other value".
FRESH = "\u2603other\u2603"

_UNDECIDED_OPS = frozenset(
    {*CHANGE_OPS, "contains", "starts_with", "ends_with", "matches", "older_than", "newer_than"}
)


class Answer(StrEnum):
    SAT = "sat"
    UNSAT = "unsat"
    UNKNOWN = "unknown"


def conjuncts(node: Node) -> list[list[Leaf]] | None:
    """The tree as a disjunction of conjunctions of leaves; None when it grows too large."""
    if isinstance(node, Const):
        return [[]] if node.value else []
    if isinstance(node, Leaf):
        return [[node]]
    if isinstance(node, Not):
        return conjuncts(normalise(node))
    parts = [conjuncts(item) for item in node.items]
    if any(part is None for part in parts):
        return None
    if isinstance(node, AnyOf):
        out = [c for part in parts if part is not None for c in part]
        return out if len(out) <= MAX_CONJUNCTS else None
    result: list[list[Leaf]] = [[]]
    for part in parts:
        assert part is not None
        result = [left + right for left in result for right in part]
        if len(result) > MAX_CONJUNCTS:
            return None
    return result


def satisfiable(node: Node, calendar: BusinessCalendar | None = None) -> Answer:
    """Whether some record makes ``node`` true (see the module docstring)."""
    expanded = conjuncts(normalise(node))
    if expanded is None:
        return Answer.UNKNOWN
    calendar = calendar or BusinessCalendar()
    unknown = False
    for conjunct in expanded:
        answer = _conjunct(conjunct, calendar)
        if answer is Answer.SAT:
            return Answer.SAT
        unknown = unknown or answer is Answer.UNKNOWN
    return Answer.UNKNOWN if unknown else Answer.UNSAT


def implies(a: Node, b: Node, calendar: BusinessCalendar | None = None) -> bool:
    """True only if every record that satisfies ``a`` satisfies ``b`` (proved, not guessed)."""
    return satisfiable(All((a, normalise(b, negate=True))), calendar) is Answer.UNSAT


def never_holds(node: Node, calendar: BusinessCalendar | None = None) -> bool:
    return satisfiable(node, calendar) is Answer.UNSAT


def always_holds(node: Node, calendar: BusinessCalendar | None = None) -> bool:
    return satisfiable(normalise(node, negate=True), calendar) is Answer.UNSAT


def overlap(a: Node, b: Node, calendar: BusinessCalendar | None = None) -> bool:
    """True only if a record satisfying both ``a`` and ``b`` was found."""
    return satisfiable(All((a, b)), calendar) is Answer.SAT


@dataclass(frozen=True)
class _Group:
    spec: FieldSpec
    leaves: tuple[Leaf, ...]
    complete: bool


def _conjunct(leaves: list[Leaf], calendar: BusinessCalendar) -> Answer:
    groups: dict[str, list[Leaf]] = {}
    left_out = False
    for leaf in leaves:
        if _undecided(leaf):
            left_out = True
            continue
        groups.setdefault(leaf.field.path, []).append(leaf)
    complete = True
    for items in groups.values():
        group = _Group(items[0].field, tuple(items), _complete(items))
        found, real = _witness(group, calendar)
        if not found:
            if group.complete:
                return Answer.UNSAT
            complete = False
        elif not real:
            left_out = True
        complete = complete and group.complete
    if left_out or not complete:
        return Answer.UNKNOWN
    return Answer.SAT


def _undecided(leaf: Leaf) -> bool:
    if leaf.op == "contains" and leaf.field.type is FieldType.SET:
        return False  # an element of a set: set reasoning decides it
    return leaf.plugin is not None or leaf.op in _UNDECIDED_OPS or isinstance(leaf.value, FieldRef)


def _complete(leaves: list[Leaf]) -> bool:
    """Whether the candidates cover every case of these leaves (see the module docstring)."""
    if any(leaf.ignore_case for leaf in leaves):
        return False
    spec = leaves[0].field
    if spec.type is FieldType.SET:
        return len(_elements(leaves)) <= MAX_SET_ELEMENTS
    return True


def _witness(group: _Group, calendar: BusinessCalendar) -> tuple[bool, bool]:
    """(some candidate satisfies every leaf, one such is a value a record can really hold)."""
    tests = [compile_leaf(leaf, calendar) for leaf in group.leaves]
    spec = group.spec
    found = False
    for value in _candidates(spec, group.leaves):
        facts = Facts({spec.namespace: {} if value is None else {spec.key: value}}, NOW)
        if all(test(facts) for test in tests):
            if value is not None or spec.default is None:
                return True, True
            found = True  # "missing" where the field has a default: not a real record
    return found, False


def _constants(leaves: Iterable[Leaf]) -> Iterator[Any]:
    for leaf in leaves:
        value = leaf.value
        if isinstance(value, tuple | frozenset):  # between, in
            yield from value
        elif not isinstance(value, bool) or leaf.op == "eq":
            yield value


def _elements(leaves: Iterable[Leaf]) -> list[str]:
    found: set[str] = set()
    for leaf in leaves:
        if isinstance(leaf.value, frozenset):
            found.update(str(v) for v in leaf.value)
        elif isinstance(leaf.value, str):
            found.add(leaf.value)
    return sorted(found)


def _candidates(spec: FieldSpec, leaves: tuple[Leaf, ...]) -> Iterator[Any]:
    yield None
    kind = spec.type
    if kind is FieldType.BOOLEAN:
        yield from (True, False)
    elif kind is FieldType.ENUM:
        yield from spec.values or sorted({str(v) for v in _constants(leaves)} | {FRESH})
    elif kind is FieldType.STRING:
        texts = {str(v) for v in _constants(leaves) if isinstance(v, str)}
        yield from sorted(texts | {t.upper() for t in texts} | {"", FRESH})
    elif kind is FieldType.SET:
        yield from _subsets(_elements(leaves))
    else:
        yield from _ordered_candidates(kind, leaves)


def _subsets(elements: list[str]) -> Iterator[frozenset[str]]:
    if len(elements) > MAX_SET_ELEMENTS:
        base = frozenset(elements)
        yield from (frozenset(), base, base | {FRESH})
        for element in elements:
            yield frozenset({element})
            yield base - {element}
        return
    for size in range(len(elements) + 1):
        for chosen in itertools.combinations(elements, size):
            yield frozenset(chosen)
            yield frozenset(chosen) | {FRESH}


def _ordered_candidates(kind: FieldType, leaves: tuple[Leaf, ...]) -> Iterator[Any]:
    bounds: set[Any] = set()
    for value in _constants(leaves):
        if isinstance(value, DayRange):
            bounds.update((value.start, value.end))
        elif value is not None and not isinstance(value, str | bool):
            bounds.add(value)
    step: Any
    sample: Any
    if kind is FieldType.INTEGER:
        step, sample = 1, 0
    elif kind is FieldType.DECIMAL:
        step, sample = Decimal(1), Decimal(0)
    elif kind is FieldType.DATE:
        step, sample = timedelta(days=1), date(2000, 1, 1)
    else:
        step, sample = timedelta(microseconds=1), NOW
    typed = sorted(b for b in bounds if _fits(kind, b))
    if not typed:
        yield sample
        return
    for bound in typed:
        for value in (bound, _shift(bound, -step), _shift(bound, step)):
            if value is not None:
                yield value
    if kind is FieldType.DECIMAL:
        for low, high in itertools.pairwise(typed):
            yield (low + high) / 2


def _fits(kind: FieldType, value: Any) -> bool:
    if kind is FieldType.INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is FieldType.DECIMAL:
        return isinstance(value, Decimal | int) and not isinstance(value, bool)
    if kind is FieldType.DATE:
        return isinstance(value, date) and not isinstance(value, datetime)
    return isinstance(value, datetime)


def _shift(value: Any, step: Any) -> Any:
    try:
        return value + step
    except OverflowError:
        return None


__all__ = [
    "Answer",
    "always_holds",
    "conjuncts",
    "implies",
    "never_holds",
    "overlap",
    "satisfiable",
]
