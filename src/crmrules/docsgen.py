"""The reference tables of the docs, generated from the code so they cannot drift.

Run ``python -m crmrules.docsgen`` from the repository root to rewrite every
generated section of ``docs/*.md``; ``--check`` only reports the stale ones
(exit 1), which is what CI and the test suite run. A section is written
between two markers::

    <!-- BEGIN GENERATED: operators -->
    ...
    <!-- END GENERATED: operators -->

Facts come from the code: the field registry, the operator tables, the
trigger and action models, the built-in event registry and the scenario
reader's keys. What a name *means* is written here, next to the generator;
a name the code knows and this module does not describe stops the generator
with an error, so a new operator, action or step cannot ship undocumented.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from crmrules.rules import conditions, events, schema
from crmrules.rules.fields import BUILTIN_FIELDS, FieldType
from crmrules.testing import scenario, scenario_expect

# --- what the names mean ---------------------------------------------------------------------

TYPE_MEANINGS: Mapping[str, str] = {
    "string": 'text; a whole number is accepted as its digits (`eq: 123` means `"123"`)',
    "integer": 'a whole number, or text made of digits (`gte: "250"`)',
    "decimal": 'an exact number, or text such as `"1000.50"` (`1.10` keeps its cents)',
    "boolean": "`true` or `false` only (`yes`, `no`, `on`, `off` are text)",
    "date": "a day, `YYYY-MM-DD`",
    "datetime": "a moment, ISO 8601; without an offset, in the calendar's time zone",
    "enum": "one of the declared `values`",
    "set": "a list of text values (tags, skills); order and repeats do not count",
}

OPERATOR_MEANINGS: Mapping[str, str] = {
    "eq": "equal to the value (or to another field: `eq: {field: client.city}`)",
    "ne": "not equal; true for a missing value",
    "lt": "less than / earlier than",
    "lte": "less than or equal",
    "gt": "greater than / later than",
    "gte": "greater than or equal",
    "between": "`[a, b]`: a <= x <= b (a date alone covers its whole day)",
    "in": "one of a list; `in: []` is always false",
    "not_in": "none of a list; true for a missing value; `not_in: []` is always true",
    "contains": "text: holds the substring; set: holds the element",
    "not_contains": "the opposite of `contains`; true for a missing value",
    "starts_with": "the text starts with the value",
    "ends_with": "the text ends with the value",
    "contains_any": "the set shares at least one element with the list",
    "contains_all": "the set holds every element of the list (`[]`: always true)",
    "is_empty": '`true`: missing, null, `""` or an empty set; `false`: the opposite',
    "older_than": "before now minus a duration (`30 days`; business days count back)",
    "newer_than": "after now minus a duration",
    "before": "earlier than an absolute date or moment",
    "after": "later than an absolute date or moment",
    "matches": "an RE2 regular expression (linear time), searched anywhere in the text",
    "changed": "`true`: the update that raised the event changed the field",
    "changed_from": "the update moved the field away from the value",
    "changed_to": "the update moved the field to the value",
}

TRIGGER_MEANINGS: Mapping[str, tuple[str, str]] = {
    "event": (
        "`invoice.issued`, or a list `[a, b]`",
        "the host reports, or crmrules raises, that event",
    ),
    "after": (
        "`{after: 7 days, since: deal.stage_entered_at}`",
        "the duration after a date field of the client or deal; planned when the field is set, "
        "re-planned when it changes, dropped when it is cleared",
    ),
    "before": ("`{before: 30 days, of: client.contract_end}`", "the duration before a date field"),
    "every": (
        "`{every: 1 month, at: \"09:00\"}`",
        "on a schedule, for every client that satisfies `if` then (`at` is optional)",
    ),
    "cron": (
        "`{cron: \"0 9 * * 1\"}`",
        "minute hour day-of-month month day-of-week, in the calendar's time zone",
    ),
}  # fmt: skip

ONCE_MEANINGS: Mapping[str, str] = {
    "per_event": "at most once per event (the default)",
    "per_client": "at most once per client, ever",
    "per_deal": "at most once per deal, ever",
    "per_stage_entry": "at most once each time the deal enters its current stage",
    "always": "no limit (cascades still fire a rule once per subject)",
}

#: Keys of the rule-language blocks: (model, key) -> meaning, where the model says nothing.
KEY_MEANINGS: Mapping[tuple[str, str], str] = {
    ("RegulationSpec", "version"): "`1`; required, in one file of a folder at least",
    ("RegulationSpec", "fields"): "custom fields of clients, deals and events: `path: {type, ...}`",
    ("RegulationSpec", "calendar"): "time zone, weekends, holidays, working hours (one file only)",
    ("RegulationSpec", "pipelines"): "sales pipelines: stages, transitions, stage deadlines",
    ("RegulationSpec", "catalogue"): "the goods and services requests ask about (demand report)",
    (
        "RegulationSpec",
        "managers",
    ): "managers (normally the host's; here for tests and small setups)",
    ("RegulationSpec", "territories"): "territories: which clients belong, their managers",
    ("RegulationSpec", "segments"): "segments: named client lists by criteria (`{segment: id}`)",
    ("RegulationSpec", "directions"): "directions: lines of business, whose clients managers see",
    ("RegulationSpec", "duplicates"): "how duplicate clients are recognised: normalised phone, "
    "e-mail, INN, OGRN, fuzzy names (see import-and-duplicates.md)",
    ("DuplicatesSpec", "match"): "the keys that identify a client, each a matcher",
    ("MatchSpec", "key"): "phone (E.164), email (case, gmail dots and +tags), inn and ogrn "
    "(check digits), or name (legal forms and quotes dropped, words sorted, fuzzy)",
    ("RegulationSpec", "templates"): "mail templates by name",
    ("RegulationSpec", "rules"): "the rules: trigger, condition, actions, policies",
    ("FieldDecl", "type"): "the field's type",
    ("FieldDecl", "default"): "the value a record without the field gets",
    ("FieldDecl", "description"): "free text for people",
    ("CalendarSpec", "timezone"): "an IANA zone such as Europe/Moscow",
    ("CalendarSpec", "subdivision"): "a region of the country with its own holidays",
    ("CalendarSpec", "weekend"): "days off every week: mon ... sun",
    ("CalendarSpec", "working_hours"): "`HH:MM-HH:MM`; business-day arithmetic starts at opening",
    ("PipelineSpec", "id"): "the pipeline's id",
    ("PipelineSpec", "name"): "a name for people",
    ("PipelineSpec", "stages"): "the stages in order",
    ("PipelineSpec", "transitions"): "moves allowed from a stage, replacing its default moves",
    ("StageSpec", "id"): "the stage's id",
    ("StageSpec", "name"): "a name for people",
    ("StageSpec", "deadline"): "a deal still in the stage after this raises `deal.stage_overdue`",
    ("StageSpec", "final"): "a closing stage (won, lost); every stage may move to it",
    ("StageSpec", "won"): "a final stage that is a sale: reports count deals ending here as won",
    ("CatalogueItemSpec", "id"): "the item's id: what a request's `items` name",
    ("CatalogueItemSpec", "name"): "a name for people",
    ("CatalogueItemSpec", "kind"): "`product` or `service`",
    ("CatalogueItemSpec", "group"): "a heading that gathers items in reports",
    ("TransitionSpec", "from"): "a stage",
    ("TransitionSpec", "to"): "a stage, or a list of them",
    ("ManagerSpec", "id"): "the manager's id",
    ("ManagerSpec", "name"): "the name templates and tasks show",
    ("ManagerSpec", "email"): "where `to: responsible` mailings and notifications go",
    ("ManagerSpec", "skills"): "what `by_skill` assignment matches",
    ("ManagerSpec", "capacity"): "the open tasks `least_loaded` lets the manager hold",
    ("ManagerSpec", "territories"): "the territories the manager works in",
    ("ManagerSpec", "working_hours"): "the manager's own hours, `HH:MM-HH:MM`",
    ("ManagerSpec", "active"): "`false`: never assigned",
    ("SegmentSpec", "id"): "the segment's id",
    ("SegmentSpec", "name"): "a name for people",
    ("DirectionSpec", "id"): "the direction's id: managers list it in `directions`",
    ("DirectionSpec", "name"): "a name for people",
    ("AbsenceSpec", "from"): "the first day (or moment) away",
    ("AbsenceSpec", "to"): "the last day away (a moment: back from then on)",
    ("AbsenceSpec", "reason"): "free text: holiday, trip, ...",
    ("TerritorySpec", "id"): "the territory's id",
    ("TerritorySpec", "name"): "a name for people",
    ("TerritorySpec", "parent"): "a child only takes clients its parent takes",
    ("TerritorySpec", "priority"): "among `exclusive` siblings, the highest wins",
    ("TerritorySpec", "exclusive"): "a client belongs to one exclusive sibling at most",
    ("TerritorySpec", "managers"): "who works the territory (`assignee: territory`)",
    ("TerritorySpec", "strategy"): "how `assignee: territory` picks among the managers",
    ("TerritorySpec", "contact_plan"): "recurring work for every client in the territory",
    ("ContactPlanSpec", "then"): "the actions, as in a rule",
    ("TemplateSpec", "subject"): "the subject line",
    ("TemplateSpec", "text"): "the plain-text body (a template needs `text` or `html`)",
    ("TemplateSpec", "html"): "the HTML body, autoescaped",
    ("RuleSpec", "id"): "the rule's id: results, explanations and tests name it",
    ("RuleSpec", "description"): "what the rule is for, in the admin's words",
    ("RuleSpec", "on"): "the trigger (see Triggers)",
    ("RuleSpec", "if"): "the condition; checked when the trigger fires",
    ("RuleSpec", "then"): "the actions, run in the order written",
    ("RuleSpec", "priority"): "higher runs first; ties in file order",
    ("RuleSpec", "stop"): "`true`: no lower-priority rule runs for this event",
    ("RuleSpec", "once"): "how often the rule may fire (see Policies)",
    ("RuleSpec", "cooldown"): "not again for the same client within this time",
    ("RuleSpec", "enabled"): "`false`: the rule is kept but never runs",
    ("RuleSpec", "max_lateness"): "time triggers only: a timer later than this is dropped",
    ("CreateTask", "kind"): "call, meeting, email, todo, or your own kind",
    ("CreateTask", "title"): "the task's title (template)",
    ("Notify", "message"): "the message (template)",
    ("ContactPlanSpec", "every"): "the period; the first comes one period after entering",
    ("CreateTask", "description"): "a longer text (template)",
    (
        "CreateTask",
        "due",
    ): "a duration from now, or `{field: <date field>, after: D}` / `before: D`",
    ("CreateTask", "priority"): "the task's priority",
    ("SendMailing", "template"): "a template of the regulation",
    ("SendMailing", "channel"): "the notifier that delivers it",
    ("AssignSpec", "strategy"): "how to choose",
    ("AssignSpec", "skills"): "`by_skill`: the skills the manager must have (required there)",
    ("SetField", "field"): "a client or deal field (not ids, stage, territories, timestamps)",
    ("TerritoryRef", "territory"): "a territory of the regulation",
    ("SegmentRef", "segment"): "a segment of the regulation",
    ("CancelTasks", "kind"): "only tasks of this kind",
    ("CancelTasks", "rule"): "only tasks this rule made",
    ("CancelTasks", "title_contains"): "only tasks whose title contains this text",
    ("Emit", "type"): "the event type to raise",
    ("Emit", "data"): "the event's data; text values may be templates",
    ("DueSpec", "field"): "a date or datetime field",
    ("DueSpec", "after"): "that long after the field",
    ("DueSpec", "before"): "that long before the field",
}

ACTION_MEANINGS: Mapping[str, str] = {
    "create_task": "a task for a manager",
    "send_mailing": "a mailing from a template, queued in the outbox",
    "move_stage": "moves the deal; refused unless the pipeline allows it",
    "assign_manager": "makes a manager the client's responsible",
    "set_field": "changes a field of the client or deal (raises the update events)",
    "add_to_territory": "puts the client in a territory by hand (a manual override)",
    "remove_from_territory": "takes the client out of a territory by hand",
    "clear_territory_override": "drops a manual add or remove; the territory's rule decides again",
    "add_to_segment": "puts the client in a segment by hand (a manual override)",
    "remove_from_segment": "takes the client out of a segment by hand",
    "clear_segment_override": "drops a manual add or remove; the segment's condition decides again",
    "cancel_tasks": "cancels open tasks of the client or deal (at least one filter)",
    "notify": "a message to a manager or a webhook, through a notifier",
    "emit": "raises another event, with data",
}

#: Scenario files: section -> name -> meaning. Names the reader will gain are described
#: ahead of time; only the names the code knows are written out.
SCENARIO_MEANINGS: Mapping[str, Mapping[str, str]] = {
    "top": {
        "regulation": "the regulation under test, relative to the scenario file (file or folder)",
        "now": "where the simulated clock starts; without an offset, the calendar's zone",
        "given": "the starting state of every scenario of the file",
        "scenarios": "the scenarios: `name`, optional `description`, `steps`",
    },
    "given": {
        "managers": "managers, as records (`id`, `name`, `email`, `skills`, `capacity`, ...)",
        "clients": "clients, written flat: built-in and declared custom fields side by side",
        "deals": "deals, written flat",
        "contacts": "contact people with their roles in clients",
        "tasks": "tasks the host made before the scenario (`id`, `title`, `client`, ...), "
        "to complete or cancel by id",
    },
    "scenario": {
        "name": "the scenario's name: the test is `<file>::<name>`",
        "description": "free text",
        "steps": "the steps, run in order; the scenario stops at its first failing step",
        "given": "this scenario's own records, added to the file's `given`",
    },
    "step": {
        "event": "`{type, id?, client?, deal?, data?}`: the host reports an event; "
        "the same `id` twice is one event delivered twice",
        "create": "`{clients: [...], deals: [...]}`: new records (raises `client.created` / "
        "`deal.created`, one engine call per record)",
        "update": "`{client: c1, set: {...}}` or `{deal: d1, set: {...}}`: changes fields "
        "(raises `*.updated`, `deal.stage_changed`)",
        "complete_task": "`{<task fields>}` or `{id: t1}`: completes the one open task they "
        "pick, or the task with that id (raises `task.completed`)",
        "cancel_task": "`{<task fields>}` or `{id: t1}`: the host cancels that task (no event; "
        "its due timer is cancelled)",
        "log_interaction": "`{client, kind, ...}`: logs a call, meeting or e-mail (raises "
        "`interaction.logged`; moves `client.last_contact_at`, which re-plans its timers)",
        "advance": "`7 days`: moves the clock, firing each timer at its own time, in time order",
        "at": "`2026-04-01T09:00:00+03:00`: moves the clock to that moment (never back), "
        "firing the timers due until then",
        "realign": "`{}`: recomputes every client's territories "
        "(raises `territory.entered` / `.left`)",
        "expect": "`{...}`: checks, see Expectations",
    },
    "expect": {
        "tasks": "the tasks created since the previous `expect` are exactly these: same "
        "count, each item matches one task by the fields it names, any order",
        "mailings": "the same for mailings",
        "open_tasks": "all open tasks now, matched the same way",
        "deals": "`{d1: {stage: offer}}`: those fields of those deals have those values",
        "clients": "`{c1: {responsible: ivanov, territories: [msk]}}`: the same for clients; "
        "sets compare as sets",
        "fired": "at least these rules fired since the previous `expect`",
        "not_fired": "none of these rules fired since the previous `expect`",
        "notifications": "the notifications (`notify`) queued since the previous `expect`",
        "timers": "all pending timers of rules now (`[{rule, due}]`: time triggers, schedules, "
        "contact plans), matched like `open_tasks`",
    },
}

# --- rendering helpers --------------------------------------------------------------------------


class DocsError(Exception):
    """Something the code knows that this module does not describe."""


def _meaning(table: Mapping[Any, Any], key: Any, what: str) -> Any:
    if key not in table:
        raise DocsError(f"crmrules.docsgen: no description for {what} {key!r}; add one")
    return table[key]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _code(values: Iterable[object]) -> str:
    return ", ".join(f"`{v}`" for v in values)


_ID_PATTERN = typing.get_args(schema.Id)[1].pattern
_DURATION = typing.get_args(schema.DurationText)[1].description
_TEMPLATE = typing.get_args(schema.TemplateText)[1].description


def _special(metadata: Iterable[object]) -> str | None:
    for item in metadata:
        if getattr(item, "pattern", None) == _ID_PATTERN:
            return "id"
        description = getattr(item, "description", None)
        if description == _DURATION:
            return "duration"
        if description == _TEMPLATE:
            return "template"
    return None


def type_name(annotation: Any, metadata: Iterable[object] = ()) -> str:
    """How the reference names a parameter's type."""
    special = _special(metadata)
    if special:
        return special
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0], annotation.__metadata__)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin is typing.Literal:
        return ", ".join(f"`{v}`" for v in args)
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"mapping of {type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation.__name__ in BLOCK_NAMES:
            return BLOCK_NAMES[annotation.__name__]
        return "mapping (" + ", ".join(_key(n, f) for n, f in annotation.model_fields.items()) + ")"
    simple = {
        str: "text",
        int: "integer",
        bool: "boolean",
        date: "date (YYYY-MM-DD)",
        AwareDatetime: "moment with its zone (ISO 8601)",
    }
    if annotation is Any:
        return "any"
    return simple.get(annotation, getattr(annotation, "__name__", str(annotation)))


