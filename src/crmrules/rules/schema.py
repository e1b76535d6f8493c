"""The shape of a regulation, as pydantic models.

These models check the record-like blocks of a regulation (fields, calendar,
pipelines, managers, territories, templates, rules and each action's
parameters) and give the JSON Schema that editors use. The polymorphic parts
(conditions, triggers, the one-key action mappings) are checked by the
compiler in ``regulation.py``; their JSON Schema is written out here by hand
so that ``crmrules schema`` describes the whole language.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
)

from crmrules.model import one_address

#: Ids of rules, stages, territories, managers, templates: letters (any script), digits, `_.-`.
Id = Annotated[
    str,
    StringConstraints(pattern=r"^[^\W_]([\w.\-]{0,98}[\w])?$", strip_whitespace=False),
    # NFC first: an editor saving "ё" as "е" + a combining mark must not make a second stage.
    BeforeValidator(lambda v: unicodedata.normalize("NFC", v) if isinstance(v, str) else v),
]
#: A flag: exactly true or false (``yes``, ``off``, ``'false'``, ``0`` are refused, not guessed).
Flag = Annotated[bool, Strict()]
#: A duration as the admin writes it; parsed by crmrules.calendar.Duration.
DurationText = Annotated[
    str,
    Field(
        description="'2 days', '2 business days', '3 hours', '30 minutes', '1 week', "
        "'1 month', or ISO 8601 such as P2D",
        examples=["2 business days", "7 days", "P2D"],
    ),
]
#: Text that may hold Jinja2 placeholders ({{ client.name }}).
TemplateText = Annotated[str, Field(description="text, may use {{ client.name }} placeholders")]


class Block(BaseModel):
    """A mapping in a regulation: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- top-level blocks -----------------------------------------------------------------------


class FieldDecl(Block):
    type: Literal["string", "integer", "decimal", "boolean", "date", "datetime", "enum", "set"]
    values: list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(
        None, description="the allowed values of an enum"
    )
    default: Any = None
    description: str | None = None


class CalendarSpec(Block):
    timezone: str = "UTC"
    country: str | None = Field(None, description="ISO 3166 code; its public holidays are days off")
    subdivision: str | None = None
    weekend: list[str] = Field(default_factory=lambda: ["sat", "sun"])
    holidays: list[date] = Field(default_factory=list, description="extra days off (YYYY-MM-DD)")
    workdays: list[date] = Field(
        default_factory=list, description="extra working days, e.g. transferred days"
    )
    working_hours: str | None = Field(None, examples=["09:00-18:00"])
    short_pre_holidays: bool | None = Field(
        None,
        description="a working day right before a public holiday closes an hour early; "
        "default: true for country RU (Labour Code art. 95), false elsewhere",
    )


class StageSpec(Block):
    id: Id
    name: str | None = None
    deadline: DurationText | None = None
    final: Flag = False
    won: Flag = False
    requires: list[str] = Field(
        default_factory=list,
        description="fields that must be filled to enter the stage, e.g. deal.amount, client.inn",
    )


class CatalogueItemSpec(Block):
    id: Id
    name: str | None = None
    kind: Literal["product", "service"] = "product"
    group: str | None = None


class TransitionSpec(Block):
    from_: Id = Field(alias="from")
    to: Id | list[Id]


class PipelineSpec(Block):
    id: Id
    name: str | None = None
    stages: list[StageSpec] = Field(min_length=1)
    transitions: list[TransitionSpec] = Field(default_factory=list)


class AbsenceSpec(Block):
    """A time away: dates (whole days, both included) or moments with a time zone."""

    from_: AwareDatetime | date = Field(alias="from")
    to: AwareDatetime | date
    deputy: Id | None = Field(None, description="the manager who takes over meanwhile")
    reason: str | None = None


class ManagerSpec(Block):
    id: Id
    name: str | None = None
    email: Annotated[str, AfterValidator(one_address)] | None = None
    skills: list[str] = Field(default_factory=list)
    capacity: int | None = Field(None, ge=0)
    territories: list[Id] = Field(default_factory=list)
    working_hours: str | None = Field(
        None,
        examples=["10:00-19:00"],
        description="the manager's own hours: task due times in business days count by them",
    )
    active: Flag = True
    directions: list[Id] = Field(
        default_factory=list, description="the directions whose clients the manager works with"
    )
    absent: list[AbsenceSpec] = Field(default_factory=list, description="times away")


