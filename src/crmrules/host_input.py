"""Checks on what a host passes in, made before any rule runs.

The regulation is checked when it loads; the host's records and arguments are
checked here, at the start of each call, so a bad value is refused with the
record and field named (``RecordError``) or the reason (``RefusedError``)
instead of failing deep inside a rule, a timer or the database driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crmrules.errors import RecordError, RefusedError
from crmrules.model import Client, Deal, Event, clean_id
from crmrules.rules.events import BUILTIN_EVENT_DATA
from crmrules.rules.regulation import Regulation
from crmrules.store import Transaction
from crmrules.timers import anchor_due


def host_id(namespace: str, value: object) -> str:
    """An id a host passes as an argument, checked and normalised like a record's own id."""
    if not isinstance(value, str) or not value:
        raise RecordError(namespace, "id", f"expected an id (text), got {value!r}")
    try:
        return clean_id(value)
    except ValueError as error:
        raise RecordError(f"{namespace} {value!r}", "id", str(error)) from None


def check_changes(namespace: str, record_id: str, changes: object) -> None:
    """``update_client(id, None)`` and the like: a clear error instead of AttributeError."""
    if not isinstance(changes, Mapping):
        raise RecordError(
            f"{namespace} {record_id}",
            "changes",
            f"expected a mapping of field names to new values, got {type(changes).__name__}",
        )


def check_references(
    tx: Transaction, what: str, client_id: str | None, deal_id: str | None
) -> None:
    """Refuse a client or deal that does not exist, or a deal named with another client."""
    if deal_id is not None:
        deal = _read(tx, "deal", deal_id)
        if deal is None:
            raise RefusedError(f"{what}: no deal {deal_id!r}")
        if client_id is not None and deal.client != client_id:
            raise RefusedError(
                f"{what}: deal {deal_id} belongs to client {deal.client}, not {client_id}"
            )
    if client_id is not None and _read(tx, "client", client_id) is None:
        raise RefusedError(f"{what}: no client {client_id!r}")


def _read(tx: Transaction, kind: str, record_id: str) -> Any:
    """The client or deal, to look at only: lent where the store lends (no copy)."""
    lend = getattr(tx, f"lend_{kind}", None)
    if lend is None:
        return getattr(tx, f"get_{kind}")(record_id)
    lent = lend(record_id)
    return None if lent is None else lent[0]


def apply_changes(
    record: Any, changes: Mapping[str, Any], namespace: str, regulation: Regulation
) -> Any:
    """A copy of a client or deal with ``changes``; custom fields go into ``fields``."""
    builtin = type(record).model_fields
    direct: dict[str, Any] = {}
    custom = dict(record.fields)
    for key, value in changes.items():
        if key in ("id", "fields", "territories"):
            raise RefusedError(f"{namespace} {record.id}: {key!r} cannot be changed")
        if key in builtin:
            direct[key] = value
        else:
            regulation.fields.check_declared(namespace, record.id, [key])
            custom[key] = value
    data = {**record.model_dump(), **direct, "fields": custom}
    return type(record).model_validate(data)


def check_event_data(regulation: Regulation, event: Event) -> None:
    """Every data key of a reported event is declared (``event.<key>``), or one of the keys
    crmrules itself puts on that built-in event: a typo must not render as nothing."""
    allowed = BUILTIN_EVENT_DATA.get(event.type, frozenset())
    regulation.fields.check_declared("event", event.id, event.data, allowed)


def check_time_range(
    regulation: Regulation, record: Client | Deal, old: Client | Deal | None
) -> None:
    """Refuse a new date whose timers would fall outside the calendar (9999-12-31 + 1 month).

    Python's dates end at 0001-01-01 and 9999-12-31; a rule counting from a
    date field (or a stage deadline) near either edge has no moment to fall due.
    Only a value the call sets is refused: one stored before the rule existed
    does not block the record's other changes (its timer's failure to plan is
    recorded against the rule instead, see ``timers.plan_failed``).
    """
    namespace = "client" if isinstance(record, Client) else "deal"
    calendar = regulation.calendar
    values = record.record()
    before = old.record() if old is not None else {}
    for rule in regulation.rules:
        anchor = rule.trigger.anchor
        if not rule.enabled or anchor is None or anchor.namespace != namespace:
            continue
        value = values.get(anchor.key)
        if value is None or before.get(anchor.key) == value:
            continue
        try:
            anchor_due(rule.trigger, value, calendar)
        except ValueError as error:
            raise RecordError(
                f"{namespace} {record.id}",
                anchor.key,
                f"rule {rule.id} cannot count from it: {error}",
            ) from None
    if (
        isinstance(record, Deal)
        and record.stage_entered_at is not None
        and not (isinstance(old, Deal) and old.stage_entered_at == record.stage_entered_at)
    ):
        pipeline = regulation.pipelines.get(record.pipeline)
        stage = pipeline.stage(record.stage) if pipeline else None
        if stage is not None and stage.deadline is not None:
            try:
                calendar.add(record.stage_entered_at, stage.deadline)
            except ValueError as error:
                raise RecordError(
                    f"deal {record.id}",
                    "stage_entered_at",
                    f"the deadline of stage {stage.id} cannot be counted from it: {error}",
                ) from None


__all__ = [
    "apply_changes",
    "check_changes",
    "check_event_data",
    "check_references",
    "check_time_range",
    "host_id",
]