#: Keys whose model type is loose because the compiler checks them (see rules/regulation.py).
TYPE_NAMES: Mapping[tuple[str, str], str] = {
    ("RuleSpec", "on"): "trigger",
    ("RuleSpec", "if"): "condition",
    ("RuleSpec", "then"): "list of actions",
    ("TerritorySpec", "when"): "condition",
    ("SegmentSpec", "when"): "condition",
    ("DirectionSpec", "when"): "condition",
    ("ContactPlanSpec", "then"): "list of actions",
    ("SetField", "value"): "the field's type, or template text",
}

#: How a block is named where another block holds it (each has its own table below).
BLOCK_NAMES: Mapping[str, str] = {
    "FieldDecl": "field declaration",
    "CalendarSpec": "calendar",
    "PipelineSpec": "pipeline",
    "StageSpec": "stage",
    "TransitionSpec": "transition",
    "CatalogueItemSpec": "catalogue item",
    "ManagerSpec": "manager",
    "TerritorySpec": "territory",
    "SegmentSpec": "segment",
    "DirectionSpec": "direction",
    "AbsenceSpec": "absence",
    "DuplicatesSpec": "duplicates section",
    "MatchSpec": "matcher",
    "ContactPlanSpec": "contact plan entry",
    "TemplateSpec": "template",
    "RuleSpec": "rule",
}


