"""The crmrules plugin behind imported business-rules: its operators and the app's actions.

Imported rules keep the package's semantics. Where no crmrules operator
answers the same (``str.lower`` case handling, Python ``re`` patterns,
select membership), the regulation uses a ``br_*`` operator registered
here. Each ``@rule_action`` of the application's actions class becomes a
plugin action whose parameters are checked when the regulation loads and
which calls the application's method when the rule fires.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model

from crmrules.actions import ActionContext
from crmrules.business_rules.semantics import (
    _contains_all,
    _select_contains,
    _shares_exactly_one,
    _shares_one,
)
from crmrules.plugins import ActionPlugin, Inline, OperatorPlugin, hookimpl
from crmrules.rules.fields import FieldType

_STRING = frozenset({FieldType.STRING})
_SET = frozenset({FieldType.SET})


def _text(raw: Any) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ValueError("takes text")
    return raw


def _pattern(raw: Any) -> str:
    text = _text(raw)
    try:
        re.compile(text)
    except re.error as error:
        raise ValueError(f"invalid pattern: {error}") from None
    return text


def _scalar(raw: Any) -> Any:
    if isinstance(raw, dict | list):
        raise ValueError("takes one value")
    return raw


def _items(raw: Any) -> tuple[Any, ...]:
    if not isinstance(raw, list):
        raise ValueError("takes a list of values")
    return tuple(raw)


def _search(value: Any, pattern: Any) -> bool:
    return re.search(pattern, value) is not None


# --- the same operators as compiled rule sets write them inline --------------------------------
# A set field's values are text (the field type guarantees it), so the package's select
# equality (str.lower for two strings) is membership in the lower-cased set.


def _lowered(values: Any) -> set[str]:
    return {item.lower() for item in values if isinstance(item, str)}


def _lowered_operands(others: Any) -> frozenset[str] | None:
    if not all(isinstance(other, str) for other in others):
        return None
    return frozenset(other.lower() for other in others)


def _set_inline(expression: str, *, unique: bool = False) -> Callable[[Any], Inline | None]:
    def inline(others: Any) -> Inline | None:
        lowered = _lowered_operands(others)
        if lowered is None or (unique and len(lowered) != len(others)):
            return None  # a value that is not text, or the same value twice: the test decides
        return Inline(expression, lowered, _lowered)

    return inline


def _member_inline(expression: str) -> Callable[[Any], Inline | None]:
    def inline(other: Any) -> Inline | None:
        return Inline(expression, other.lower(), _lowered) if isinstance(other, str) else None

    return inline


#: The operators imported rules may need, named after the package's with a ``br_`` prefix.
OPERATORS: tuple[OperatorPlugin, ...] = (
    OperatorPlugin(
        "br_equal_to_case_insensitive",
        _STRING,
        lambda value, other: bool(value.lower() == other.lower()),
        _text,
        {"type": "string", "description": "equal after str.lower() (business-rules)"},
        lambda other: Inline("{value} == {operand}", other.lower(), str.lower),
    ),
    OperatorPlugin(
        "br_matches_regex",
        _STRING,
        _search,
        _pattern,
        {"type": "string", "description": "Python re.search (business-rules matches_regex)"},
        lambda pattern: Inline("{operand}.search({value}) is not None", re.compile(pattern)),
    ),
    OperatorPlugin(
        "br_contains",
        _SET,
        lambda value, other: _select_contains(value, other),
        _scalar,
        {"description": "an element equals the value, case-insensitively (business-rules)"},
        _member_inline("{operand} in {value}"),
    ),
    OperatorPlugin(
        "br_does_not_contain",
        _SET,
        lambda value, other: not _select_contains(value, other),
        _scalar,
        {"description": "no element equals the value, case-insensitively (business-rules)"},
        _member_inline("{operand} not in {value}"),
    ),
    OperatorPlugin(
        "br_contains_all",
        _SET,
        lambda value, others: _contains_all(value, others),
        _items,
        {"type": "array"},
        _set_inline("{operand} <= {value}"),
    ),
    OperatorPlugin(
        "br_is_contained_by",
        _SET,
        lambda value, others: _contains_all(others, value),
        _items,
        {"type": "array"},
        _set_inline("{value} <= {operand}"),
    ),
    OperatorPlugin(
        "br_shares_at_least_one_element_with",
        _SET,
        lambda value, others: _shares_one(value, others),
        _items,
        {"type": "array"},
        _set_inline("not {value}.isdisjoint({operand})"),
    ),
    OperatorPlugin(
        "br_shares_exactly_one_element_with",
        _SET,
        lambda value, others: _shares_exactly_one(value, others),
        _items,
        {"type": "array"},
        _set_inline("len({value} & {operand}) == 1", unique=True),
    ),
    OperatorPlugin(
        "br_shares_no_elements_with",
        _SET,
        lambda value, others: not _shares_one(value, others),
        _items,
        {"type": "array"},
        _set_inline("{value}.isdisjoint({operand})"),
    ),
)


# --- the application's actions --------------------------------------------------------------


@dataclass(frozen=True)
class ActionInfo:
    """One ``@rule_action`` method: its name and the package's parameter list."""

    name: str
    params: tuple[Mapping[str, Any], ...] | None


