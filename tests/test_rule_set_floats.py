"""Rule sets comparing decimals' floats first (``crmrules.rules.floats``) against Decimals.

A record lent with its floats (``LentRecord``) takes the rule set's floats
branch: each comparison of a ``decimal`` field with a number compares the
floats and falls back to the ``Decimal`` values only when the floats are
equal. The oracle is the condition's own closure on the same values in a
plain dict, which compares ``Decimal`` values. Edge values: values that
round to the same float as the bound (one unit in the 30th place apart),
huge (past the largest float) and tiny (under the smallest) values,
negative zero, many decimal places, and the rule sets of
test_ruleset_property.py on lent records.
"""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crmrules import Client
from crmrules.adapters import MemoryStore
from crmrules.model import Deal
from crmrules.rules.conditions import Condition, Facts
from crmrules.rules.floats import LentRecord, float_of
from crmrules.rules.ruleset import RuleSet
from test_conditions_property import compile_raw
from test_ruleset_property import filled, one_leaf_rules, rule_sets

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
OPS = ("lt", "lte", "gt", "gte", "eq", "ne")

#: numbers where floats mislead: equal floats of unequal values, past the float range, -0
EDGES = [
    "0",
    "-0",
    "0.1",
    "0.1000000000000000055511151231257827",  # float(0.1) exactly, shortened: rounds to it
    "0.10000000000000000555111512312578270211815834045410156250",  # float(0.1) exactly
    "1E+400",
    "-1E+400",
    "1E-400",
    "-1E-400",
    "1.7976931348623157E+308",
    "1.797693134862315799999E+308",
    "9007199254740993",  # 2**53 + 1: rounds to 2**53
    "9007199254740992",
    "123.456789012345678901234567890",
    "5E-324",
]


def near(value: Decimal) -> st.SearchStrategy[Decimal]:
    """``value`` and numbers a hair either side of it: the same float, a different Decimal."""
    hair = st.sampled_from([Decimal("1E-30"), Decimal("1E-17"), Decimal("1E-5"), Decimal(0)])
    return st.tuples(hair, st.sampled_from([1, -1])).map(lambda h: value + h[0] * h[1])


numbers = (
    st.sampled_from(EDGES).map(Decimal)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False, places=30)
    | st.floats(allow_nan=False, allow_infinity=False).map(Decimal)
    | st.integers(-(2**70), 2**70).map(Decimal)
)


def leaf_condition(op: str, bound: Any) -> Condition:
    written = [str(b) for b in bound] if isinstance(bound, list) else str(bound)
    condition, problems = compile_raw({"field": "client.revenue", op: written})
    assert condition is not None and not problems, problems
    return condition


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[list[Condition], Decimal]:
    """Conditions on client.revenue, their bounds near the value or near each other."""
    value = draw(numbers)
    out = []
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from([*OPS, "between"]))
        bound = draw(near(value) | numbers)
        assume(len(str(bound)) <= 40)  # the longest text a decimal field takes
        if op == "between":
            high = draw(near(bound) | numbers)
            assume(len(str(high)) <= 40)
            out.append(leaf_condition(op, sorted([bound, high])))
        else:
            out.append(leaf_condition(op, bound))
    return out, value


def lent(fact: Facts) -> Facts:
    """The same facts with every record lent with its floats, as the memory store lends them."""
    records = {
        namespace: None if record is None else LentRecord(record)
        for namespace, record in fact.records.items()
    }
    return Facts(records=records, now=fact.now, changes=fact.changes)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=comparisons())
def test_floats_first_answer_as_decimal_comparison(case: tuple[list[Condition], Decimal]) -> None:
    conditions, value = case
    rule_set = RuleSet(conditions)
    assert "f0 = n0.get('revenue')" in rule_set.source  # the floats branch is written
    plain = Facts(records={"client": {"revenue": value}}, now=NOW)
    expected = tuple(condition(plain) for condition in conditions)
    assert rule_set.results(lent(plain)) == expected
    assert rule_set.matched(lent(plain)) == [i for i, holds in enumerate(expected) if holds]
    assert rule_set.results(plain) == expected  # no floats: the Decimal branch


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=filled(one_leaf_rules()) | filled(rule_sets()) | rule_sets())
def test_rule_sets_on_lent_records_answer_and_explain_as_the_closures(
    case: tuple[list[Condition], Facts],
) -> None:
    conditions, fact = case
    rule_set = RuleSet(conditions)
    lent_fact = lent(fact)
    expected = tuple(condition(fact) for condition in conditions)
    assert rule_set.results(lent_fact) == expected
    assert rule_set.matched(lent_fact) == [i for i, holds in enumerate(expected) if holds]
    evaluation = rule_set.evaluate(lent_fact)
    for index, condition in enumerate(conditions):
        assert evaluation.trace(index).describe() == condition.trace(fact).describe()


@given(value=numbers)
def test_float_of_is_the_nearest_float(value: Decimal) -> None:
    assert float_of(value) == float(value)
    whole = int(value)
    rounded = float(Decimal(whole))
    assert float_of(whole) == (rounded if abs(rounded) != float("inf") else None)


def test_float_of_leaves_out_what_has_no_order() -> None:
    assert float_of(Decimal("NaN")) is None and float_of(Decimal("-Infinity")) is None
    assert float_of(float("nan")) is None and float_of(float("inf")) is None
    assert float_of(True) is None and float_of("1") is None and float_of(None) is None
    assert float_of(10**400) is None
    assert float_of(3) == 3.0 and float_of(-0.0) == 0.0


def test_a_lent_record_is_read_only_and_copies_plain() -> None:
    record = LentRecord({"revenue": Decimal("1.5"), "name": "Acme", "bad": Decimal("NaN")})
    assert record.floats == {"revenue": 1.5}
    assert record == {"revenue": Decimal("1.5"), "name": "Acme", "bad": record["bad"]}
    for change in (
        lambda: record.__setitem__("revenue", Decimal(2)),
        lambda: record.__delitem__("name"),
        lambda: record.update(name="x"),
        lambda: record.pop("name"),
        lambda: record.popitem(),
        lambda: record.setdefault("other", 1),
        lambda: record.clear(),
    ):
        with pytest.raises(TypeError, match="read-only"):
            change()
    for made in (
        record.copy(),
        copy.copy(record),
        copy.deepcopy(record),
        pickle.loads(pickle.dumps(record)),
    ):
        assert made.__class__ is dict and made.keys() == record.keys()
        assert made["revenue"] == record["revenue"] and made["bad"].is_nan()


def test_the_memory_store_lends_records_with_their_floats() -> None:
    store = MemoryStore()
    with store.transaction() as tx:
        tx.put_client(Client(id="c1", name="Acme", fields={"revenue": Decimal("2.25")}))
        lent_client = tx.lend_client("c1")
        assert lent_client is not None
        record = lent_client[1]
        assert isinstance(record, LentRecord) and record.floats == {"revenue": 2.25}
        assert dict(record) == lent_client[0].record()
        tx.put_deal(Deal(id="d1", client="c1", pipeline="p", stage="s", amount=Decimal("7.5")))
        lent_deal = tx.lend_deal("d1")
        assert lent_deal is not None and lent_deal[1].floats == {"amount": 7.5}


def test_a_lent_record_holds_the_floats_of_the_keys_named() -> None:
    values = {"a": Decimal("0.5"), "b": Decimal(2), "c": "x", "d": None}
    assert LentRecord(values, ["a", "c", "d", "missing"]).floats == {"a": 0.5}
    assert LentRecord(values).floats == {"a": 0.5, "b": 2.0}