def _key(name: str, info: FieldInfo) -> str:
    return info.alias or name


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        return f"`{value}`".replace("'", "") if value else ""
    value = info.default
    if value is None:
        return ""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def keys_table(model: type[BaseModel]) -> str:
    """One row per key of a block: key, type, default, meaning."""
    rows = []
    for name, info in model.model_fields.items():
        key = _key(name, info)
        generic = _special([info])  # a field typed DurationText or TemplateText
        kind = TYPE_NAMES.get((model.__name__, key)) or generic
        kind = kind or type_name(info.annotation, info.metadata)
        described = None if generic else info.description
        meaning = described or _meaning(KEY_MEANINGS, (model.__name__, key), "key")
        rows.append((f"`{key}`", kind, _default(info), meaning))
    return table(("key", "type", "default", "meaning"), rows)


# --- the sections ---------------------------------------------------------------------------


def top_level() -> str:
    return keys_table(schema.RegulationSpec)


def field_types() -> str:
    return table(
        ("type", "values"),
        ((f"`{t.value}`", _meaning(TYPE_MEANINGS, t.value, "type")) for t in FieldType),
    )


def builtin_fields() -> str:
    rows = []
    for spec in BUILTIN_FIELDS.values():
        kind = spec.type.value
        if spec.values:
            kind += ": " + ", ".join(spec.values)
        rows.append((f"`{spec.path}`", kind))
    return table(("field", "type"), rows)


