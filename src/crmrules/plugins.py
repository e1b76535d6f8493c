"""Plugins: actions, condition operators, notifiers, stores, and lifecycle hooks.

crmrules uses pluggy. A plugin is any object (often a module) with functions
marked ``@hookimpl`` named like the specs below. Each Engine has its own
PluginManager, never a global one, because crmrules lives inside other
applications that may run several engines with different plugins.

Registration hooks take a ``register`` callback (the style of simonw/llm),
so a plugin adds as many things as it likes in one function::

    from crmrules.plugins import ActionPlugin, hookimpl

    @hookimpl
    def register_actions(register):
        register(ActionPlugin("create_lead", CreateLeadParams, create_lead))

External plugins are found through the ``crmrules`` entry point group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pluggy
from pydantic import BaseModel

from crmrules.rules.fields import FieldType
from crmrules.rules.schema import BUILTIN_ACTIONS

if TYPE_CHECKING:
    from crmrules.actions import ActionContext
    from crmrules.delivery import Notifier
    from crmrules.model import Event
    from crmrules.result import Effect, Result
    from crmrules.store import Store

PROJECT = "crmrules"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class ActionHandler(Protocol):
    def __call__(self, params: Any, context: ActionContext) -> None: ...


@dataclass(frozen=True)
class ActionPlugin:
    """An action admins can write in ``then:``; ``params`` validates its mapping."""

    name: str
    params: type[BaseModel]
    handler: ActionHandler


@dataclass(frozen=True)
class OperatorPlugin:
    """A condition operator: ``{field: client.inn, valid_inn: true}``.

    ``operand`` turns the admin's value into what ``test`` gets (raise
    ValueError with an admin-readable message to refuse it at load time);
    ``test(value, operand)`` sees a present value and returns whether the
    leaf holds. Missing values are false, as for every positive operator.
    """

    name: str
    types: frozenset[FieldType]
    test: Callable[[Any, Any], bool]
    operand: Callable[[Any], Any] = lambda raw: raw
    schema: Mapping[str, Any] | None = None
    #: ``inline(operand)``: how a compiled rule set may write ``test`` inline, or None to call it
    inline: Callable[[Any], Inline | None] | None = None


@dataclass(frozen=True)
class Inline:
    """An operator's test as a Python expression a compiled rule set writes out.

    ``expression`` uses ``{value}`` (the field's present value, or its
    ``view``) and ``{operand}`` (bound to ``operand``); it must answer as the
    operator's ``test``. ``view`` (e.g. the value lower-cased) is computed
    once per field per evaluation and shared by every leaf asking for it.
    """

    expression: str
    operand: Any = None
    view: Callable[[Any], Any] | None = None


class Hookspecs:
    """The hooks a plugin may implement."""

    @hookspec
    def register_actions(self, register: Callable[[ActionPlugin], None]) -> None:
        """Add actions admins can use in rules."""

    @hookspec
    def register_operators(self, register: Callable[[OperatorPlugin], None]) -> None:
        """Add condition operators."""

    @hookspec
    def register_notifiers(self, register: Callable[[Notifier], None]) -> None:
        """Add notifiers; a mailing or notification names one by its ``channel``."""

    @hookspec
    def register_stores(self, register: Callable[[str, Callable[[str], Store]], None]) -> None:
        """Add store backends by URL scheme: ``register("mongodb", factory)``."""

    @hookspec(firstresult=True)
    def handle_event(self, event: Event, handle: Callable[[Event], Result]) -> Result | None:
        """Around handling an event; wrap it with ``@hookimpl(wrapper=True)``."""

    @hookspec
    def after_action(self, action: str, rule: str, event: Event, effects: list[Effect]) -> None:
        """After an action ran; ``effects`` are the changes it made."""

    @hookspec
    def action_failed(
        self, action: str, rule: str, event: Event, error: BaseException, reason: str
    ) -> None:
        """An action raised; the rule's changes are rolled back alone (see ``on_error``).

        ``reason`` is what the admin reads; ``error`` is the exception, for logs.
        """


class _Core:
    """The built-in implementation of ``handle_event``: run the engine."""

    @hookimpl(trylast=True)
    def handle_event(self, event: Event, handle: Callable[[Event], Result]) -> Result:
        return handle(event)


class PluginManager:
    """A typed wrapper around pluggy's manager; one per Engine."""

    def __init__(self, plugins: Iterable[object] = (), *, entry_points: bool = True) -> None:
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(Hookspecs)
        self._pm.register(_Core(), name="crmrules.core")
        if entry_points:
            self._pm.load_setuptools_entrypoints(PROJECT)
        for plugin in plugins:
            self._pm.register(plugin)

    @property
    def pluggy(self) -> pluggy.PluginManager:
        return self._pm

    def actions(self) -> dict[str, ActionPlugin]:
        found: dict[str, ActionPlugin] = {}
        self._pm.hook.register_actions(register=_collector(found, "action"))
        return found

    def action_models(self) -> dict[str, type[BaseModel]]:
        """Every action's parameter model, built-in and plugins', for loading and the schema."""
        plugin_models = {action.name: action.params for action in self.actions().values()}
        clashes = sorted(plugin_models.keys() & BUILTIN_ACTIONS.keys())
        if clashes:
            raise ValueError(f"a plugin redefines the built-in action {clashes[0]!r}")
        return {**BUILTIN_ACTIONS, **plugin_models}

    def operator_schemas(self) -> dict[str, dict[str, Any]]:
        """The JSON Schema of each plugin operator's value."""
        return {
            name: dict(op.schema or {"description": f"{name} (from a plugin)"})
            for name, op in self.operators().items()
        }

    def operators(self) -> dict[str, OperatorPlugin]:
        found: dict[str, OperatorPlugin] = {}
        self._pm.hook.register_operators(register=_collector(found, "operator"))
        return found

    def notifiers(self) -> dict[str, Notifier]:
        found: dict[str, Notifier] = {}
        self._pm.hook.register_notifiers(register=_collector(found, "notifier"))
        return found

    def stores(self) -> dict[str, Callable[[str], Store]]:
        found: dict[str, Callable[[str], Store]] = {}

        def register(scheme: str, factory: Callable[[str], Store]) -> None:
            if scheme in found:
                raise ValueError(f"two plugins register a store for {scheme!r}")
            found[scheme] = factory

        self._pm.hook.register_stores(register=register)
        return found

    def handle_event(self, event: Event, handle: Callable[[Event], Result]) -> Result:
        result: Result = self._pm.hook.handle_event(event=event, handle=handle)
        return result

    def after_action(self, action: str, rule: str, event: Event, effects: list[Effect]) -> None:
        hook = self._pm.hook.after_action
        if hook.get_hookimpls():  # pluggy's call costs 40 list copies even when no one listens
            hook(action=action, rule=rule, event=event, effects=effects)

    def action_failed(
        self, action: str, rule: str, event: Event, error: BaseException, reason: str
    ) -> None:
        self._pm.hook.action_failed(
            action=action, rule=rule, event=event, error=error, reason=reason
        )


def _collector(found: dict[str, Any], what: str) -> Callable[[Any], None]:
    def register(item: Any) -> None:
        if item.name in found:
            raise ValueError(f"two plugins register the {what} {item.name!r}")
        found[item.name] = item

    return register


__all__ = [
    "ActionHandler",
    "ActionPlugin",
    "Hookspecs",
    "Inline",
    "OperatorPlugin",
    "PluginManager",
    "hookimpl",
    "hookspec",
]
