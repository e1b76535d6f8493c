"""The lint's reasoning against brute force: every claim holds on every record of a domain.

The fields take values from small domains that cover every case of the
constants generated (integers and decimals 0..10, three enum values, three
set elements), so brute force over the whole product is an oracle: a tree
called unsat has no satisfying record, a tree called sat has one, and
``implies(a, b)`` means no record satisfies a and not b.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crmrules.calendar import BusinessCalendar
from crmrules.lint.logic import Answer, implies, satisfiable
from crmrules.rules.conditions import Condition, Facts, Node, Scope, parse
from crmrules.rules.fields import FieldRegistry, FieldSpec, FieldType
from crmrules.rules.source import SourceMap

CAL = BusinessCalendar()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FIELDS = [
    FieldSpec("client.n", FieldType.INTEGER),
    FieldSpec("client.d", FieldType.DECIMAL),
    FieldSpec("client.s", FieldType.ENUM, ("A", "B", "C")),
    FieldSpec("client.tags", FieldType.SET),
    FieldSpec("client.b", FieldType.BOOLEAN),
]
DOMAIN: dict[str, list[Any]] = {
    "n": [None, *range(-1, 12)],
    "d": [None, *(Decimal(x) / 2 for x in range(-1, 22))],
    "s": [None, "A", "B", "C"],
    "tags": [None]
    + [frozenset(c) for k in range(4) for c in itertools.combinations(["x", "y", "z"], k)],
    "b": [None, True, False],
}
RECORDS = [
    {k: v for k, v in zip(DOMAIN, values, strict=True) if v is not None}
    for values in itertools.product(*DOMAIN.values())
]

number = st.integers(0, 10)
leaves = st.one_of(
    st.builds(
        lambda op, v: {"field": "client.n", op: v},
        st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte"]),
        number,
    ),
    st.builds(
        lambda op, v: {"field": "client.d", op: v},
        st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte"]),
        number,
    ),
    st.builds(lambda a, b: {"field": "client.n", "between": sorted([a, b])}, number, number),
    st.builds(
        lambda op, v: {"field": "client.n", op: v},
        st.sampled_from(["in", "not_in"]),
        st.lists(number, max_size=3),
    ),
    st.builds(
        lambda op, v: {"field": "client.s", op: v},
        st.sampled_from(["in", "not_in"]),
        st.lists(st.sampled_from("ABC"), max_size=3),
    ),
    st.builds(
        lambda op, v: {"field": "client.s", op: v},
        st.sampled_from(["eq", "ne"]),
        st.sampled_from("ABC"),
    ),
    st.builds(
        lambda op, v: {"field": "client.tags", op: v},
        st.sampled_from(["contains_any", "contains_all"]),
        st.lists(st.sampled_from("xyz"), max_size=3),
    ),
    st.builds(
        lambda op, v: {"field": "client.tags", op: v},
        st.sampled_from(["contains", "not_contains"]),
        st.sampled_from("xyz"),
    ),
    st.builds(
        lambda f, v: {"field": f, "is_empty": v},
        st.sampled_from(["client.n", "client.s", "client.tags", "client.b"]),
        st.booleans(),
    ),
    st.builds(lambda v: {"field": "client.b", "eq": v}, st.booleans()),
)
conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=6,
)


def tree(raw: dict[str, Any]) -> Node:
    problems: list[Any] = []
    parsed = parse(raw, ("if",), Scope(FieldRegistry(FIELDS), CAL, SourceMap(), problems))
    assert parsed is not None and not problems, problems
    return parsed


def holds(node: Node) -> list[bool]:
    condition = Condition(node, CAL)
    return [condition(Facts({"client": record}, NOW)) for record in RECORDS]


@settings(max_examples=60, deadline=None)
@given(conditions)
def test_satisfiable_agrees_with_brute_force(raw: dict[str, Any]) -> None:
    node = tree(raw)
    answer = satisfiable(node, CAL)
    witnessed = any(holds(node))
    assert answer is not Answer.UNKNOWN  # every leaf generated is decided
    assert answer is (Answer.SAT if witnessed else Answer.UNSAT)


@settings(max_examples=60, deadline=None)
@given(conditions, conditions)
def test_implies_is_never_wrong(raw_a: dict[str, Any], raw_b: dict[str, Any]) -> None:
    a, b = tree(raw_a), tree(raw_b)
    claimed = implies(a, b, CAL)
    counterexample = any(x and not y for x, y in zip(holds(a), holds(b), strict=True))
    assert claimed == (not counterexample)