def operators() -> str:
    rows = []
    for written, (positive, negated) in conditions.WRITTEN_OPS.items():
        kinds = conditions.OPERATOR_TYPES[positive]
        fits = "all" if kinds == frozenset(FieldType) else ", ".join(sorted(kinds))
        case = "yes" if positive in conditions.CASE_OPS else ""
        meaning = _meaning(OPERATOR_MEANINGS, written, "operator")
        if negated:
            meaning += f" (the negation of `{positive}`)"
        rows.append((f"`{written}`", fits, case, meaning))
    return table(("operator", "field types", "ignore_case", "holds when"), rows)


def trigger_forms() -> str:
    keys = ["event"]
    for variant in schema._TRIGGER_SCHEMA["anyOf"]:
        if variant.get("type") == "object":
            keys.append(variant["required"][0])
    rows = [(*_meaning(TRIGGER_MEANINGS, key, "trigger"),) for key in keys]
    return table(("`on:`", "fires"), rows)


def _event_rows(events: Iterable[events.BuiltinEvent]) -> list[tuple[str, str, str]]:
    rows = []
    for event in events:
        data = "; ".join(f"`event.{k.key}` ({k.type}): {k.meaning}" for k in event.data)
        rows.append((f"`{event.type}`", event.raised, data or "none"))
    return rows