Strategy = Literal["round_robin", "least_loaded", "by_skill", "territory"]


class ContactPlanSpec(Block):
    every: DurationText
    then: list[Any] = Field(min_length=1)


class TerritorySpec(Block):
    id: Id
    name: str | None = None
    parent: Id | None = None
    priority: int = 0
    exclusive: Flag = False
    when: Any = Field(None, description="a condition on the client")
    managers: list[Id] = Field(default_factory=list)
    strategy: Strategy = "round_robin"
    contact_plan: list[ContactPlanSpec] = Field(default_factory=list)


class SegmentSpec(Block):
    id: Id
    name: str | None = None
    when: Any = Field(None, description="a condition on the client (no segment in it)")


class DirectionSpec(Block):
    id: Id
    name: str | None = None
    when: Any = Field(None, description="a condition on the client; none: every client")


class MatchSpec(Block):
    key: Literal["phone", "email", "inn", "ogrn", "name"]
    field: str | None = Field(
        None, description="the client field holding it (default: client.<key>)"
    )
    threshold: Annotated[float, Field(ge=0, le=100)] | None = Field(
        None, description="name only: the similarity (0-100) from which two names are one"
    )
    ambiguous: Annotated[float, Field(ge=0, le=100)] | None = Field(
        None, description="name only: the similarity from which a person is asked to decide"
    )


class DuplicatesSpec(Block):
    match: list[MatchSpec] = Field(min_length=1)
    region: str = Field("RU", description="the country of phone numbers written without +")
    dot_blind: list[str] | None = Field(
        None, description="e-mail domains that ignore dots in the mailbox name"
    )
    plus_tags: list[str] | None = Field(
        None, description="e-mail domains where name+tag@ reaches name@"
    )


class TemplateSpec(Block):
    subject: TemplateText | None = None
    text: TemplateText | None = None
    html: TemplateText | None = None


Once = Literal["per_event", "per_client", "per_deal", "per_stage_entry", "always"]
OnError = Literal["continue", "refuse"]


class RuleSpec(Block):
    id: Id
    description: str | None = None
    on: Any
    if_: Any = Field(None, alias="if")
    then: list[Any] = Field(min_length=1)
    priority: int = 0
    stop: Flag = False
    once: Once = "per_event"
    cooldown: DurationText | None = None
    enabled: Flag = True
    max_lateness: DurationText | None = None
    on_error: OnError = Field(
        "continue",
        description="when the rule fails at run time: continue (undo this rule alone, record "
        "the failure, let the change and other rules go on) or refuse (refuse the whole call)",
    )


# --- actions --------------------------------------------------------------------------------


class AssignSpec(Block):
    """How to pick a manager (``assign_manager``, or ``assignee`` given as a mapping)."""

    strategy: Strategy
    among: list[Id] | Id | None = Field(
        None, description="manager ids, or a territory id whose managers to choose from"
    )
    skills: list[str] = Field(default_factory=list)
    fallback: Id | None = Field(None, description="a manager id used when no one fits")


class DueSpec(Block):
    """A date field plus or minus an offset: ``{field: deal.delivered_at, after: 15 days}``."""

    field: str
    after: DurationText | None = None
    before: DurationText | None = None


class CreateTask(Block):
    kind: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "todo"
    title: TemplateText
    description: TemplateText | None = None
    due: DurationText | DueSpec | None = None
    assignee: str | AssignSpec | None = Field(
        None, description="responsible, territory, a manager id, or an assign_manager mapping"
    )
    priority: Literal["low", "normal", "high"] = "normal"


class SendMailing(Block):
    template: Id
    to: str = Field("client", description="client, contact:<role>, responsible, or an address")
    channel: str = "email"


class MoveStage(Block):
    to: Id = Field(description="a stage id, or next")


class SetField(Block):
    field: str
    value: Any = Field(description="a value of the field's type; text may use placeholders")


