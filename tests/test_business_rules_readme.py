"""The business-rules README example, through the drop-in, the package, and import."""

from __future__ import annotations

import copy
import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import business_rules.engine
import pytest

from business_rules_app.products import RULES, Order, Product, ProductActions, ProductVariables
from crmrules import Client, Engine, Event, MemoryStore, SimulatedClock
from crmrules.business_rules import (
    export_rules,
    fields_from_variables,
    import_rules,
    plugin,
    run_all,
    run_all_results,
)
from crmrules.business_rules.command import check, to_yaml
from crmrules.rules.regulation import load_regulation

TODAY = datetime.date(2026, 12, 1)
START = datetime.datetime(2026, 12, 1, 9, tzinfo=datetime.UTC)


def products() -> list[Product]:
    """One product for each path through the two rules, and one that fires none."""

    def product(pid: str, inventory: int, expires_in: int, month: str = "December") -> Product:
        orders = [Order(TODAY + datetime.timedelta(days=expires_in))]
        return Product(pid, inventory, 10.0, orders, month=month, today=TODAY)

    return [
        product("sale", 25, 3),  # rule 1
        product("low", 3, 30, "March"),  # rule 2, first branch
        product("december", 10, 30),  # rule 2, second branch
        product("both", 21, 4),  # rule 1 only: 21 is not < 20
        product("none", 30, 30, "March"),
        product("edge", 20, 5),  # 5 is not < 5, 20 is not > 20, 20 is not < 20
    ]


def outcome(product: Product) -> tuple[float, list[Any]]:
    return product.price, product.ordered


def test_the_drop_in_runs_the_readme_rules_as_the_package_does() -> None:
    for ours, theirs in zip(products(), products(), strict=True):
        fired = run_all(RULES, ProductVariables(ours), ProductActions(ours))
        expected = business_rules.engine.run_all(
            RULES, ProductVariables(theirs), ProductActions(theirs)
        )
        assert fired == expected
        assert outcome(ours) == outcome(theirs)
    sale, low, december, both, none, edge = (outcome(p) for p in products_after_drop_in())
    assert sale == (7.5, []) and low == (10.0, [40]) and december == (10.0, [40])
    assert both == (7.5, []) and none == (10.0, []) and edge == (10.0, [])


def products_after_drop_in() -> list[Product]:
    items = products()
    for item in items:
        run_all(RULES, ProductVariables(item), ProductActions(item))
    return items


def test_run_all_results_says_which_rules_fired_and_what_they_returned() -> None:
    sale = products()[0]
    result = run_all_results(RULES, ProductVariables(sale), ProductActions(sale))
    assert result.triggered
    assert [(f.index, f.returned) for f in result.fired] == [(0, (7.5,))]
    first = products()[2]
    stopped = run_all_results(
        [*RULES, RULES[1]], ProductVariables(first), ProductActions(first), True
    )
    assert [(f.index, f.returned) for f in stopped.fired] == [(1, (40,))]


def test_the_imported_readme_rules_fire_the_same_in_the_engine() -> None:
    regulation_data = import_rules(RULES, ProductVariables, ProductActions)
    assert regulation_data["rules"][0]["if"] == {
        "all": [
            {
                "field": "client.expiration_days",
                "lt": regulation_data["rules"][0]["if"]["all"][0]["lt"],
            },
            {
                "field": "client.current_inventory",
                "gt": regulation_data["rules"][0]["if"]["all"][1]["gt"],
            },
        ]
    }
    regulation = check(regulation_data, ProductActions, "imported.yaml")
    ours = {p.id: p for p in products()}
    engine = Engine(
        regulation,
        MemoryStore(),
        SimulatedClock(START),
        plugins=[
            plugin(ProductActions, lambda context: ProductActions(ours[context.subjects()[0].id]))
        ],
        entry_points=False,
    )
    for index, product in enumerate(ours.values()):
        fields = fields_from_variables(ProductVariables(product))
        engine.create_client(
            Client(id=product.id, fields={path.split(".", 1)[1]: v for path, v in fields.items()})
        )
        result = engine.handle(
            Event(
                id=f"run-{index}", type="business_rules.run", occurred_at=START, client=product.id
            )
        )
        assert result.fired == [f"rule-{n + 1}" for n in fired_by_package(product)]
    for theirs in products():
        business_rules.engine.run_all(RULES, ProductVariables(theirs), ProductActions(theirs))
        assert outcome(ours[theirs.id]) == outcome(theirs)


