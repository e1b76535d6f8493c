"""Export crmrules rules to business-rules JSON, saying why each rule that cannot go, doesn't.

A rule is exportable when it runs on an event (business-rules has no time
triggers), every leaf of its condition has a business-rules equivalent with
the same answer, and every action is a business-rules action (a plugin
action generated from the application's class, or one the mapping names).
Numeric bounds are moved by the package's epsilon so that ``gt: 20`` stays
"more than 20" (``greater_than 19.999999``). Numbers are exported as
``Decimal`` so that nothing is lost; write JSON with ``default=str`` or
read it back with ``parse_float=Decimal``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from crmrules.business_rules.plugin import method_name
from crmrules.business_rules.semantics import EPSILON
from crmrules.rules.conditions import All, AnyOf, Const, FieldRef, Leaf, Node, Not
from crmrules.rules.fields import NUMBER_TYPES, FieldType
from crmrules.rules.regulation import Regulation, Rule


class NotExportable(Exception):
    """Why one rule has no business-rules equivalent."""


@dataclass(frozen=True)
class Skipped:
    """A rule left out of the export, with the reason."""

    rule: str
    reason: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.reason}"


class Exported(list[dict[str, Any]]):
    """The exported rules (a plain list), with ``skipped``: the rules that could not go."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: list[Skipped] = []


def _shift(value: Decimal, by: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 80
        return value + by


def _numeric(name: str, leaf: Leaf) -> dict[str, Any]:
    op, value, negated = leaf.op, leaf.value, leaf.negated
    if op == "in":
        if negated:
            raise NotExportable(f"{leaf.describe()}: business-rules has no 'not one of'")
        return {"any": [_numeric(name, Leaf(leaf.field, "eq", v)) for v in sorted(value)]}
    if op == "between":
        low, high = (Decimal(v) for v in value)
        if negated:
            return {"any": [_num(name, "lt", low), _num(name, "gt", high)]}
        return {"all": [_num(name, "gte", low), _num(name, "lte", high)]}
    if op not in ("eq", "lt", "lte", "gt", "gte"):
        raise NotExportable(f"{leaf.describe()}: no business-rules operator for {op}")
    value = Decimal(value)
    if op == "eq":
        if negated:
            return {"any": [_num(name, "lt", value), _num(name, "gt", value)]}
        return {"all": [_num(name, "gte", value), _num(name, "lte", value)]}
    if negated:
        op = {"lt": "gte", "lte": "gt", "gt": "lte", "gte": "lt"}[op]
    return _num(name, op, value)


def _num(name: str, op: str, value: Decimal) -> dict[str, Any]:
    """``value op bound`` exactly, in the package's epsilon-tolerant operators."""
    operator, shift = {
        "gt": ("greater_than", -EPSILON),  # v - b > eps  <=>  v > b + eps
        "gte": ("greater_than_or_equal_to", EPSILON),  # v - b >= -eps
        "lt": ("less_than", EPSILON),  # b - v > eps
        "lte": ("less_than_or_equal_to", -EPSILON),  # b - v >= -eps
    }[op]
    return {"name": name, "operator": operator, "value": _shift(value, shift)}


_STRING_OPS = {"eq": "equal_to", "contains": "contains", "starts_with": "starts_with"}
_STRING_OPS["ends_with"] = "ends_with"


def _leaf(leaf: Leaf, name: str) -> dict[str, Any]:
    if leaf.territory is not None:
        raise NotExportable(f"{leaf.describe()}: business-rules has no territories")
    if isinstance(leaf.value, FieldRef):
        raise NotExportable(f"{leaf.describe()}: business-rules compares with values only")
    kind, op = leaf.field.type, leaf.op
    if leaf.plugin is not None:
        if not op.startswith("br_") or leaf.negated:
            raise NotExportable(f"{leaf.describe()}: an operator of a plugin")
        value = list(leaf.value) if isinstance(leaf.value, tuple) else leaf.value
        return {"name": name, "operator": op[3:], "value": value}
    if kind in NUMBER_TYPES:
        return _numeric(name, leaf)
    if kind is FieldType.BOOLEAN and op == "eq":
        return {"name": name, "operator": "is_true" if leaf.value != leaf.negated else "is_false",
                "value": None}  # fmt: skip
    if kind is FieldType.STRING and not leaf.ignore_case:
        if op == "is_empty" and leaf.negated:
            return {"name": name, "operator": "non_empty", "value": None}
        if op == "in" and not leaf.negated:
            return {"any": [{"name": name, "operator": "equal_to", "value": v}
                            for v in sorted(leaf.value)]}  # fmt: skip
        if op in _STRING_OPS and not leaf.negated:
            return {"name": name, "operator": _STRING_OPS[op], "value": leaf.value}
    raise NotExportable(f"{leaf.describe()}: no business-rules operator answers the same")


def _condition(node: Node, name: Callable[[str], str]) -> dict[str, Any]:
    if isinstance(node, Leaf):
        return _leaf(node, name(node.field.path))
    if isinstance(node, Const):
        raise NotExportable(f"the condition is always {'true' if node.value else 'false'}")
    if isinstance(node, Not):
        raise NotExportable("'not' has no business-rules equivalent")
    key = "all" if isinstance(node, All) else "any"
    assert isinstance(node, All | AnyOf)
    return {key: [_condition(item, name) for item in node.items]}


def _actions(rule: Rule, names: Mapping[str, str], builtin: frozenset[str]) -> list[Any]:
    exported = []
    for action in rule.actions:
        if action.name in builtin and action.name not in names:
            raise NotExportable(f"the crmrules action {action.name} has no business-rules method")
        params = action.params.model_dump(exclude_unset=True)
        exported.append(
            {"name": names.get(action.name, method_name(action.name)), "params": params}
        )
    return exported


def export_rules(regulation: Regulation, mapping: Mapping[str, str] | None = None) -> Exported:
    """The regulation's rules as business-rules JSON; ``.skipped`` says which could not go.

    ``mapping`` maps variable names to field paths (as for import; a custom
    field ``client.x`` is the variable ``x`` otherwise) and business-rules
    action names to crmrules action names.
    """
    from crmrules.rules.schema import BUILTIN_ACTIONS

    given = dict(mapping or {})
    variable_of = {path: name for name, path in given.items() if "." in path}
    action_of = {crm: name for name, crm in given.items() if "." not in crm}

    def name(path: str) -> str:
        return variable_of.get(path) or path.split(".", 1)[1]

    exported = Exported()
    for rule in sorted(regulation.rules, key=lambda r: (-r.priority, r.order)):
        try:
            if rule.trigger.kind != "event":
                raise NotExportable(f"time trigger ({rule.trigger.describe()})")
            if not rule.enabled:
                raise NotExportable("the rule is disabled")
            conditions = _condition(rule.condition.tree, name)
            if "all" not in conditions and "any" not in conditions:
                conditions = {"all": [conditions]}
            actions = _actions(rule, action_of, frozenset(BUILTIN_ACTIONS))
        except NotExportable as reason:
            exported.skipped.append(Skipped(rule.id, str(reason)))
            continue
        exported.append({"name": rule.id, "conditions": conditions, "actions": actions})
    return exported


__all__ = ["Exported", "NotExportable", "Skipped", "export_rules"]
