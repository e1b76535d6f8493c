"""crmrules.business_rules against the real business-rules package, on random rule lists.

Every operator of every variable type, ``all``/``any`` nested to depth 4,
numbers on either side of the package's epsilon, empty and unicode text,
and (for the drop-in) broken rules and values: the drop-in must return
what the package returns, raise what it raises, call the same actions with
the same params in the same order and the same variable methods in the
same order. The import must fire the same rules through crmrules'
compiled conditions, and the export of the import must fire them again
through the package. Hypothesis draws (and shrinks) a few hundred cases of
each; the seeded tests at the end run 3,000 and 1,000 more rule lists drawn
with ``random`` from the same pools, which is much cheaper.
"""

from __future__ import annotations

import datetime
import random
from decimal import Decimal
from typing import Any

import business_rules.engine as package
from business_rules.actions import BaseActions, rule_action
from business_rules.fields import FIELD_NUMERIC, FIELD_SELECT_MULTIPLE, FIELD_TEXT
from business_rules.variables import (
    BaseVariables,
    boolean_rule_variable,
    numeric_rule_variable,
    select_multiple_rule_variable,
    select_rule_variable,
    string_rule_variable,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules.business_rules import engine as ours
from crmrules.business_rules import export_rules, fields_from_variables, import_rules, semantics
from crmrules.business_rules.command import check
from crmrules.business_rules.plugin import action_name
from crmrules.rules.conditions import Facts

START = datetime.datetime(2026, 12, 1, 9, tzinfo=datetime.UTC)
Log = list[tuple[Any, ...]]


class Variables(BaseVariables):  # type: ignore[misc]
    """Every variable type; each call is logged."""

    def __init__(self, values: dict[str, Any], log: Log) -> None:
        self.values, self.log = values, log

    def _read(self, name: str) -> Any:
        self.log.append(("variable", name))
        return self.values[name]

    @numeric_rule_variable  # type: ignore[misc]
    def amount(self) -> Any:
        return self._read("amount")

    @numeric_rule_variable()  # type: ignore[misc]
    def count(self) -> Any:
        return self._read("count")

    @string_rule_variable  # type: ignore[misc]
    def title(self) -> Any:
        return self._read("title")

    @string_rule_variable()  # type: ignore[misc]
    def city(self) -> Any:
        return self._read("city")

    @boolean_rule_variable  # type: ignore[misc]
    def active(self) -> Any:
        return self._read("active")

    @select_rule_variable(options=["a", "B", "ß"])  # type: ignore[misc]
    def colours(self) -> Any:
        return self._read("colours")

    @select_multiple_rule_variable()  # type: ignore[misc]
    def tags(self) -> Any:
        return self._read("tags")


class Actions(BaseActions):  # type: ignore[misc]
    def __init__(self, log: Log) -> None:
        self.log = log

    @rule_action(params={"amount": FIELD_NUMERIC})  # type: ignore[misc]
    def discount(self, amount: Any) -> str:
        self.log.append(("action", "discount", amount))
        return f"discount {amount}"

    @rule_action(params={"text": FIELD_TEXT, "tags": FIELD_SELECT_MULTIPLE})  # type: ignore[misc]
    def notify(self, text: Any = None, tags: Any = None) -> int:
        self.log.append(("action", "notify", text, tags))
        return len(self.log)

    @rule_action()  # type: ignore[misc]
    def flag(self) -> None:
        self.log.append(("action", "flag"))


KINDS = {
    "amount": "numeric",
    "count": "numeric",
    "title": "string",
    "city": "string",
    "active": "boolean",
    "colours": "select",
    "tags": "select_multiple",
}
OPERATORS = {
    "numeric": semantics.NUMERIC_OPS,
    "string": tuple(semantics.TYPES["StringType"].operators),
    "boolean": ("is_true", "is_false"),
    "select": ("contains", "does_not_contain"),
    "select_multiple": tuple(semantics.TYPES["SelectMultipleType"].operators),
}
EPS = Decimal("0.000001")
BASES: list[Any] = [0, 1, -3, 5, 20, 2.5, 0.1, 1e6, Decimal("7.25"), Decimal("-0.5"), 1e-7]
DELTAS = [Decimal(0), EPS, -EPS, 2 * EPS, -2 * EPS, EPS / 2, -EPS / 2, EPS / 10]
LETTERS = ["a", "A", "b", "B", "ß", "SS", "ss", "Σ", "σ", "ς", "İ", "i", "K", "k", "é", " ", "1"]
PATTERNS = ["", "^a", "b$", "(?i)ss", "[Σσ]", r"\w+", "^$", "ß|k", ".", "a{2}", r"\d", "İ"]

text = st.lists(st.sampled_from(LETTERS), max_size=4).map("".join)
number_constant = st.sampled_from(BASES)


@st.composite
def numbers(draw: st.DrawFn) -> Any:
    """A number close to a rule constant: on, just inside or just outside the epsilon."""
    base = draw(number_constant)
    delta = draw(st.sampled_from(DELTAS))
    form = draw(st.sampled_from(["float", "decimal", "int"]))
    if form == "int" and delta == 0 and float(base).is_integer():
        return int(base)
    if form == "decimal":
        return Decimal(str(base)) + delta
    return float(base) + float(delta)


def values(*, broken: bool) -> st.SearchStrategy[dict[str, Any]]:
    strings = st.one_of(text, st.none()) if not broken else st.one_of(text, st.none(), st.just(7))
    numeric = numbers() if not broken else st.one_of(numbers(), st.sampled_from([None, "5"]))
    boolean = st.booleans() if not broken else st.one_of(st.booleans(), st.just(1))
    items = st.lists(text, max_size=4)
    select = items if not broken else st.one_of(items, st.just(5), st.lists(st.integers(0, 2)))
    return st.fixed_dictionaries(
        {
            "amount": numeric,
            "count": numeric,
            "title": strings,
            "city": strings,
            "active": boolean,
            "colours": select,
            "tags": items,
        }
    )


def operand(kind: str, op: str) -> st.SearchStrategy[Any]:
    if kind == "numeric":
        return number_constant
    if kind == "string":
        return st.sampled_from(PATTERNS) if op == "matches_regex" else st.one_of(text, st.none())
    if kind == "select":
        return text
    if kind == "select_multiple":
        return st.lists(text, max_size=3)
    return st.none()


@st.composite
def leaves(draw: st.DrawFn, *, broken: bool) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(KINDS)))
    kind = KINDS[name]
    op = draw(st.sampled_from(OPERATORS[kind]))
    value = draw(operand(kind, op))
    if broken:
        odd = draw(st.integers(0, 30))
        if odd == 0:
            name = "missing_variable"
        elif odd == 1:
            op = "no_such_operator"
        elif odd == 2:
            value = draw(st.sampled_from([5, "x", None, float("nan"), ["a"]]))
        elif odd == 3:
            return {"name": name, "operator": op}
        elif odd == 4:
            op = "value"  # an attribute of the operator type, not an operator
    return {"name": name, "operator": op, "value": value}