def fired_by_package(product: Product) -> list[int]:
    copy_of = copy.deepcopy(product)
    return [
        index
        for index, rule in enumerate(RULES)
        if business_rules.engine.run(rule, ProductVariables(copy_of), ProductActions(copy_of))
    ]


def test_export_gives_back_rules_the_package_runs_the_same() -> None:
    regulation = check(
        import_rules(RULES, ProductVariables, ProductActions), ProductActions, "r.yaml"
    )
    exported = export_rules(regulation)
    assert exported.skipped == []
    assert [rule["actions"] for rule in exported] == [rule["actions"] for rule in RULES]
    for ours, theirs in zip(products(), products(), strict=True):
        assert business_rules.engine.run_all(
            exported, ProductVariables(ours), ProductActions(ours)
        ) == business_rules.engine.run_all(RULES, ProductVariables(theirs), ProductActions(theirs))
        assert outcome(ours) == outcome(theirs)


def test_the_import_rules_command_writes_a_regulation_crmrules_validates(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES), encoding="utf-8")
    output = tmp_path / "regulation.yaml"
    tests = Path(__file__).parent
    env = {"PYTHONPATH": str(tests), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "crmrules", "import-rules", str(rules)]
    classes = ["--variables", "business_rules_app.products:ProductVariables"]
    classes += ["--actions", "business_rules_app.products:ProductActions"]
    done = subprocess.run(
        [*command, *classes, "-o", str(output)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{output}: 2 rules imported from {rules}\n"
    plugins_site = tmp_path / "site"
    plugins_site.mkdir()
    (plugins_site / "products_plugin.py").write_text(
        "from business_rules_app.products import ProductActions\n"
        "from crmrules.business_rules import plugin\n"
        "rules_plugin = plugin(ProductActions)\n",
        encoding="utf-8",
    )
    dist = plugins_site / "products_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: products-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[crmrules]\nproducts = products_plugin:rules_plugin\n")
    env["PYTHONPATH"] = f"{plugins_site}:{tests}"
    validate = subprocess.run(
        [sys.executable, "-m", "crmrules", "validate", str(output)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert validate.returncode == 0, validate.stderr
    assert "2 rules" in validate.stdout
    assert output.read_text(encoding="utf-8") == to_yaml(
        import_rules(RULES, ProductVariables, ProductActions)
    )
    loaded = load_regulation(output, **_plugin_tables())
    assert [rule.id for rule in loaded.rules] == ["rule-1", "rule-2"]


def _plugin_tables() -> dict[str, Any]:
    from crmrules.plugins import PluginManager

    manager = PluginManager([plugin(ProductActions)], entry_points=False)
    return {"actions": manager.action_models(), "operators": manager.operators()}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("[", "rules.json:1:2: invalid JSON: Expecting value"),
        (
            json.dumps(
                [
                    {
                        "conditions": {
                            "all": [{"name": "colour", "operator": "equal_to", "value": 1}]
                        },
                        "actions": [],
                    }
                ]
            ),
            "rules.json: rule 1.conditions.all[0]: variable 'colour' is not defined"
            " in class ProductVariables",
        ),
    ],
)
def test_the_import_rules_command_names_the_problem(
    tmp_path: Path, rules: str, message: str
) -> None:
    path = tmp_path / "rules.json"
    path.write_text(rules, encoding="utf-8")
    env = {"PYTHONPATH": str(Path(__file__).parent), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "crmrules",
            "import-rules",
            str(path),
            "--variables",
            "business_rules_app.products:ProductVariables",
            "--actions",
            "business_rules_app.products:ProductActions",
            "-o",
            str(tmp_path / "out.yaml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(message.replace("rules.json", str(path))), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.yaml").exists()