def builtin_events() -> str:
    rows = _event_rows([*events.BUILTIN_EVENT_INFO, events.TIMER_EVENT])
    return table(("event", "raised when", "data keys"), rows)


def policies() -> str:
    once = typing.get_args(schema.Once)
    return table(("`once:`", "the rule fires"), ((f"`{o}`", ONCE_MEANINGS[o]) for o in once))


def actions() -> str:
    parts = []
    for name, model in schema.BUILTIN_ACTIONS.items():
        meaning = _meaning(ACTION_MEANINGS, name, "action")
        head = f"#### `{name}`\n\n{meaning[0].upper()}{meaning[1:]}."
        if name in schema.SHORTHAND:
            head += f" Shorthand: `{name}: <{schema.SHORTHAND[name]}>`."
        parts.append(f"{head}\n\n{keys_table(model)}")
    parts.append(f"#### `due` as a mapping\n\n{keys_table(schema.DueSpec)}")
    return "\n\n".join(parts)


def blocks() -> str:
    models = (
        ("fields: <path>:", schema.FieldDecl),
        ("calendar:", schema.CalendarSpec),
        ("pipelines: -", schema.PipelineSpec),
        ("stages: -", schema.StageSpec),
        ("transitions: -", schema.TransitionSpec),
        ("catalogue: -", schema.CatalogueItemSpec),
        ("managers: -", schema.ManagerSpec),
        ("territories: -", schema.TerritorySpec),
        ("contact_plan: -", schema.ContactPlanSpec),
        ("segments: -", schema.SegmentSpec),
        ("directions: -", schema.DirectionSpec),
        ("absent: -", schema.AbsenceSpec),
        ("duplicates:", schema.DuplicatesSpec),
        ("match: -", schema.MatchSpec),
        ("templates: <name>:", schema.TemplateSpec),
        ("rules: -", schema.RuleSpec),
    )
    return "\n\n".join(f"#### `{title}`\n\n{keys_table(model)}" for title, model in models)