def conditions(depth: int, *, broken: bool) -> st.SearchStrategy[Any]:
    leaf = leaves(broken=broken)
    if depth == 0:
        return leaf
    combined = st.builds(
        lambda key, items: {key: items},
        st.sampled_from(["all", "any"]),
        st.lists(conditions(depth - 1, broken=broken), min_size=1, max_size=2),
    )
    return st.one_of(leaf, combined)


action = st.one_of(
    st.builds(lambda a: {"name": "discount", "params": {"amount": a}}, st.sampled_from([1, 0.25])),
    st.builds(
        lambda t, g: {"name": "notify", "params": {"text": t, "tags": g}},
        text,
        st.lists(text, max_size=2),
    ),
    st.just({"name": "flag"}),
)


@st.composite
def rule_lists(draw: st.DrawFn, *, broken: bool) -> list[dict[str, Any]]:
    rules = []
    for _ in range(draw(st.integers(1, 4))):
        top = draw(st.sampled_from(["all", "any"]))
        items = draw(st.lists(conditions(3, broken=broken), min_size=1, max_size=3))
        actions = draw(st.lists(action, min_size=1, max_size=2))
        rules.append({"conditions": {top: items}, "actions": actions})
    if broken and draw(st.integers(0, 20)) == 0:
        rules.append({"conditions": {"all": []}, "actions": [{"name": "no_such_action"}]})
    if broken and draw(st.integers(0, 20)) == 0:
        rules.append({"conditions": {"all": [], "any": []}, "actions": []})
    return rules


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "returned", call()
    except Exception as error:
        return type(error).__name__, str(error)


