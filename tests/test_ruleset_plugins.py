"""Plugin operators written inline by compiled rule sets answer as the operators' own tests.

The business-rules operators (``br_*``) say how a rule set may write them
out (``OperatorPlugin.inline``: lower-cased sets, a compiled pattern). The
oracle is the operator's ``test``, which the condition's closure calls; the
values are random text and sets of text with case variants, repeats and
operands that are not text, so both the inline form and its fall-backs run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crmrules.business_rules.plugin import OPERATORS
from crmrules.plugins import OperatorPlugin
from crmrules.rules.conditions import Condition, Facts, parse
from crmrules.rules.fields import FieldType
from crmrules.rules.ruleset import RuleSet
from test_conditions_property import CAL, make_scope

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
WORDS = st.sampled_from(["a", "A", "b", "Визит", "визит", "ß", "ss", "", "x y", "I", "ı"])
SCALARS = WORDS | st.integers(-2, 2) | st.none()
BY_NAME = {operator.name: operator for operator in OPERATORS}


def rule_set_and_conditions(
    leaves: list[tuple[OperatorPlugin, Any]],
) -> tuple[RuleSet, list[Condition]]:
    scope = make_scope([])
    scope.operators = dict(BY_NAME)
    conditions = []
    for operator, operand in leaves:
        path = "client.region" if FieldType.STRING in operator.types else "client.tags"
        tree = parse({"field": path, operator.name: operand}, ("if",), scope)
        assert tree is not None, scope.problems
        conditions.append(Condition(tree, CAL))
    return RuleSet(conditions), conditions


@st.composite
def plugin_leaves(draw: st.DrawFn) -> tuple[OperatorPlugin, Any]:
    operator = draw(st.sampled_from(OPERATORS))
    if operator.name == "br_matches_regex":
        return operator, draw(st.sampled_from(["^a", "b$", "(?i)визит", "x.y", "", "[ß]"]))
    if FieldType.STRING in operator.types:
        return operator, draw(WORDS)
    if operator.name in ("br_contains", "br_does_not_contain"):
        return operator, draw(SCALARS)
    return operator, draw(st.lists(SCALARS, max_size=4))


@settings(max_examples=600, deadline=None)
@given(
    leaves=st.lists(plugin_leaves(), min_size=1, max_size=6),
    region=WORDS | st.none(),
    tags=st.none() | st.frozensets(WORDS, max_size=4),
)
def test_inline_plugin_operators_answer_as_their_tests(
    leaves: list[tuple[OperatorPlugin, Any]], region: str | None, tags: frozenset[str] | None
) -> None:
    rule_set, conditions = rule_set_and_conditions(leaves)
    fact = Facts(records={"client": {"region": region, "tags": tags}}, now=NOW)
    expected = tuple(condition(fact) for condition in conditions)
    assert rule_set.results(fact) == expected
    assert rule_set.matched(fact) == [i for i, hit in enumerate(expected) if hit]


def test_business_rules_operators_are_written_inline_and_views_computed_once() -> None:
    leaves = [
        (BY_NAME["br_contains"], "Визит"),
        (BY_NAME["br_shares_at_least_one_element_with"], ["a", "B"]),
        (BY_NAME["br_equal_to_case_insensitive"], "Retail"),
        (BY_NAME["br_matches_regex"], "^Re"),
    ]
    rule_set, _ = rule_set_and_conditions(leaves)
    evaluate = rule_set.source.split("\n\n\ndef ")[0]
    assert "bool(" not in evaluate  # no call of an operator's test
    assert evaluate.count(" else None") == 2  # one lower-cased view per field: tags and region
    fact = Facts(records={"client": {"region": "retail", "tags": frozenset({"визит"})}}, now=NOW)
    assert rule_set.results(fact) == (True, False, True, False)


def test_an_operand_the_inline_form_does_not_cover_calls_the_test() -> None:
    # a repeated value changes what "exactly one" means; a number is compared as it is
    leaves = [
        (BY_NAME["br_shares_exactly_one_element_with"], ["a", "A"]),
        (BY_NAME["br_contains"], 1),
    ]
    rule_set, conditions = rule_set_and_conditions(leaves)
    # each test is written twice: for facts with every value present, and for any facts
    assert rule_set.source.split("\n\n\ndef ")[0].count("bool(") == 4
    fact = Facts(records={"client": {"tags": frozenset({"a"})}}, now=NOW)
    assert rule_set.results(fact) == (False, False) == tuple(c(fact) for c in conditions)
