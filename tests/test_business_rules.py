"""crmrules.business_rules: the compiled cache, import mapping and errors, export reasons."""

from __future__ import annotations

import copy
import functools
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import business_rules.engine as package
import pytest

from business_rules_app.products import RULES, Order, Product, ProductActions, ProductVariables
from crmrules.business_rules import (
    CACHE,
    ImportRulesError,
    export_rules,
    import_rules,
    plugin,
    run_all,
)
from crmrules.business_rules.command import check
from crmrules.errors import RegulationError
from crmrules.plugins import PluginManager
from crmrules.rules.regulation import load_regulation


def product(inventory: int = 25) -> Product:
    import datetime

    today = datetime.date(2026, 12, 1)
    return Product("p", inventory, 10.0, [Order(today + datetime.timedelta(days=3))], today=today)


def test_a_rule_list_is_compiled_once_for_many_objects() -> None:
    CACHE.clear()
    before = CACHE.compilations
    rules = copy.deepcopy(RULES)
    for inventory in range(50):
        item = product(inventory)
        run_all(rules, ProductVariables(item), ProductActions(item))
    assert CACHE.compilations == before + 1


def test_the_same_rules_read_again_reuse_the_compiled_form() -> None:
    rules = copy.deepcopy(RULES)
    item = product()
    run_all(rules, ProductVariables(item), ProductActions(item))
    before = CACHE.compilations
    again = json.loads(json.dumps(rules))
    run_all(again, ProductVariables(item), ProductActions(item))
    assert CACHE.compilations == before


def test_a_replaced_rule_is_compiled_again() -> None:
    rules = copy.deepcopy(RULES)
    item = product(25)
    assert run_all(rules, ProductVariables(item), ProductActions(item))
    rules[0] = {
        "conditions": {"all": [{"name": "current_inventory", "operator": "less_than", "value": 0}]},
        "actions": [{"name": "order_more", "params": {"number_to_order": 1}}],
    }
    rules.pop()
    fresh = product(25)
    assert not run_all(rules, ProductVariables(fresh), ProductActions(fresh))
    assert not package.run_all(rules, ProductVariables(fresh), ProductActions(fresh))


def test_rules_from_a_generator_run_one_by_one_as_in_the_package() -> None:
    ours, theirs = product(25), product(25)
    assert run_all(
        (rule for rule in RULES), ProductVariables(ours), ProductActions(ours), True
    ) == package.run_all(
        (rule for rule in RULES), ProductVariables(theirs), ProductActions(theirs), True
    )
    assert ours.price == theirs.price == 7.5


class Mapped(ProductVariables):
    """The README's variables, one of them read from a built-in field."""


def test_a_mapping_reads_variables_from_built_in_fields_and_names_crmrules_actions() -> None:
    rules = [
        {
            "conditions": {
                "all": [{"name": "current_month", "operator": "starts_with", "value": "Dec"}]
            },
            "actions": [{"name": "put_on_sale", "params": {"sale_percentage": 0.25}}],
        }
    ]
    mapping = {"current_month": "client.region", "put_on_sale": "emit"}
    with pytest.raises(
        RegulationError, match=re.escape("r.yaml:18:7: missing required key 'type'")
    ):
        check(import_rules(rules, Mapped, ProductActions, mapping), ProductActions, "r.yaml")
    rules[0]["actions"] = [{"name": "put_on_sale", "params": {"type": "product.on_sale"}}]
    regulation = import_rules(rules, Mapped, ProductActions, mapping)
    # A mapped variable reads its built-in field; the others are declared for the host's records.
    assert "client.region" not in regulation["fields"]
    assert "client.current_month" not in regulation["fields"]
    assert regulation["rules"][0]["if"] == {
        "all": [{"field": "client.region", "starts_with": "Dec"}]
    }
    compiled = check(regulation, ProductActions, "r.yaml")
    assert [a.name for a in compiled.rules[0].actions] == ["emit"]


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            {"name": "current_month", "operator": "greater_than", "value": 1},
            "rule 1.conditions.all[0]: operator 'greater_than' does not exist for string",
        ),
        (
            {"name": "current_inventory", "operator": "less_than", "value": "5"},
            "rule 1.conditions.all[0]: bad value for less_than: '5' is not a number",
        ),
        (
            {"all": [], "any": []},
            "rule 1.conditions.all[0]: all/any must be alone in its mapping",
        ),
        (
            {"name": "current_inventory", "operator": "less_than"},
            "rule 1.conditions.all[0]: a condition needs 'value'",
        ),
    ],
)
def test_import_names_the_rule_and_the_place_of_a_problem(condition: Any, message: str) -> None:
    rules = [{"conditions": {"all": [condition]}, "actions": [{"name": "order_more"}]}]
    with pytest.raises(ImportRulesError) as error:
        import_rules(rules, ProductVariables, ProductActions)
    assert str(error.value).startswith(message)


