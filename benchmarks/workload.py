"""The research workload of the speed work: synthetic clients and nested all/any rules.

Seeded and shared by the benchmarks that compare evaluators on it
(``peers.py``; the drop-in ``run_all`` benchmark has the same shape: 8
variables of every business-rules type, 50 rules of 6 to 10 leaves in
nested ``all``/``any``, about 410 leaves, every type's operators). Rules are
written in the business-rules JSON format; ``crmrules.business_rules.
import_rules`` turns them into a crmrules regulation with the same meaning.
Each rule's one action records the rule's index, so every evaluator's
matches are lists of rule indices that can be compared.
"""

from __future__ import annotations

import random
from typing import Any

from business_rules.actions import BaseActions, rule_action
from business_rules.fields import FIELD_NUMERIC
from business_rules.variables import (
    BaseVariables,
    boolean_rule_variable,
    numeric_rule_variable,
    select_multiple_rule_variable,
    select_rule_variable,
    string_rule_variable,
)

SECTORS = ["Retail", "Banking", "Logistics", "Pharma", "Telecom", "Ритейл", "Стройка"]
LABELS = ["new", "key", "partner", "tender", "vip", "export", "Сезон"]
CHANNELS = ["email", "phone", "telegram", "Визит", "whatsapp"]


class SyntheticClient:
    """One client as an application would hold it: plain attributes."""

    __slots__ = (
        "channels",
        "company",
        "days_to_renewal",
        "id",
        "key_account",
        "labels",
        "open_deals",
        "revenue",
        "sector",
    )

    def __init__(self, rng: random.Random, index: int) -> None:
        self.id = f"c{index}"
        self.open_deals = rng.randrange(0, 200)
        self.revenue = round(rng.uniform(0.5, 500.0), 2)
        self.days_to_renewal = rng.randrange(-5, 60)
        self.sector = rng.choice(SECTORS)
        self.company = f"{rng.choice(['ООО Альфа', 'Beta', 'Gamma', 'АО Вектор'])} {index % 1000}"
        self.key_account = rng.random() < 0.3
        self.labels = rng.sample(LABELS, rng.randrange(0, 4))
        self.channels = rng.sample(CHANNELS, rng.randrange(1, 3))


class ClientVariables(BaseVariables):  # type: ignore[misc]
    """The business-rules view of a client."""

    def __init__(self, client: SyntheticClient) -> None:
        self.client = client

    @numeric_rule_variable  # type: ignore[untyped-decorator]
    def open_deals(self) -> int:
        return self.client.open_deals

    @numeric_rule_variable  # type: ignore[untyped-decorator]
    def revenue(self) -> float:
        return self.client.revenue

    @numeric_rule_variable(label="Days to contract renewal")  # type: ignore[untyped-decorator]
    def days_to_renewal(self) -> int:
        return self.client.days_to_renewal

    @string_rule_variable()  # type: ignore[untyped-decorator]
    def sector(self) -> str:
        return self.client.sector

    @string_rule_variable()  # type: ignore[untyped-decorator]
    def company(self) -> str:
        return self.client.company

    @boolean_rule_variable()  # type: ignore[untyped-decorator]
    def key_account(self) -> bool:
        return self.client.key_account

    @select_rule_variable(options=CHANNELS)  # type: ignore[untyped-decorator]
    def channels(self) -> list[str]:
        return self.client.channels

    @select_multiple_rule_variable(options=LABELS)  # type: ignore[untyped-decorator]
    def labels(self) -> list[str]:
        return self.client.labels


class ClientActions(BaseActions):  # type: ignore[misc]
    """One action: note which rule matched."""

    def __init__(self, log: list[int]) -> None:
        self.log = log

    @rule_action(params={"rule": FIELD_NUMERIC})  # type: ignore[untyped-decorator]
    def matched(self, rule: Any) -> None:
        self.log.append(int(rule))


def leaf(rng: random.Random) -> dict[str, Any]:
    """One condition on one variable, with an operator of its type."""
    kind = rng.randrange(8)
    if kind == 0:
        op = rng.choice(["less_than", "greater_than", "equal_to", "greater_than_or_equal_to"])
        return {"name": "open_deals", "operator": op, "value": rng.randrange(0, 200)}
    if kind == 1:
        op = rng.choice(["less_than", "greater_than", "less_than_or_equal_to"])
        return {"name": "revenue", "operator": op, "value": round(rng.uniform(1, 400), 2)}
    if kind == 2:
        op = rng.choice(["less_than", "greater_than"])
        return {"name": "days_to_renewal", "operator": op, "value": rng.randrange(0, 40)}
    if kind == 3:
        op = rng.choice(["equal_to", "equal_to_case_insensitive", "starts_with"])
        return {"name": "sector", "operator": op, "value": rng.choice(SECTORS)[:4]}
    if kind == 4:
        op = rng.choice(["contains", "ends_with", "matches_regex", "non_empty"])
        value = {"matches_regex": r"^(Beta|Gamma) \d+5$"}.get(op, str(rng.randrange(10)))
        return {"name": "company", "operator": op, "value": value}
    if kind == 5:
        op = rng.choice(["is_true", "is_false"])
        return {"name": "key_account", "operator": op, "value": None}
    if kind == 6:
        op = rng.choice(["contains", "does_not_contain"])
        return {"name": "channels", "operator": op, "value": rng.choice(CHANNELS).upper()}
    op = rng.choice(["contains_all", "shares_at_least_one_element_with", "shares_no_elements_with"])
    return {"name": "labels", "operator": op, "value": rng.sample(LABELS, rng.randrange(1, 3))}


def tree(rng: random.Random, size: int, depth: int = 0) -> dict[str, Any]:
    """A nested all/any of ``size`` leaves."""
    if size == 1:
        return leaf(rng)
    parts = []
    while size > 0:
        part = 1 if depth >= 2 else min(size, rng.choice([1, 1, 2, 3]))
        parts.append(tree(rng, part, depth + 1))
        size -= part
    return {"all" if depth % 2 == 0 else "any": parts}


def rules(rng: random.Random, count: int = 50) -> list[dict[str, Any]]:
    """``count`` rules of 6 to 10 leaves (50 rules: about 410 leaves)."""
    return [
        {
            "conditions": tree(rng, rng.randrange(6, 11)),
            "actions": [{"name": "matched", "params": {"rule": index}}],
        }
        for index in range(count)
    ]


def clients(rng: random.Random, count: int) -> list[SyntheticClient]:
    return [SyntheticClient(rng, index) for index in range(count)]


def leaves(rule_list: list[dict[str, Any]]) -> int:
    return sum(str(rule["conditions"]).count("'operator'") for rule in rule_list)
