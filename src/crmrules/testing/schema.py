"""The JSON Schema of scenario files (``crmrules schema --scenario``), for editors.

It checks shape only: which keys a file, a step and an expectation may have
and what kind of value each takes. Names that depend on the regulation (rule
ids, custom fields, templates) are checked when the file loads, with its
line and column. The key lists come from :mod:`crmrules.testing.scenario`,
so the schema and the reader cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from crmrules.model import Manager
from crmrules.testing import scenario as sc
from crmrules.testing import scenario_records as records

_TEXT: dict[str, Any] = {"type": "string"}
_ID: dict[str, Any] = {"type": ["string", "integer"]}
_MOMENT: dict[str, Any] = {
    "type": "string",
    "description": "a moment, e.g. 2026-03-02T10:00:00+03:00 (or a date: midnight there)",
}
_VALUE: dict[str, Any] = {
    "description": "a value as written; a list compares as a set",
    "type": ["string", "number", "boolean", "null", "array"],
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}"}


def _object(
    properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }
    if required:
        schema["required"] = list(required)
    return schema


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def _pattern(fields: tuple[str, ...], description: str) -> dict[str, Any]:
    return _object({name: _VALUE for name in fields}, description=description)


def _record(what: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"a {what} written flat: built-in and declared custom fields side by side",
        "properties": {"id": _ID},
        "required": ["id"],
    }


def _given() -> dict[str, Any]:
    contact = {name: _VALUE for name in records.CONTACT_KEYS}
    contact["roles"] = _list_of(
        _object({"client": _ID, "role": _TEXT, "primary": {"type": "boolean"}}, ("client", "role"))
    )
    return _object(
        {
            "managers": _list_of(_ref("Manager")),
            "clients": _list_of(_ref("Client")),
            "deals": _list_of(_ref("Deal")),
            "contacts": _list_of(_object(contact, ("id", "name"))),
            "tasks": _list_of(
                _object({name: _VALUE for name in records.TASK_KEYS}, ("id", "title"))
            ),
        },
        description="records stored as they are: no event, no rule",
    )


def _steps() -> dict[str, dict[str, Any]]:
    """The value of each step kind."""
    return {
        "event": _object(
            {"type": _TEXT, "id": _ID, "client": _ID, "deal": _ID, "data": {"type": "object"}},
            ("type",),
        ),
        "create": _object({"clients": _list_of(_ref("Client")), "deals": _list_of(_ref("Deal"))}),
        "update": _object(
            {"client": _ID, "deal": _ID, "set": {"type": "object", "minProperties": 1}},
            ("set",),
        ),
        "complete_task": _ref("PickTask"),
        "cancel_task": _ref("PickTask"),
        "log_interaction": _object(
            {name: _VALUE for name in records.INTERACTION_KEYS}, ("client", "kind")
        ),
        "advance": {"type": ["string", "integer"], "description": "e.g. 7 days, 2 business days"},
        "at": _MOMENT,
        "realign": {"type": ["object", "null"], "maxProperties": 0},
        "expect": _ref("Expect"),
    }


def _expect() -> dict[str, Any]:
    records = {"type": "object", "additionalProperties": {"type": "object"}}
    return _object(
        {
            "tasks": _list_of(_ref("TaskPattern")),
            "mailings": _list_of(_ref("MailingPattern")),
            "notifications": _list_of(
                _pattern(sc.NOTIFICATION_FIELDS, "the fields that pick a notification")
            ),
            "open_tasks": _list_of(_ref("TaskPattern")),
            "timers": _list_of(_pattern(sc.TIMER_FIELDS, "the fields that pick a pending timer")),
            "deals": records,
            "clients": records,
            "fired": _list_of(_TEXT),
            "not_fired": _list_of(_TEXT),
        },
        minProperties=1,
    )


def _step(kinds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    variants = []
    for kind, value in kinds.items():
        properties: dict[str, Any] = {kind: value}
        if kind in sc.REFUSABLE:
            properties["refused"] = {"type": "boolean"}
        variants.append(_object(properties, (kind,)))
    return {"description": "one step: {kind: value}", "anyOf": variants}


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file (``*.regulation.yaml``)."""
    kinds = _steps()
    missing = set(sc.STEP_KINDS) ^ set(kinds)
    if missing:  # pragma: no cover - a step added to the reader but not here
        raise AssertionError(f"the scenario schema does not describe: {sorted(missing)}")
    manager = Manager.model_json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = manager.pop("$defs", {})
    defs.update(
        {
            "Manager": manager,
            "Client": _record("client"),
            "Deal": _record("deal"),
            "Given": _given(),
            "TaskPattern": _pattern(sc.TASK_FIELDS, "the fields that pick a task"),
            "PickTask": {
                "description": "a task's id, or fields that pick one open task",
                "anyOf": [_object({"id": _ID}, ("id",)), _ref("TaskPattern")],
            },
            "MailingPattern": _pattern(sc.MAILING_FIELDS, "the fields that pick a mailing"),
            "Expect": _expect(),
            "Step": _step(kinds),
            "Scenario": _object(
                {
                    "name": _TEXT,
                    "description": _TEXT,
                    "given": _ref("Given"),
                    "steps": _list_of(_ref("Step")),
                },
                ("name", "steps"),
            ),
        }
    )
    schema = _object(
        {
            "regulation": {
                "type": "string",
                "description": "the regulation under test (a file or a folder), "
                "relative to this file",
            },
            "now": _MOMENT,
            "given": _ref("Given"),
            "scenarios": {"type": "array", "items": _ref("Scenario"), "minItems": 1},
        },
        ("regulation", "scenarios"),
    )
    schema["$defs"] = defs
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "crmrules regulation scenarios (version 1)"
    return schema


__all__ = ["scenario_json_schema"]