def action_name(method: str) -> str:
    """The crmrules action name of an application's method: its own, unless crmrules has it.

    An application's ``notify`` would clash with the built-in ``notify``; it is ``br_notify``.
    """
    from crmrules.rules.schema import BUILTIN_ACTIONS

    return f"br_{method}" if method in BUILTIN_ACTIONS else method


def method_name(action: str) -> str:
    """The application's method behind a crmrules action name (``action_name`` reversed)."""
    from crmrules.rules.schema import BUILTIN_ACTIONS

    if action.startswith("br_") and action[3:] in BUILTIN_ACTIONS:
        return action[3:]
    return action


def actions_of(actions: type) -> dict[str, ActionInfo]:
    """The rule actions a ``BaseActions`` class declares, by method name."""
    found: dict[str, ActionInfo] = {}
    for name, member in inspect.getmembers(actions):
        if getattr(member, "is_rule_action", False):
            params = getattr(member, "params", None)
            found[name] = ActionInfo(name, None if params is None else tuple(params))
    return found


_PARAM_TYPES: dict[str, Any] = {
    "numeric": int | float,
    "text": str,
    "none": Any,
    "select_multiple": list[Any],
}


def _param_type(param: Mapping[str, Any]) -> Any:
    kind = param.get("fieldType")
    if kind == "select":
        names = [o.get("name") for o in param.get("options") or [] if isinstance(o, Mapping)]
        return Literal[tuple(names)] if names else Any
    return _PARAM_TYPES.get(str(kind), Any)


def params_model(info: ActionInfo) -> type[BaseModel]:
    """A model checking an action's params when the regulation loads; unknown names refused."""
    if info.params is None:
        return create_model(f"{info.name}_params", __config__=ConfigDict(extra="allow"))
    fields: dict[str, Any] = {
        str(param["name"]): (_param_type(param) | None, None) for param in info.params
    }
    return create_model(f"{info.name}_params", __config__=ConfigDict(extra="forbid"), **fields)


ActionsFactory = Callable[[ActionContext], Any]


def _default_factory(actions: type) -> ActionsFactory:
    def make(context: ActionContext) -> Any:
        client, deal = context.subjects()
        return actions(deal if client is None else client)

    return make


def _handler(name: str, factory: ActionsFactory) -> Any:
    def handle(params: BaseModel, context: ActionContext) -> None:
        given = {key: getattr(params, key) for key in params.model_fields_set}
        given.update(params.model_extra or {})
        returned = getattr(factory(context), name)(**given)
        context.effect(
            "business_rules_action",
            f"{name}({', '.join(f'{k}={v!r}' for k, v in given.items())})",
            action=name,
            params={k: repr(v) for k, v in given.items()},
            returned=repr(returned),
        )

    return handle


def action_plugins(
    actions: type,
    factory: ActionsFactory | None = None,
    names: Mapping[str, str] | None = None,
) -> list[ActionPlugin]:
    """One plugin action per ``@rule_action`` of ``actions`` (``names`` renames some)."""
    make = factory or _default_factory(actions)
    rename = names or {}
    return [
        ActionPlugin(rename.get(name, action_name(name)), params_model(info), _handler(name, make))
        for name, info in actions_of(actions).items()
    ]


class BusinessRulesPlugin:
    """Register it with an Engine (or through an entry point) to run imported rules.

    ``factory(context)`` builds the application's actions object for the
    event's client or deal; by default ``ActionsClass(client)``.
    """

    def __init__(
        self,
        actions: type | None = None,
        factory: ActionsFactory | None = None,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self._actions = [] if actions is None else action_plugins(actions, factory, names)

    @hookimpl
    def register_operators(self, register: Callable[[OperatorPlugin], None]) -> None:
        for operator in OPERATORS:
            register(operator)

    @hookimpl
    def register_actions(self, register: Callable[[ActionPlugin], None]) -> None:
        for action in self._actions:
            register(action)

    def action_names(self) -> Iterable[str]:
        return [action.name for action in self._actions]


def plugin(
    actions: type | None = None,
    factory: ActionsFactory | None = None,
    names: Mapping[str, str] | None = None,
) -> BusinessRulesPlugin:
    """The plugin for rules imported from business-rules, with ``actions``' methods."""
    return BusinessRulesPlugin(actions, factory, names)


__all__ = [
    "OPERATORS",
    "ActionInfo",
    "BusinessRulesPlugin",
    "action_name",
    "action_plugins",
    "actions_of",
    "method_name",
    "params_model",
    "plugin",
]
