"""Scenario file parts about contacts, host tasks and interactions.

``given.contacts`` (so that ``to: contact:<role>`` mailings can be tested),
``given.tasks`` (tasks the host made, to complete or cancel by id), the
``complete_task`` / ``cancel_task`` steps and the ``log_interaction`` step.
Each is checked like the rest of the file: every problem is collected with
its line and column, nothing runs until the file is known to be good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmrules.model import Contact, Interaction, Task
from crmrules.rules.source import PathKey
from crmrules.testing import scenario_expect
from crmrules.testing.scenario_expect import TASK_FIELDS

if TYPE_CHECKING:
    from crmrules.testing.scenario import CancelTask, CompleteTask, LogInteraction, _Reader

#: A contact written flat: its fields, and ``client`` + ``role`` for one place of work.
CONTACT_KEYS = ("id", "name", "email", "phone", "client", "role", "primary", "roles")
TASK_KEYS = (
    "id",
    "kind",
    "title",
    "description",
    "due",
    "assignee",
    "priority",
    "status",
    "client",
    "deal",
)
INTERACTION_KEYS = (
    "id",
    "client",
    "deal",
    "contact",
    "kind",
    "direction",
    "outcome",
    "manager",
    "note",
    "occurred_at",
)


def contacts(reader: _Reader, value: Any, path: PathKey) -> list[Contact]:
    """``given.contacts``: people at the given clients, each with a role there."""
    found: list[Contact] = []
    for p, raw in reader.items(value, path, "contacts"):
        item = reader.mapping(raw, p, "a contact", CONTACT_KEYS, ("id", "name"))
        if item is None or "id" not in item or "name" not in item:
            continue
        data = {k: v for k, v in item.items() if k in CONTACT_KEYS}
        roles = data.pop("roles", None) or []
        if not isinstance(roles, list):
            reader.error((*p, "roles"), "roles must be a list of {client, role}")
            continue
        for index, place in enumerate(roles):
            if isinstance(place, dict) and place.get("client") is not None:
                where = (*p, "roles", index, "client")
                reader.reference(place["client"], where, "client", reader.given_clients)
        client, role = data.pop("client", None), data.pop("role", None)
        primary = data.pop("primary", False)
        if (client is None) != (role is None):
            reader.error(p, "a contact's place of work needs both client and role")
            continue
        if client is not None:
            reader.reference(client, (*p, "client"), "client", reader.given_clients)
            roles = [*roles, {"client": str(client), "role": role, "primary": primary}]
        contact = reader.validated(Contact, {**data, "roles": roles}, p, "contact")
        if contact is not None:
            found.append(contact)
    return found


def tasks(reader: _Reader, value: Any, path: PathKey) -> list[Task]:
    """``given.tasks``: tasks the host made before the scenario (completed or cancelled by id)."""
    assert reader.regulation is not None
    found: list[Task] = []
    for p, raw in reader.items(value, path, "tasks"):
        item = reader.mapping(raw, p, "a task", TASK_KEYS, ("id", "title"))
        if item is None or "id" not in item or "title" not in item:
            continue
        data = {k: v for k, v in item.items() if k in TASK_KEYS}
        data.setdefault("kind", "todo")
        if "due" in data:
            due = reader.moment(data["due"], (*p, "due"), reader.regulation.calendar)
            if due is None:
                continue
            data["due"] = due
        reader.reference(data.get("client"), (*p, "client"), "client", reader.given_clients)
        reader.reference(data.get("deal"), (*p, "deal"), "deal", reader.given_deals)
        reader.check_manager(data.get("assignee"), (*p, "assignee"))
        task = reader.validated(Task, data, p, "task")
        if task is not None:
            found.append(task)
    return found


def close_task(
    reader: _Reader, kind: str, value: Any, path: PathKey, clients: set[str], deals: set[str]
) -> CompleteTask | CancelTask | None:
    """``complete_task`` / ``cancel_task``: ``{id: t1}``, or fields that pick one open task."""
    from crmrules.testing.scenario import CancelTask, CompleteTask

    make = CompleteTask if kind == "complete_task" else CancelTask
    if isinstance(value, dict) and "id" in value:
        if len(value) > 1:
            reader.error(path, f"{kind} picks a task by id or by its fields, not both")
            return None
        task_id = reader.text(value["id"], (*path, "id"), "a task id")
        return None if task_id is None else make(None, task_id)
    pattern = scenario_expect.pattern(reader, value, path, kind, TASK_FIELDS, clients, deals)
    if pattern is not None and not pattern.fields:
        reader.error(
            path,
            f"{kind} needs the id of a task or fields that pick one open task",
            "e.g. {id: t1} or {kind: call, client: c1}",
        )
        return None
    return None if pattern is None else make(pattern)


def log_interaction(
    reader: _Reader, value: Any, path: PathKey, clients: set[str], deals: set[str]
) -> LogInteraction | None:
    """``log_interaction``: a call, meeting or e-mail, as the host records it (now by default)."""
    from crmrules.testing.scenario import LogInteraction

    assert reader.regulation is not None
    item = reader.mapping(value, path, "log_interaction", INTERACTION_KEYS, ("client", "kind"))
    if item is None or "client" not in item or "kind" not in item:
        return None
    data = {
        k: str(v) if k in ("id", "client", "deal", "contact", "manager") and v is not None else v
        for k, v in item.items()
        if k in INTERACTION_KEYS
    }
    ok = True
    occurred_at = None
    if "occurred_at" in data:
        occurred_at = reader.moment(
            data.pop("occurred_at"), (*path, "occurred_at"), reader.regulation.calendar
        )
        ok = occurred_at is not None
    reader.reference(data["client"], (*path, "client"), "client", clients)
    reader.reference(data.get("deal"), (*path, "deal"), "deal", deals)
    reader.reference(data.get("contact"), (*path, "contact"), "contact", reader.given_contacts)
    reader.check_manager(data.get("manager"), (*path, "manager"))
    probe = {"id": "probe", "occurred_at": "2000-01-01T00:00:00+00:00", **data}
    if reader.validated(Interaction, probe, path, "interaction") is None or not ok:
        return None
    return LogInteraction(data, occurred_at)


__all__ = ["CONTACT_KEYS", "INTERACTION_KEYS", "TASK_KEYS"]