def _scenario_table(section: str, names: Iterable[str], header: tuple[str, str]) -> str:
    meanings = SCENARIO_MEANINGS[section]
    rows = [(f"`{n}`", _meaning(meanings, n, f"scenario {section} key")) for n in names]
    return table(header, rows)


def scenario_keys() -> str:
    return "\n\n".join(
        [
            _scenario_table("top", scenario.TOP_KEYS, ("key", "holds")),
            "Under `given`:\n\n" + _scenario_table("given", scenario.GIVEN_KEYS, ("key", "holds")),
            "Each scenario:\n\n"
            + _scenario_table("scenario", scenario.SCENARIO_KEYS, ("key", "holds")),
        ]
    )


def scenario_steps() -> str:
    steps = _scenario_table("step", scenario.STEP_KINDS, ("step", "does"))
    refusable = _code(scenario.REFUSABLE)
    return (
        f"{steps}\n\n`refused: true` may be added to these steps: {refusable}. The "
        "regulation must then refuse the step, and nothing may change."
    )


def scenario_expectations() -> str:
    checks = _scenario_table("expect", scenario_expect.EXPECT_KEYS, ("key", "holds when"))
    return (
        f"{checks}\n\nTask fields an item may name: {_code(scenario_expect.TASK_FIELDS)}. "
        f"Mailing fields: {_code(scenario_expect.MAILING_FIELDS)}. "
        f"Notification fields: {_code(scenario_expect.NOTIFICATION_FIELDS)}. "
        f"Timer fields: {_code(scenario_expect.TIMER_FIELDS)}."
    )


