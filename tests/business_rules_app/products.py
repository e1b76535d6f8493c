"""The business-rules package's README example, as an application would write it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from business_rules.actions import BaseActions, rule_action
from business_rules.fields import FIELD_NUMERIC
from business_rules.variables import (
    BaseVariables,
    numeric_rule_variable,
    select_rule_variable,
    string_rule_variable,
)

TOP_HOLIDAY_ITEMS = ["Eggnog", "Cookies", "Beef Jerkey"]


@dataclass
class Order:
    expiration_date: datetime.date


@dataclass
class Product:
    id: str
    current_inventory: int
    price: float
    orders: list[Order]
    related_products: list[str] = field(default_factory=list)
    month: str = "December"
    ordered: list[Any] = field(default_factory=list)
    today: datetime.date = datetime.date(2026, 12, 1)


class ProductVariables(BaseVariables):  # type: ignore[misc]
    def __init__(self, product: Product) -> None:
        self.product = product

    @numeric_rule_variable  # type: ignore[misc]
    def current_inventory(self) -> int:
        return self.product.current_inventory

    @numeric_rule_variable(label="Days until expiration")  # type: ignore[misc]
    def expiration_days(self) -> int:
        last_order = self.product.orders[-1]
        return (last_order.expiration_date - self.product.today).days

    @string_rule_variable()  # type: ignore[misc]
    def current_month(self) -> str:
        return self.product.month

    @select_rule_variable(options=TOP_HOLIDAY_ITEMS)  # type: ignore[misc]
    def goes_well_with(self) -> list[str]:
        return self.product.related_products


class ProductActions(BaseActions):  # type: ignore[misc]
    def __init__(self, product: Product) -> None:
        self.product = product

    @rule_action(params={"sale_percentage": FIELD_NUMERIC})  # type: ignore[misc]
    def put_on_sale(self, sale_percentage: float) -> float:
        self.product.price = (1.0 - sale_percentage) * self.product.price
        return self.product.price

    @rule_action(params={"number_to_order": FIELD_NUMERIC})  # type: ignore[misc]
    def order_more(self, number_to_order: int) -> int:
        self.product.ordered.append(number_to_order)
        return number_to_order


#: The README's two rules, with the stray brackets of its JSON corrected.
RULES: list[dict[str, Any]] = [
    # expiration_days < 5 AND current_inventory > 20
    {
        "conditions": {
            "all": [
                {"name": "expiration_days", "operator": "less_than", "value": 5},
                {"name": "current_inventory", "operator": "greater_than", "value": 20},
            ]
        },
        "actions": [{"name": "put_on_sale", "params": {"sale_percentage": 0.25}}],
    },
    # current_inventory < 5 OR (current_month = "December" AND current_inventory < 20)
    {
        "conditions": {
            "any": [
                {"name": "current_inventory", "operator": "less_than", "value": 5},
                {
                    "all": [
                        {"name": "current_month", "operator": "equal_to", "value": "December"},
                        {"name": "current_inventory", "operator": "less_than", "value": 20},
                    ]
                },
            ]
        },
        "actions": [{"name": "order_more", "params": {"number_to_order": 40}}],
    },
]