def test_import_refuses_params_the_action_does_not_declare() -> None:
    rules = [
        {
            "conditions": {"all": RULES[0]["conditions"]["all"]},
            "actions": [{"name": "order_more", "params": {"number": 40}}],
        }
    ]
    with pytest.raises(RegulationError, match="number"):
        check(import_rules(rules, ProductVariables, ProductActions), ProductActions, "r.yaml")


EXPORT = """\
version: 1
fields:
  client.current_inventory: {type: decimal}
  client.current_month: {type: string}
  client.contract_end: {type: date}
territories:
  - {id: msk, when: {field: client.region, eq: Москва}}
rules:
  - id: exported
    on: business_rules.run
    if: {field: client.current_inventory, gt: 20}
    then: [{order_more: {number_to_order: 40}}]
  - id: timed
    on: {before: 30 days, of: client.contract_end}
    then: [{order_more: {number_to_order: 1}}]
  - id: negated
    on: business_rules.run
    if: {field: client.current_month, ne: December}
    then: [{order_more: {number_to_order: 1}}]
  - id: territory
    on: business_rules.run
    if: {territory: msk}
    then: [{order_more: {number_to_order: 1}}]
  - id: builtin-action
    on: business_rules.run
    if: {field: client.current_inventory, lt: 5}
    then: [{create_task: {title: Order more}}]
  - id: between
    on: business_rules.run
    if: {not: {field: client.current_inventory, between: [5, 10]}}
    then: [{order_more: {number_to_order: 2}}]
"""


def test_export_lists_every_rule_it_cannot_express_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "regulation.yaml"
    path.write_text(EXPORT, encoding="utf-8")
    manager = PluginManager([plugin(ProductActions)], entry_points=False)
    regulation = load_regulation(
        path, actions=manager.action_models(), operators=manager.operators()
    )
    exported = export_rules(regulation)
    assert [rule["name"] for rule in exported] == ["exported", "between"]
    assert exported[0]["conditions"] == {
        "all": [
            {
                "name": "current_inventory",
                "operator": "greater_than",
                "value": Decimal("19.999999"),
            }
        ]
    }
    assert [str(skipped) for skipped in exported.skipped] == [
        "timed: time trigger (30 days before client.contract_end)",
        "negated: client.current_month ne December: no business-rules operator answers the same",
        "territory: in territory msk: business-rules has no territories",
        "builtin-action: the crmrules action create_task has no business-rules method",
    ]
    for inventory, fired in [(4, True), (5, False), (10, False), (11, True), (21, True)]:
        item = product(inventory)
        assert package.run_all(exported, ProductVariables(item), ProductActions(item)) is fired


@pytest.mark.parametrize("document", [RULES, RULES[0]])
def test_validate_points_business_rules_json_to_import_rules(
    tmp_path: Path, document: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmrules.cli import main

    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert main(["validate", str(path)]) == 1
    assert "business-rules JSON: turn it into a regulation with crmrules import-rules" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ("no_such_module:Vars", "error: no_such_module:Vars: cannot import no_such_module"),
        ("business_rules_app.products:Nope", "has no class Nope"),
        ("ProductVariables", "write module:Class"),
    ],
)
def test_import_rules_says_which_class_it_cannot_find(
    tmp_path: Path, variables: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmrules.cli import main

    path = tmp_path / "rules.json"
    path.write_text(json.dumps(RULES), encoding="utf-8")
    actions = "business_rules_app.products:ProductActions"
    assert main(["import-rules", str(path), "--variables", variables, "--actions", actions]) == 1
    assert message in capsys.readouterr().err


def test_import_rules_prints_the_regulation_and_takes_the_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crmrules.cli import main

    path = tmp_path / "rules.json"
    path.write_text(json.dumps(RULES), encoding="utf-8")
    classes = ["--variables", "business_rules_app.products:ProductVariables"]
    classes += ["--actions", "business_rules_app.products:ProductActions"]
    assert main(["import-rules", str(path), *classes, "--on", "product.checked"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("'on': product.checked") == 2
    assert "gt: 20.000001" in printed


@pytest.mark.parametrize("reuse", [False, True])
def test_conditions_nested_deeper_than_one_expression_run_as_in_the_package(reuse: bool) -> None:
    leaf = {"name": "current_inventory", "operator": "greater_than", "value": 20}
    deep: dict[str, Any] = leaf
    for level in range(40):
        other = {"name": "current_month", "operator": "equal_to", "value": f"m{level}"}
        deep = {"any" if level % 2 else "all": [deep, other] if level % 2 else [deep]}
    rules = [{"conditions": deep, "actions": [{"name": "order_more", "params": {"n": 1}}]}]
    for inventory in (5, 25):
        ours, theirs = product(inventory), product(inventory)
        expected = _outcome(package.run_all, rules, theirs)
        got = _outcome(functools.partial(run_all, reuse_values=reuse), rules, ours)
        assert got == expected
    assert _outcome(run_all, rules, product(25))[0] == "TypeError"  # order_more takes no n


def _outcome(run: Any, rules: list[dict[str, Any]], item: Product) -> tuple[str, str]:
    try:
        return "returned", repr(run(rules, ProductVariables(item), ProductActions(item)))
    except Exception as error:
        return type(error).__name__, str(error)