SECTIONS: Mapping[str, Callable[[], str]] = {
    "top-level-keys": top_level,
    "field-types": field_types,
    "builtin-fields": builtin_fields,
    "operators": operators,
    "triggers": trigger_forms,
    "builtin-events": builtin_events,
    "policies": policies,
    "actions": actions,
    "blocks": blocks,
    "scenario-keys": scenario_keys,
    "scenario-steps": scenario_steps,
    "scenario-expectations": scenario_expectations,
}

_SECTION = re.compile(
    r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END GENERATED: (?P=name) -->)",
    re.S,
)


def render(text: str) -> str:
    """``text`` with every generated section written afresh."""

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in SECTIONS:
            raise DocsError(f"unknown generated section {name!r} (known: {', '.join(SECTIONS)})")
        return f"{match[1]}\n{SECTIONS[name]()}\n\n{match[4]}"

    return _SECTION.sub(fill, text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crmrules.docsgen",
        description="Rewrite the generated reference tables in the docs (or --check them).",
    )
    parser.add_argument("docs", nargs="?", default="docs", help="the docs folder (default: docs)")
    parser.add_argument("--check", action="store_true", help="only report stale sections")
    args = parser.parse_args(argv)
    stale = []
    for path in sorted(Path(args.docs).rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        fresh = render(text)
        if fresh != text:
            stale.append(path)
            if not args.check:
                path.write_text(fresh, encoding="utf-8")
    for path in stale:
        verb = "is stale" if args.check else "rewritten"
        print(f"{path}: generated reference {verb}", file=sys.stderr if args.check else sys.stdout)
    if args.check and stale:
        print("run: python -m crmrules.docsgen", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
