"""Checking a rule's actions: each one's parameters, references and templates.

The compiler (``crmrules.rules.regulation``) hands each ``then:`` list here;
an action's parameters are validated by its model (``crmrules.rules.schema``,
or a plugin's), then the built-in actions' references (stages, managers,
territories, segments, rules, templates, webhook addresses) are checked
against the rest of the regulation.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from crmrules.destinations import HINT as DESTINATION_HINT
from crmrules.errors import Location
from crmrules.rules import schema
from crmrules.rules.fields import TIME_TYPES, coerce
from crmrules.rules.source import PathKey
from crmrules.rules.templates import CompiledTemplate, Kind
from crmrules.rules.triggers import check_event_type

if TYPE_CHECKING:
    from crmrules.rules.regulation import _Compiler


#: Fields that actions must not set directly: ids, and what has its own action.
READ_ONLY = frozenset(
    {
        "client.id", "client.territories", "client.segments", "client.created_at",
        "deal.id", "deal.client", "deal.pipeline", "deal.stage",
        "deal.created_at", "deal.stage_entered_at",
    }
)  # fmt: skip
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class Action:
    """One action of a rule: its name, checked parameters and compiled templates."""

    name: str
    params: BaseModel
    location: Location | None
    templates: Mapping[str, CompiledTemplate] = field(default_factory=dict)


class ActionChecks:
    """The actions of one regulation's rules and contact plans, checked and compiled."""

    def __init__(self, compiler: _Compiler) -> None:
        self.compiler = compiler
        #: Built-in actions' checks beyond their parameter models (references, templates).
        self.checks: dict[str, Callable[[Any, PathKey, dict[str, CompiledTemplate]], None]] = {
            "create_task": self._check_create_task,
            "send_mailing": self._check_send_mailing,
            "move_stage": self._check_move_stage,
            "assign_manager": self._check_assign_manager,
            "set_field": self._check_set_field,
            "add_to_territory": self._check_territory_ref,
            "remove_from_territory": self._check_territory_ref,
            "clear_territory_override": self._check_territory_ref,
            "add_to_segment": self._check_segment_ref,
            "remove_from_segment": self._check_segment_ref,
            "clear_segment_override": self._check_segment_ref,
            "cancel_tasks": self._check_cancel_tasks,
            "notify": self._check_notify,
            "emit": self._check_emit,
        }

    def actions(self, items: list[Any], path: PathKey) -> tuple[Action, ...]:
        actions: list[Action] = []
        for index, raw in enumerate(items):
            action = self._action(raw, (*path, index))
            if action is not None:
                actions.append(action)
        return tuple(actions)

    def _action(self, raw: Any, path: PathKey) -> Action | None:
        names = sorted(self.compiler.actions)
        if not isinstance(raw, dict) or len(raw) != 1:
            self.compiler.error(
                path,
                "an action is a mapping with one key, the action's name",
                f"e.g. - create_task: {{title: ...}}; actions: {', '.join(names)}",
            )
            return None
        name, params_raw = next(iter(raw.items()))
        model = self.compiler.actions.get(name)
        if model is None:
            close = difflib.get_close_matches(str(name), names, n=1)
            self.compiler.error(
                (*path, name),
                f"unknown action {name!r}",
                f"did you mean {close[0]}?" if close else f"actions: {', '.join(names)}",
                key=True,
            )
            return None
        p_path = (*path, name)
        if name in schema.SHORTHAND and not isinstance(params_raw, dict):
            params_raw = {schema.SHORTHAND[name]: params_raw}
        checked = self.compiler.validate_all(
            model, params_raw if params_raw is not None else {}, p_path
        )
        if checked is None:
            return None
        params, bad = checked
        templates: dict[str, CompiledTemplate] = {}
        check = self.checks.get(name)
        if check is not None:
            # A bad parameter is reported; the checks below look at the others
            # (each check skips a required parameter that is None here).
            check(params, p_path, templates)
        return None if bad else Action(name, params, self.compiler.source.locate(path), templates)

    def _template_param(
        self, text: str | None, kind: Kind, path: PathKey, into: dict[str, CompiledTemplate]
    ) -> None:
        compiled = self.compiler._optional_template(text, kind, path)
        if compiled is not None:
            into[str(path[-1])] = compiled

    def _check_create_task(
        self, params: schema.CreateTask, path: PathKey, templates: dict[str, CompiledTemplate]
    ) -> None:
        self._template_param(params.title, "subject", (*path, "title"), templates)
        self._template_param(params.description, "text", (*path, "description"), templates)
        if isinstance(params.due, str):
            self.compiler._duration(params.due, (*path, "due"))
        elif isinstance(params.due, schema.DueSpec):
            due_path = (*path, "due")
            spec = self.compiler.registry.get(params.due.field)
            if spec is None or spec.type not in TIME_TYPES or spec.namespace == "manager":
                self.compiler.error(
                    (*due_path, "field"),
                    f"due: {params.due.field!r} is not a date or datetime field",
                    _did_you_mean(self.compiler.registry.suggest(params.due.field)),
                )
            if params.due.after is not None and params.due.before is not None:
                self.compiler.error(due_path, "due: give after or before, not both")
            self.compiler._duration(params.due.after, (*due_path, "after"))
            self.compiler._duration(params.due.before, (*due_path, "before"))
        self._check_assignee(params.assignee, (*path, "assignee"))

    def _check_assignee(self, assignee: str | schema.AssignSpec | None, path: PathKey) -> None:
        if isinstance(assignee, schema.AssignSpec):
            self._check_assign_manager(assignee, path, {})
        elif assignee is not None and assignee not in ("responsible", "territory"):
            self.compiler._check_manager(assignee, path)

    def _check_send_mailing(
        self, params: schema.SendMailing, path: PathKey, templates: dict[str, CompiledTemplate]
    ) -> None:
        if params.template is not None and params.template not in self.compiler.templates:
            self.compiler._unknown(
                (*path, "template"), "template", params.template, self.compiler.templates
            )
        to = params.to
        if not (
            to in ("client", "responsible")
            or (to.startswith("contact:") and len(to) > len("contact:"))
            or EMAIL.fullmatch(to)
        ):
            self.compiler.error(
                (*path, "to"),
                f"to: {to!r} is not a recipient",
                "write client, responsible, contact:<role> or an e-mail address",
            )

    def _check_move_stage(
        self, params: schema.MoveStage, path: PathKey, templates: dict[str, CompiledTemplate]
    ) -> None:
        if params.to is None or params.to == "next":
            return
        stages = {s.id: s for p in self.compiler.pipelines.values() for s in p.stages}
        if params.to not in stages:
            self.compiler._unknown((*path, "to"), "stage", params.to, {**stages, "next": None})

    def _check_assign_manager(
        self, params: schema.AssignSpec, path: PathKey, templates: dict[str, CompiledTemplate]
    ) -> None:
        among = params.among
        if isinstance(among, str):
            if among not in self.compiler.territory_specs:
                self.compiler._unknown(
                    (*path, "among"), "territory", among, self.compiler.territory_specs
                )
        elif among is not None:
            for index, manager in enumerate(among):
                self.compiler._check_manager(manager, (*path, "among", index))
        if params.strategy == "by_skill" and not params.skills:
            self.compiler.error(
                path, "by_skill needs skills: [...]", "list the skills the manager must have"
            )
        if params.fallback is not None:
            self.compiler._check_manager(params.fallback, (*path, "fallback"))

    def _check_set_field(
        self, params: schema.SetField, path: PathKey, templates: dict[str, CompiledTemplate]
    ) -> None:
        if params.field is None:
            return
        spec = self.compiler.registry.get(params.field)
        if spec is None or spec.namespace not in ("client", "deal"):
            self.compiler.error(
                (*path, "field"),
                f"set_field: {params.field!r} is not a client or deal field",
                _did_you_mean(self.compiler.registry.suggest(params.field)),
            )
            return
        if spec.path in READ_ONLY:
            advice = {
                "deal.stage": "use move_stage",
                "client.territories": "use add_to_territory / remove_from_territory",
                "client.segments": "use add_to_segment / remove_from_segment",
            }
            self.compiler.error(
                (*path, "field"), f"{spec.path} cannot be set by a rule", advice.get(spec.path)
            )
            return
        value = params.value
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            self._template_param(value, "subject", (*path, "value"), templates)
            return
        if value is not None:
            try:
                coerce(spec, value, self.compiler.calendar)
            except ValueError as error:
                self.compiler.error((*path, "value"), f"value for {spec.path}: {error}")
                return
        if spec.path == "client.responsible" and isinstance(value, str):
            self.compiler._check_manager(value, (*path, "value"))

    def _check_territory_ref(
        self, params: schema.TerritoryRef, path: PathKey, templates: dict[str, CompiledTemplate]
    ) -> None:
        if params.territory is not None:
            self.compiler._check_territory(params.territory, (*path, "territory"))

    def _check_segment_ref(
        self, params: schema.SegmentRef, path: PathKey, templates: dict[str, CompiledTemplate]
    ) -> None:
        def check() -> None:
            if params.segment not in self.compiler.segment_ids:
                self.compiler._unknown(
                    (*path, "segment"), "segment", params.segment, self.compiler.segment_ids
                )

        self.compiler.deferred.append(check)  # contact plans' actions are compiled before segments

    def _check_cancel_tasks(
        self, params: schema.CancelTasks, path: PathKey, templates: dict[str, CompiledTemplate]
    ) -> None:
        if not (params.all or params.kind or params.rule or params.title_contains):
            self.compiler.error(
                path,
                "cancel_tasks needs kind, rule or title_contains",
                "to cancel every open task of the client or deal, write all: true",
            )
        if params.rule is not None:
            self.compiler.deferred.append(
                partial(self.compiler._check_rule, params.rule, (*path, "rule"))
            )

    def _check_notify(
        self, params: schema.Notify, path: PathKey, templates: dict[str, CompiledTemplate]
    ) -> None:
        self._template_param(params.message, "text", (*path, "message"), templates)
        to = params.to
        if to is not None and to.startswith(("https://", "http://")):
            try:
                host = urlsplit(to).hostname or ""
            except ValueError:
                self.compiler.error((*path, "to"), "notify: the webhook address is not a valid URL")
                return
            refusal = self.compiler.destinations.refusal(host)
            if refusal is not None:
                self.compiler.error((*path, "to"), f"notify: {refusal}", DESTINATION_HINT)
        elif to is not None and to != "responsible":
            self.compiler._check_manager(to, (*path, "to"))

    def _check_emit(
        self, params: schema.Emit, path: PathKey, templates: dict[str, CompiledTemplate]
    ) -> None:
        problem = None if params.type is None else check_event_type(params.type)
        if problem:
            self.compiler.error((*path, "type"), problem)
        for key, value in params.data.items():
            if isinstance(value, str) and ("{{" in value or "{%" in value):
                self._template_param(value, "subject", (*path, "data", key), templates)


def _did_you_mean(suggestion: str | None) -> str | None:
    return f"did you mean {suggestion}?" if suggestion else None