class TerritoryRef(Block):
    territory: Id


class SegmentRef(Block):
    segment: Id


class CancelTasks(Block):
    kind: str | None = None
    rule: Id | None = None
    title_contains: str | None = None
    all: Flag = Field(False, description="cancel every open task of the client or deal")


class Notify(Block):
    to: str = Field(description="responsible, a manager id, or an https:// webhook address")
    message: TemplateText
    channel: str | None = Field(None, description="a notifier name; default by `to`")


class Emit(Block):
    type: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    data: dict[str, Any] = Field(default_factory=dict)


#: The built-in actions: name -> parameter model. Plugins add to a copy of this.
BUILTIN_ACTIONS: Mapping[str, type[BaseModel]] = {
    "create_task": CreateTask,
    "send_mailing": SendMailing,
    "move_stage": MoveStage,
    "assign_manager": AssignSpec,
    "set_field": SetField,
    "add_to_territory": TerritoryRef,
    "remove_from_territory": TerritoryRef,
    "clear_territory_override": TerritoryRef,
    "add_to_segment": SegmentRef,
    "remove_from_segment": SegmentRef,
    "clear_segment_override": SegmentRef,
    "cancel_tasks": CancelTasks,
    "notify": Notify,
    "emit": Emit,
}
#: Actions whose parameters may be written as one bare value: ``add_to_territory: msk``.
SHORTHAND: Mapping[str, str] = {
    "add_to_territory": "territory",
    "remove_from_territory": "territory",
    "clear_territory_override": "territory",
    "add_to_segment": "segment",
    "remove_from_segment": "segment",
    "clear_segment_override": "segment",
    "move_stage": "to",
    "send_mailing": "template",
}


# --- JSON Schema ----------------------------------------------------------------------------


class RegulationSpec(Block):
    """The whole document; only used for the JSON Schema."""

    version: Literal[1]
    name: str | None = Field(None, description="what the regulation is; recorded with its version")
    revision: str | int | None = Field(
        None, description="which edition this is (e.g. 2026-12); recorded with its version"
    )
    fields: dict[str, FieldDecl] = Field(default_factory=dict)
    calendar: CalendarSpec | None = None
    pipelines: list[PipelineSpec] = Field(default_factory=list)
    catalogue: list[CatalogueItemSpec] = Field(default_factory=list)
    managers: list[ManagerSpec] = Field(default_factory=list)
    territories: list[TerritorySpec] = Field(default_factory=list)
    segments: list[SegmentSpec] = Field(default_factory=list)
    directions: list[DirectionSpec] = Field(default_factory=list)
    duplicates: DuplicatesSpec | None = None
    templates: dict[str, TemplateSpec] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)


_OPERATOR_SCHEMA: dict[str, Any] = {
    "eq": {}, "ne": {}, "lt": {}, "lte": {}, "gt": {}, "gte": {},
    "between": {"type": "array", "minItems": 2, "maxItems": 2},
    "in": {"type": "array"}, "not_in": {"type": "array"},
    "contains": {"type": ["string", "number"]}, "not_contains": {"type": ["string", "number"]},
    "starts_with": {"type": "string"}, "ends_with": {"type": "string"},
    "contains_any": {"type": "array", "items": {"type": "string"}},
    "contains_all": {"type": "array", "items": {"type": "string"}},
    "is_empty": {"type": "boolean"},
    "older_than": {"type": "string"}, "newer_than": {"type": "string"},
    "before": {"type": "string"}, "after": {"type": "string"},
    "matches": {"type": "string", "maxLength": 1000},
    "changed": {"type": "boolean"}, "changed_from": {}, "changed_to": {},
}  # fmt: skip