def run_both(
    rules: list[dict[str, Any]], data: dict[str, Any], stop: bool, **options: Any
) -> tuple[tuple[tuple[str, Any], Log], tuple[tuple[str, Any], Log]]:
    theirs: Log = []
    mine: Log = []
    expected = outcome(
        lambda: package.run_all(rules, Variables(data, theirs), Actions(theirs), stop)
    )
    got = outcome(
        lambda: ours.run_all(rules, Variables(data, mine), Actions(mine), stop, **options)
    )
    return (expected, theirs), (got, mine)


def without_repeats(log: Log) -> Log:
    """The package's calls with each variable's repeated reads dropped."""
    seen: set[str] = set()
    kept: Log = []
    for entry in log:
        if entry[0] == "variable":
            if entry[1] in seen:
                continue
            seen.add(entry[1])
        kept.append(entry)
    return kept


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rule_lists(broken=True),
    st.lists(values(broken=True), min_size=1, max_size=3),
    st.booleans(),
)
def test_the_drop_in_answers_raises_and_calls_as_the_package(
    rules: list[dict[str, Any]], objects: list[dict[str, Any]], stop: bool
) -> None:
    for data in objects:
        expected, got = run_both(rules, data, stop)
        assert got == expected
        (expected_result, theirs), (reused_result, reused) = run_both(
            rules, data, stop, reuse_values=True
        )
        assert reused_result == expected_result
        if expected_result[0] == "returned":
            assert reused == without_repeats(theirs)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaves(broken=True), values(broken=True))
def test_check_condition_returns_what_the_package_returns(
    leaf: dict[str, Any], data: dict[str, Any]
) -> None:
    theirs: Log = []
    mine: Log = []
    expected = outcome(lambda: package.check_condition(leaf, Variables(data, theirs)))
    got = outcome(lambda: ours.check_condition(leaf, Variables(data, mine)))
    if expected[0] == "returned" and expected[1] is not None and not isinstance(expected[1], bool):
        # matches_regex returns the re.Match object itself
        assert got[0] == "returned" and got[1] is not None
        assert (got[1].span(), got[1].group()) == (expected[1].span(), expected[1].group())
    else:
        assert got == expected
    assert mine == theirs


def fired_by_package(rules: list[dict[str, Any]], data: dict[str, Any]) -> list[tuple[int, Log]]:
    fired = []
    for index, rule in enumerate(rules):
        log: Log = []
        if package.run(rule, Variables(data, log), Actions(log)):
            fired.append((index, [entry for entry in log if entry[0] == "action"]))
    return fired


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_lists(broken=False), st.lists(values(broken=False), min_size=1, max_size=3))
def test_import_then_crmrules_and_export_then_the_package_fire_the_same_rules(
    rules: list[dict[str, Any]], objects: list[dict[str, Any]]
) -> None:
    regulation = check(import_rules(rules, Variables, Actions), Actions, "imported.yaml")
    exported = export_rules(regulation)
    assert exported.skipped == []
    assert len(exported) == len(rules)
    for data in objects:
        expected = fired_by_package(rules, data)
        fields = fields_from_variables(Variables(data, []))
        record = regulation.fields.coerce_record(
            "client",
            "c1",
            {path.split(".", 1)[1]: v for path, v in fields.items()},
            regulation.calendar,
        )
        facts = Facts(records={"client": record}, now=START)
        fired = [index for index, rule in enumerate(regulation.rules) if rule.condition(facts)]
        assert fired == [index for index, _ in expected]
        for index in fired:
            imported = [
                (a.name, a.params.model_dump(exclude_unset=True))
                for a in regulation.rules[index].actions
            ]
            assert imported == [
                (action_name(a["name"]), a.get("params") or {}) for a in rules[index]["actions"]
            ]
        assert fired_by_package(exported, data) == expected


# --- the same, in bulk: thousands of seeded rule lists drawn without hypothesis's overhead ------


