"""The drop-in ``run_all`` against the business-rules package's, on the same objects.

Run: python benchmarks/bench_business_rules.py [--objects 100000] [--rules 50] [--rounds 5]

A seeded workload shaped like the peer workload of the speed work: products
with eight variables (int and float numbers, text, a boolean, a select and a
select-multiple), 50 rules of 6 to 10 conditions each in nested ``all``/``any``
(about 400 leaves, every type's operators) and three actions that record
what they are given. First the
actions each implementation calls on a sample are checked equal; then the
objects are split into rounds, and each round runs the package, the
drop-in, and the drop-in with ``reuse_values=True`` over the same objects,
in an order that rotates from round to round, checking again that all three
called the same actions. Prints objects per second, the median and spread
of the ratios to the package. The workload is built first and frozen out of
the garbage collector's scans (``gc.freeze``), as a loop over a database
query would not keep 100,000 objects alive.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import business_rules.engine as package
from business_rules.actions import BaseActions, rule_action
from business_rules.fields import FIELD_NUMERIC, FIELD_TEXT
from business_rules.variables import (
    BaseVariables,
    boolean_rule_variable,
    numeric_rule_variable,
    select_multiple_rule_variable,
    select_rule_variable,
    string_rule_variable,
)

from crmrules import business_rules as dropin

CATEGORIES = ["Bakery", "Dairy", "Drinks", "Frozen", "Produce", "Снеки", "Кондитерские"]
TAGS = ["new", "organic", "local", "sale", "bio", "premium", "Сезон"]
COLOURS = ["red", "green", "blue", "Жёлтый", "black"]


class Product:
    __slots__ = ("category", "colours", "days", "inventory", "name", "on_sale", "price", "tags")

    def __init__(self, rng: random.Random, index: int) -> None:
        self.inventory = rng.randrange(0, 200)
        self.price = round(rng.uniform(0.5, 500.0), 2)
        self.days = rng.randrange(-5, 60)
        self.category = rng.choice(CATEGORIES)
        self.name = f"{rng.choice(['Milk', 'Bread', 'Tea', 'Сыр'])} {index % 1000}"
        self.on_sale = rng.random() < 0.3
        self.tags = rng.sample(TAGS, rng.randrange(0, 4))
        self.colours = rng.sample(COLOURS, rng.randrange(1, 3))


class ProductVariables(BaseVariables):  # type: ignore[misc]
    def __init__(self, product: Product) -> None:
        self.product = product

    @numeric_rule_variable  # type: ignore[misc]
    def current_inventory(self) -> int:
        return self.product.inventory

    @numeric_rule_variable  # type: ignore[misc]
    def price(self) -> float:
        return self.product.price

    @numeric_rule_variable(label="Days until expiration")  # type: ignore[misc]
    def expiration_days(self) -> int:
        return self.product.days

    @string_rule_variable()  # type: ignore[misc]
    def category(self) -> str:
        return self.product.category

    @string_rule_variable()  # type: ignore[misc]
    def name(self) -> str:
        return self.product.name

    @boolean_rule_variable()  # type: ignore[misc]
    def on_sale(self) -> bool:
        return self.product.on_sale

    @select_rule_variable(options=COLOURS)  # type: ignore[misc]
    def colours(self) -> list[str]:
        return self.product.colours

    @select_multiple_rule_variable(options=TAGS)  # type: ignore[misc]
    def tags(self) -> list[str]:
        return self.product.tags


class ProductActions(BaseActions):  # type: ignore[misc]
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    @rule_action(params={"sale_percentage": FIELD_NUMERIC})  # type: ignore[misc]
    def put_on_sale(self, sale_percentage: float) -> None:
        self.log.append(("sale", sale_percentage))

    @rule_action(params={"number_to_order": FIELD_NUMERIC})  # type: ignore[misc]
    def order_more(self, number_to_order: int) -> None:
        self.log.append(("order", number_to_order))

    @rule_action(params={"tag": FIELD_TEXT})  # type: ignore[misc]
    def add_tag(self, tag: str) -> None:
        self.log.append(("tag", tag))


def leaf(rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(8)
    if kind == 0:
        op = rng.choice(["less_than", "greater_than", "equal_to", "greater_than_or_equal_to"])
        return {"name": "current_inventory", "operator": op, "value": rng.randrange(0, 200)}
    if kind == 1:
        op = rng.choice(["less_than", "greater_than", "less_than_or_equal_to"])
        return {"name": "price", "operator": op, "value": round(rng.uniform(1, 400), 2)}
    if kind == 2:
        op = rng.choice(["less_than", "greater_than"])
        return {"name": "expiration_days", "operator": op, "value": rng.randrange(0, 40)}
    if kind == 3:
        op = rng.choice(["equal_to", "equal_to_case_insensitive", "starts_with"])
        return {"name": "category", "operator": op, "value": rng.choice(CATEGORIES)[:4]}
    if kind == 4:
        op = rng.choice(["contains", "ends_with", "matches_regex", "non_empty"])
        value = {"matches_regex": r"^(Milk|Tea) \d+5$"}.get(op, str(rng.randrange(10)))
        return {"name": "name", "operator": op, "value": value}
    if kind == 5:
        return {"name": "on_sale", "operator": rng.choice(["is_true", "is_false"]), "value": None}
    if kind == 6:
        op = rng.choice(["contains", "does_not_contain"])
        return {"name": "colours", "operator": op, "value": rng.choice(COLOURS).upper()}
    op = rng.choice(["contains_all", "shares_at_least_one_element_with", "shares_no_elements_with"])
    return {"name": "tags", "operator": op, "value": rng.sample(TAGS, rng.randrange(1, 3))}


def tree(rng: random.Random, size: int, depth: int = 0) -> dict[str, Any]:
    """A nested all/any of ``size`` leaves."""
    if size == 1:
        return leaf(rng)
    parts = []
    while size > 0:
        part = 1 if depth >= 2 else min(size, rng.choice([1, 1, 2, 3]))
        parts.append(tree(rng, part, depth + 1))
        size -= part
    key = "all" if depth % 2 == 0 else "any"
    return {key: parts}


def rule(rng: random.Random) -> dict[str, Any]:
    """A rule of 6 to 10 leaves in nested all/any (the peer workload: ~410 leaves in 50 rules)."""
    conditions = tree(rng, rng.randrange(6, 11))
    action = rng.choice(
        [
            {"name": "put_on_sale", "params": {"sale_percentage": 0.25}},
            {"name": "order_more", "params": {"number_to_order": 40}},
            {"name": "add_tag", "params": {"tag": "hot"}},
        ]
    )
    return {"conditions": conditions, "actions": [action]}


Runner = Callable[[list[dict[str, Any]], Any, Any], Any]


def run(implementation: Runner, rules: list[dict[str, Any]], products: list[Product]) -> list[Any]:
    log: list[Any] = []
    actions = ProductActions(log)
    for product in products:
        implementation(rules, ProductVariables(product), actions)
        log.append(None)  # one mark per object, so the logs line up
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    rules = [rule(rng) for _ in range(args.rules)]
    products = [Product(rng, i) for i in range(args.objects)]
    implementations: dict[str, Runner] = {
        "business_rules.engine.run_all": package.run_all,
        "crmrules.business_rules.run_all": dropin.run_all,
        "  ... reuse_values=True": lambda r, v, a: dropin.run_all(r, v, a, reuse_values=True),
    }
    # the workload lives for the whole run: keep the collector from rescanning it every round
    gc.collect()
    gc.freeze()
    sample = products[: min(2_000, len(products))]
    logs = {name: run(impl, rules, sample) for name, impl in implementations.items()}
    if len({repr(log) for log in logs.values()}) != 1:
        print("the implementations called different actions on the sample", file=sys.stderr)
        return 1
    fired = sum(entry is not None for entry in logs["business_rules.engine.run_all"])
    leaves = sum(str(r["conditions"]).count("'operator'") for r in rules)
    print(f"objects: {len(products)}, rules: {len(rules)} ({leaves} leaves), rounds: {args.rounds}")
    print(f"actions called on the first {len(sample)} objects: {fired} (equal in all three)")
    size = -(-len(products) // args.rounds)
    seconds: dict[str, list[float]] = {name: [] for name in implementations}
    names = list(implementations)
    for index in range(args.rounds):
        chunk = products[index * size : (index + 1) * size]
        order = names[index % len(names) :] + names[: index % len(names)]
        round_logs = {}
        for name in order:
            started = time.perf_counter()
            round_logs[name] = run(implementations[name], rules, chunk)
            seconds[name].append((time.perf_counter() - started) / len(chunk))
        if len({repr(log) for log in round_logs.values()}) != 1:
            print(f"round {index + 1}: the implementations differ", file=sys.stderr)
            return 1
    baseline = seconds[names[0]]
    for name in names:
        per_object = statistics.median(seconds[name])
        line = f"{name:34} {1 / per_object:>10,.0f} objects/s ({per_object * 1e6:7.1f} µs each)"
        if name != names[0]:
            ratios = [base / own for base, own in zip(baseline, seconds[name], strict=True)]
            line += (
                f"  ratio {statistics.median(ratios):5.1f}x"
                f" (rounds {min(ratios):.1f}x-{max(ratios):.1f}x)"
            )
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