def _condition_schema(operators: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    leaf = {
        "type": "object",
        "properties": {
            "field": {"type": "string", "description": "a field path such as client.region"},
            "ignore_case": {"type": "boolean"},
            **_OPERATOR_SCHEMA,
            **operators,
        },
        "required": ["field"],
        "additionalProperties": False,
        "minProperties": 2,
        "maxProperties": 3,
    }
    ref = {"$ref": "#/$defs/Condition"}
    return {
        "description": "a leaf {field, <operator>}, {territory}, {segment}, or all/any/not",
        "anyOf": [
            leaf,
            *(
                {
                    "type": "object",
                    "properties": {key: {"type": "string"}},
                    "required": [key],
                    "additionalProperties": False,
                }
                for key in ("territory", "segment")
            ),
            *(
                {
                    "type": "object",
                    "properties": {key: {"type": "array", "items": ref, "minItems": 1}},
                    "required": [key],
                    "additionalProperties": False,
                }
                for key in ("all", "any")
            ),
            {
                "type": "object",
                "properties": {"not": ref},
                "required": ["not"],
                "additionalProperties": False,
            },
        ],
    }


_TRIGGER_SCHEMA: dict[str, Any] = {
    "description": "an event type, a list of them, or a time trigger",
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
        {
            "type": "object",
            "properties": {"after": {"type": "string"}, "since": {"type": "string"}},
            "required": ["after", "since"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"before": {"type": "string"}, "of": {"type": "string"}},
            "required": ["before", "of"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"every": {"type": "string"}, "at": {"type": "string"}},
            "required": ["every"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"cron": {"type": "string"}},
            "required": ["cron"],
            "additionalProperties": False,
        },
    ],
}


def json_schema(
    actions: Mapping[str, type[BaseModel]] = BUILTIN_ACTIONS,
    operators: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    part: bool = False,
) -> dict[str, Any]:
    """The JSON Schema of the rule language, with the given actions and extra operators.

    ``actions`` are the built-in ones plus plugins'; ``operators`` maps a plugin
    operator's name to the JSON Schema of its value. With ``part`` it fits one
    file of a folder regulation: every section, ``version`` too, is optional
    (the folder as a whole still needs one ``version``, which validate checks).
    """
    schema = RegulationSpec.model_json_schema(by_alias=True)
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    defs["Condition"] = _condition_schema(operators or {})
    defs["Trigger"] = _TRIGGER_SCHEMA
    action_variants = []
    for name, model in sorted(actions.items()):
        params = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        defs.update(params.pop("$defs", {}))
        defs[f"{model.__name__}"] = params
        body: dict[str, Any] = {"$ref": f"#/$defs/{model.__name__}"}
        if name in SHORTHAND:
            body = {"anyOf": [body, {"type": "string"}]}
        action_variants.append(
            {
                "type": "object",
                "properties": {name: body},
                "required": [name],
                "additionalProperties": False,
            }
        )
    defs["Action"] = {"description": "one action: {name: parameters}", "anyOf": action_variants}
    actions_list = {"type": "array", "items": {"$ref": "#/$defs/Action"}, "minItems": 1}
    rule = defs["RuleSpec"]["properties"]
    rule["on"] = {"$ref": "#/$defs/Trigger"}
    rule["if"] = {"$ref": "#/$defs/Condition"}
    rule["then"] = actions_list
    for block in ("TerritorySpec", "SegmentSpec", "DirectionSpec"):
        defs[block]["properties"]["when"] = {"$ref": "#/$defs/Condition"}
    defs["ContactPlanSpec"]["properties"]["then"] = actions_list
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "crmrules regulation (version 1)"
    if part:
        schema.pop("required", None)
        schema["title"] = "crmrules regulation part: one file of a folder regulation (version 1)"
    return schema


__all__ = [
    "BUILTIN_ACTIONS",
    "SHORTHAND",
    "AbsenceSpec",
    "AssignSpec",
    "Block",
    "CalendarSpec",
    "CancelTasks",
    "CatalogueItemSpec",
    "ContactPlanSpec",
    "CreateTask",
    "DirectionSpec",
    "DueSpec",
    "DuplicatesSpec",
    "Emit",
    "FieldDecl",
    "ManagerSpec",
    "MatchSpec",
    "MoveStage",
    "Notify",
    "PipelineSpec",
    "RegulationSpec",
    "RuleSpec",
    "SegmentRef",
    "SegmentSpec",
    "SendMailing",
    "SetField",
    "StageSpec",
    "TemplateSpec",
    "TerritoryRef",
    "TerritorySpec",
    "TransitionSpec",
    "json_schema",
]
