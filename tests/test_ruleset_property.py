"""Compiled rule sets against the conditions they were built from, as the oracle.

A rule set must give every condition's answer exactly as ``Condition``
does, and its lazily rebuilt explanations must be the ones
``Condition.trace`` gives (and ``explain``, the short-circuit trace the
engine records for rules that did not match, the same result, deciding
leaf and words), for random conditions (every operator, nested
all/any/not, sub-conditions shared between rules) and random facts. The
generators are those of test_conditions_property.py.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crmrules.plugins import OperatorPlugin
from crmrules.rules.conditions import Condition, Facts, parse
from crmrules.rules.fields import FieldType
from crmrules.rules.ruleset import RuleSet, explain
from test_conditions_property import (
    CAL,
    FIELDS,
    NAMESPACES,
    compile_raw,
    conditions,
    facts,
    leaves,
    make_scope,
    record_value,
)

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


@st.composite
def shared_conditions(draw: st.DrawFn) -> dict[str, Any]:
    """A condition built from a small pool of leaves, so rules share sub-conditions."""
    pool = draw(st.lists(leaves(), min_size=1, max_size=4))

    def extend(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        return st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda items: {"all": items}),
            st.lists(inner, min_size=1, max_size=3).map(lambda items: {"any": items}),
            inner.map(lambda item: {"not": item}),
        )

    tree = st.recursive(st.sampled_from(pool), extend, max_leaves=8)
    return {"all": draw(st.lists(tree, min_size=1, max_size=3))}


@st.composite
def rule_sets(draw: st.DrawFn) -> tuple[list[Condition], Facts]:
    raws = draw(st.lists(conditions() | shared_conditions(), min_size=1, max_size=6))
    # a rule may repeat another's condition, or a part of it
    if draw(st.booleans()):
        raws += draw(st.lists(st.sampled_from(raws), max_size=3))
    compiled = [compile_raw(raw) for raw in raws]
    assume(all(condition is not None for condition, _ in compiled))
    fact = draw(facts({"all": raws}))
    return [c for c, _ in compiled if c is not None], fact


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=rule_sets())
def test_rule_set_gives_each_conditions_answer_and_explanation(
    case: tuple[list[Condition], Facts],
) -> None:
    conditions_, fact = case
    rule_set = RuleSet(conditions_)
    expected = tuple(condition(fact) for condition in conditions_)
    assert rule_set.results(fact) == expected
    evaluation = rule_set.evaluate(fact)
    assert evaluation.results == expected
    assert evaluation.matched() == [i for i, result in enumerate(expected) if result]
    assert rule_set.matched(fact) == evaluation.matched()
    for index, condition in enumerate(conditions_):
        full = condition.trace(fact)
        assert evaluation.trace(index) == full
        short = explain(condition, fact)  # what the engine records for a rule that did not match
        assert (short.result, short.decided_by, short.describe()) == (
            full.result,
            full.decided_by,
            full.describe(),
        )
        assert all(leaf in full.leaves for leaf in short.leaves)


@st.composite
def one_leaf_rules(draw: st.DrawFn) -> tuple[list[Condition], Facts]:
    """Rules of one leaf each, so every leaf's own answer shows (an inlined operator's edge)."""
    raws = draw(st.lists(leaves(), min_size=1, max_size=8))
    compiled = [compile_raw(raw) for raw in raws]
    assume(all(condition is not None for condition, _ in compiled))
    fact = draw(facts({"all": raws}))
    return [c for c, _ in compiled if c is not None], fact


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=one_leaf_rules())
def test_every_inlined_leaf_answers_as_its_closure(case: tuple[list[Condition], Facts]) -> None:
    conditions_, fact = case
    rule_set = RuleSet(conditions_)
    expected = tuple(c(fact) for c in conditions_)
    assert rule_set.results(fact) == expected
    assert rule_set.matched(fact) == [i for i, result in enumerate(expected) if result]


@st.composite
def filled(
    draw: st.DrawFn, cases: st.SearchStrategy[tuple[list[Condition], Facts]]
) -> tuple[list[Condition], Facts]:
    """A case whose records hold a value for every field (the branch without None tests)."""
    conditions_, fact = draw(cases)
    records: dict[str, dict[str, Any] | None] = {}
    for namespace in NAMESPACES:
        record = dict(fact.records.get(namespace) or {})
        for path in FIELDS:
            key = path.split(".", 1)[1]
            if path.startswith(namespace + ".") and record.get(key) is None:
                record[key] = draw(record_value(path).filter(lambda value: value is not None))
        records[namespace] = record
    return conditions_, Facts(records=records, now=fact.now, changes=fact.changes)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=filled(one_leaf_rules()) | filled(rule_sets()))
def test_every_value_present_answers_as_the_closures(case: tuple[list[Condition], Facts]) -> None:
    conditions_, fact = case
    rule_set = RuleSet(conditions_)
    expected = tuple(c(fact) for c in conditions_)
    assert rule_set.results(fact) == expected
    assert rule_set.matched(fact) == [i for i, result in enumerate(expected) if result]


def test_a_shared_leaf_is_tested_once_and_each_field_read_once() -> None:
    calls: list[Any] = []

    def test(value: Any, operand: Any) -> bool:
        calls.append(value)
        return bool(value == operand)

    operator = OperatorPlugin("same_as", frozenset({FieldType.STRING}), test)
    scope = make_scope([])
    scope.operators = {"same_as": operator}
    leaf = {"field": "client.region", "same_as": "Москва"}
    raws = [
        leaf,
        {"all": [leaf, {"field": "client.region", "ne": "Казань"}]},
        {"any": [{"field": "client.name", "eq": "x"}, leaf]},
    ]
    trees = [parse(raw, ("if",), scope) for raw in raws]
    rule_set = RuleSet([Condition(tree, CAL) for tree in trees if tree is not None])
    fact = Facts(records={"client": {"region": "Москва", "name": "y"}}, now=NOW)
    assert rule_set.results(fact) == (True, True, True)
    assert calls == ["Москва"]
    for function in rule_set.source.split("\n\n\ndef "):  # evaluate and matched
        # once: by subscript from a plain dict, else (a key missing, another mapping) by get
        assert function.count("['region']") == 1
        assert function.count(".get('region')") == 2


def test_an_empty_rule_set_and_missing_records() -> None:
    assert RuleSet([]).results(Facts(records={}, now=NOW)) == ()
    condition, problems = compile_raw({"field": "deal.stage", "ne": "won"})
    assert condition is not None and not problems
    assert RuleSet([condition]).results(Facts(records={"deal": None}, now=NOW)) == (True,)


class _Text(str):
    """Text of a subclass: not what the branch that takes text as exactly ``str`` expects."""


#: values a field may hold in facts built by hand, of another class than its field type's
ODD_VALUES: dict[str, list[Any]] = {
    "boolean": [0, 1, 2, "", "yes", _Text("")],
    "string": [_Text(""), _Text("x"), 0, frozenset()],
    "enum": [_Text("A"), _Text("")],
}


@st.composite
def odd(
    draw: st.DrawFn, cases: st.SearchStrategy[tuple[list[Condition], Facts]]
) -> tuple[list[Condition], Facts]:
    """A filled case where some flags and texts hold values of another class (1, a str subclass).

    The branch that tests a flag as itself and text's emptiness as its truth
    must not take them: they go to the careful branch, as the closures do.
    """
    conditions_, fact = draw(filled(cases))
    records: dict[str, dict[str, Any] | None] = {}
    for namespace, record in fact.records.items():
        changed = dict(record or {})
        for key in list(changed):
            kind = FIELDS.get(f"{namespace}.{key}", ("", ()))[0]
            if kind in ODD_VALUES and draw(st.booleans()):
                changed[key] = draw(st.sampled_from(ODD_VALUES[kind]))
        records[namespace] = changed
    return conditions_, Facts(records=records, now=fact.now, changes=fact.changes)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=odd(one_leaf_rules()) | odd(rule_sets()))
def test_values_of_another_class_answer_as_the_closures(
    case: tuple[list[Condition], Facts],
) -> None:
    conditions_, fact = case
    rule_set = RuleSet(conditions_)
    try:
        expected: Any = tuple(c(fact) for c in conditions_)
    except Exception as error:  # an odd value some closure cannot test: the same error
        expected = type(error)
    try:
        got: Any = rule_set.results(fact)
        listed: Any = rule_set.matched(fact)
    except Exception as error:
        got = listed = type(error)
    assert got == expected
    if isinstance(expected, tuple):
        assert listed == [i for i, result in enumerate(expected) if result]


def test_flags_and_texts_are_tested_as_themselves_when_exactly_bool_and_str() -> None:
    raws = [
        {"field": "client.subscribed", "eq": True},
        {"field": "client.subscribed", "eq": False},
        {"field": "client.name", "is_empty": True},
        {"not": {"field": "client.name", "is_empty": True}},
    ]
    compiled = [compile_raw(raw)[0] for raw in raws]
    rule_set = RuleSet([c for c in compiled if c is not None])
    for subscribed, name in ((True, ""), (False, "x"), (1, _Text("")), (0, _Text("x"))):
        fact = Facts(records={"client": {"subscribed": subscribed, "name": name}}, now=NOW)
        expected = tuple(c(fact) for c in compiled if c is not None)
        assert rule_set.results(fact) == expected
    assert "(v0 is True or v0 is False)" in rule_set.source or "is True or" in rule_set.source


def test_records_of_other_mappings_and_missing_keys_are_read_with_get() -> None:
    raws = [{"field": "client.region", "eq": "x"}, {"field": "client.name", "is_empty": True}]
    compiled = [compile_raw(raw)[0] for raw in raws]
    rule_set = RuleSet([c for c in compiled if c is not None])
    with_default: defaultdict[str, Any] = defaultdict(lambda: "x", {"name": "n"})
    for record in ({"region": "x", "name": ""}, {"region": "x"}, {}, with_default, None):
        fact = Facts(records={"client": record}, now=NOW)
        expected = tuple(c(fact) for c in compiled if c is not None)
        assert rule_set.results(fact) == expected
        assert rule_set.matched(fact) == [i for i, result in enumerate(expected) if result]
    assert dict(with_default) == {"name": "n"}  # read, not filled in by a subscript