class Draw:
    """The strategies above, drawn with a seeded ``random.Random`` (cheap, so thousands fit)."""

    def __init__(self, seed: int, *, broken: bool) -> None:
        self.rng = random.Random(seed)
        self.broken = broken

    def text(self) -> str:
        return "".join(self.rng.choice(LETTERS) for _ in range(self.rng.randrange(5)))

    def number(self) -> Any:
        base, delta = self.rng.choice(BASES), self.rng.choice(DELTAS)
        form = self.rng.choice(["float", "decimal", "int"])
        if form == "int" and delta == 0 and float(base).is_integer():
            return int(base)
        if form == "decimal":
            return Decimal(str(base)) + delta
        return float(base) + float(delta)

    def values(self) -> dict[str, Any]:
        odd = self.broken and self.rng.random() < 0.1
        items = [self.text() for _ in range(self.rng.randrange(5))]
        return {
            "amount": self.rng.choice([None, "5"]) if odd else self.number(),
            "count": self.number(),
            "title": self.rng.choice([self.text(), None, 7 if odd else ""]),
            "city": self.text(),
            "active": 1 if odd else self.rng.random() < 0.5,
            "colours": 5 if odd and self.rng.random() < 0.5 else items,
            "tags": [self.text() for _ in range(self.rng.randrange(5))],
        }

    def operand(self, kind: str, op: str) -> Any:
        if kind == "numeric":
            return self.rng.choice(BASES)
        if kind == "string":
            return self.rng.choice(PATTERNS) if op == "matches_regex" else self.text()
        if kind == "select":
            return self.text()
        if kind == "select_multiple":
            return [self.text() for _ in range(self.rng.randrange(4))]
        return None

    def leaf(self) -> dict[str, Any]:
        name = self.rng.choice(sorted(KINDS))
        op = self.rng.choice(OPERATORS[KINDS[name]])
        leaf = {"name": name, "operator": op, "value": self.operand(KINDS[name], op)}
        if self.broken and self.rng.random() < 0.05:
            leaf[self.rng.choice(["name", "operator", "value"])] = self.rng.choice(
                ["missing_variable", "value", 5, None]
            )
        return leaf

    def condition(self, depth: int) -> dict[str, Any]:
        if depth == 0 or self.rng.random() < 0.5:
            return self.leaf()
        key = self.rng.choice(["all", "any"])
        return {key: [self.condition(depth - 1) for _ in range(self.rng.randrange(1, 3))]}

    def rules(self) -> list[dict[str, Any]]:
        actions = [
            {"name": "discount", "params": {"amount": self.rng.choice([1, 0.25])}},
            {"name": "notify", "params": {"text": "x", "tags": ["a"]}},
            {"name": "flag"},
        ]
        return [
            {
                "conditions": {
                    self.rng.choice(["all", "any"]): [
                        self.condition(3) for _ in range(self.rng.randrange(1, 4))
                    ]
                },
                "actions": self.rng.sample(actions, self.rng.randrange(1, 3)),
            }
            for _ in range(self.rng.randrange(1, 5))
        ]


def test_thousands_of_seeded_rule_lists_run_as_in_the_package() -> None:
    for seed in range(3000):
        draw = Draw(seed, broken=True)
        rules, stop = draw.rules(), draw.rng.random() < 0.3
        for data in (draw.values(), draw.values()):
            expected, got = run_both(rules, data, stop)
            assert got == expected, (seed, rules, data)
            (expected_result, theirs), (reused_result, reused) = run_both(
                rules, data, stop, reuse_values=True
            )
            assert reused_result == expected_result, (seed, rules, data)
            if expected_result[0] == "returned":
                assert reused == without_repeats(theirs), (seed, rules, data)


def test_a_thousand_seeded_rule_lists_import_and_export_to_the_same_rules() -> None:
    for seed in range(1000):
        draw = Draw(seed, broken=False)
        rules = draw.rules()
        regulation = check(import_rules(rules, Variables, Actions), Actions, "imported.yaml")
        exported = export_rules(regulation)
        assert exported.skipped == [] and len(exported) == len(rules)
        for data in (draw.values(), draw.values()):
            expected = fired_by_package(rules, data)
            fields = fields_from_variables(Variables(data, []))
            record = regulation.fields.coerce_record(
                "client",
                "c1",
                {path.split(".", 1)[1]: v for path, v in fields.items()},
                regulation.calendar,
            )
            facts = Facts(records={"client": record}, now=START)
            fired = [i for i, rule in enumerate(regulation.rules) if rule.condition(facts)]
            assert fired == [index for index, _ in expected], (seed, rules, data)
            assert fired_by_package(exported, data) == expected, (seed, rules, data)
