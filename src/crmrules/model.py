"""The CRM domain model: what a host stores and what rules read and make.

Records are pydantic models so a host's input is checked at the boundary
(a bad value names the record and field). Custom fields declared in a
regulation live in ``fields``; ``record()`` flattens built-in and custom
fields into the plain mapping that conditions and templates see.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import getaddresses
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)

from crmrules.calendar import Duration


def clean_id(value: str) -> str:
    """An id in NFC, so two spellings of one name are one id; control characters refused.

    PostgreSQL cannot store NUL at all, and a line break in an id breaks every
    log line and message that names it.
    """
    value = unicodedata.normalize("NFC", value)
    for char in value:
        if unicodedata.category(char) == "Cc" or char in "\u2028\u2029":
            raise ValueError(f"an id cannot hold the control character {char!r}")
    return value


RecordId = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(clean_id)]


#: a bare address of dot-atoms (RFC 5322), which ``getaddresses`` takes as it is
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*", re.ASCII
)


def one_address(value: str) -> str:
    """An e-mail field holds exactly one address (a display name is fine).

    ``"a@b.ru, victim@evil.ru"`` would otherwise send one rule's mail to both.
    An empty text means no address.
    """
    if value == "" or _PLAIN_ADDRESS.fullmatch(value):  # the common case, without the parser
        return value
    entries = getaddresses([value])
    address = entries[0][1] if len(entries) == 1 else ""
    local, at, domain = address.rpartition("@")
    if "\r" in value or "\n" in value or not (local and at and domain) or " " in address:
        raise ValueError(f"expected one e-mail address, such as ivan@example.ru, got {value!r}")
    return value


EmailAddress = Annotated[str, AfterValidator(one_address)]
#: true or false only: "yes", "off", "0" or 1 are refused rather than guessed.
Flag = Annotated[bool, Strict()]


M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__


@functools.cache
def _field_names(cls: type[BaseModel]) -> frozenset[str]:
    """The names of a model's fields, looked up once (pydantic's ``model_fields`` is a
    property that builds its answer on each read)."""
    return frozenset(cls.model_fields)


def trusted(cls: type[M], values: dict[str, Any]) -> M:
    """A record from values crmrules made itself, each field given and already of its type.

    Not validated again: pydantic's validation is most of what an audit line
    the engine writes costs. ``values`` becomes the record's own.
    """
    if values.keys() != _field_names(cls):
        raise TypeError(f"{cls.__name__}: give every field, not {sorted(values)}")
    record = cls.__new__(cls)
    _set(record, "__dict__", values)
    _set(record, "__pydantic_fields_set__", set(values))
    _set(record, "__pydantic_extra__", None)
    _set(record, "__pydantic_private__", None)
    return record


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _flatten(model: BaseModel) -> dict[str, Any]:
    """Built-in fields over custom ones, ``fields`` itself left out (once per event read)."""
    # a model's __dict__ holds exactly its fields (extra="forbid"), in declaration order
    data = model.__dict__
    custom = data.get("fields")
    if not custom:
        flat = data.copy()
        flat.pop("fields", None)
        return flat
    flat = {**custom, **data}
    if "fields" in custom:  # a custom field named ``fields`` stays, as before
        flat["fields"] = custom["fields"]
    else:
        del flat["fields"]
    return flat


class Client(Model):
    """A company or a person the sales team works with."""

    id: RecordId
    kind: Literal["company", "person"] = "company"
    name: str = ""
    email: EmailAddress | None = None
    phone: str | None = None
    region: str | None = None
    city: str | None = None
    country: str | None = None
    industry: str | None = None
    source: str | None = None
    campaign: RecordId | None = Field(None, description="the campaign that brought the client")
    request: RecordId | None = Field(None, description="the request the client first came with")
    tags: frozenset[str] = frozenset()
    territories: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    responsible: RecordId | None = Field(None, description="the id of the client's manager")
    created_at: AwareDatetime | None = None
    last_contact_at: AwareDatetime | None = None
    fields: dict[str, Any] = Field(default_factory=dict, description="custom fields")

    def record(self) -> dict[str, Any]:
        return _flatten(self)


class ContactRole(Model):
    """A contact's place in one client organisation."""

    client: RecordId
    role: str = Field(description="e.g. director, accountant, buyer")
    primary: Flag = False


class Contact(Model):
    """A person who may work in several client organisations, with a role in each."""

    id: RecordId
    name: str
    email: EmailAddress | None = None
    phone: str | None = None
    roles: list[ContactRole] = Field(default_factory=list)

    def role_in(self, client: str) -> str | None:
        return next((r.role for r in self.roles if r.client == client), None)


class Absence(Model):
    """A time a manager is away (a trip, a holiday): assignment skips them, a deputy stands in.

    ``from`` and ``to`` are dates (whole days, both included, in the calendar's
    time zone) or aware moments (``to`` itself no longer away).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    start: AwareDatetime | date = Field(alias="from")
    end: AwareDatetime | date = Field(alias="to")
    deputy: RecordId | None = Field(None, description="who takes the manager's work meanwhile")
    reason: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Absence:
        if _as_moment(self.end, True) <= _as_moment(self.start, False):
            raise ValueError(
                f"an absence must end after it starts (from {self.start} to {self.end})"
            )
        return self


def _as_moment(value: datetime | date, end: bool) -> datetime:
    """A rough UTC moment for ordering checks only (days are refined in the calendar's zone)."""
    if isinstance(value, datetime):
        return value
    moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return moment + timedelta(days=1) if end else moment


class Manager(Model):
    """A sales manager rules can assign work to; inactive ones are skipped."""

    id: RecordId
    name: str = ""
    email: EmailAddress | None = None
    skills: frozenset[str] = frozenset()
    capacity: int | None = Field(None, ge=0, description="open tasks or clients they can carry")
    working_hours: str | None = None
    territories: frozenset[str] = frozenset()
    active: Flag = True
    directions: frozenset[str] = Field(
        frozenset(), description="the directions whose clients the manager sees and changes"
    )
    absent: tuple[Absence, ...] = Field((), description="times away, each with a deputy")

    def record(self) -> dict[str, Any]:
        return _flatten(self)


class MembershipSource(StrEnum):
    """Whether a territory membership comes from its rule or a manual override."""

    RULE = "rule"
    MANUAL_ADD = "manual_add"
    MANUAL_REMOVE = "manual_remove"


class TerritoryMembership(Model):
    """Why a client is (or is kept out of) a territory: its rule, or a manual override."""

    client: RecordId
    territory: str
    source: MembershipSource
    since: AwareDatetime


class Stage(Model):
    """One stage of a pipeline; past ``deadline`` a deal raises deal.stage_overdue."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    id: str
    name: str | None = None
    deadline: Duration | None = None
    final: Flag = False
    #: a final stage that counts as a sale (reports count deals that end here as won)
    won: Flag = False
    #: field paths (deal.* or client.*) that must be filled to enter the stage
    requires: tuple[str, ...] = ()


class Pipeline(Model):
    """Ordered stages and the moves allowed between them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str | None = None
    stages: tuple[Stage, ...]
    #: from stage -> the stages it may move to; stages not listed use the default.
    transitions: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    def stage(self, stage_id: str) -> Stage | None:
        return next((s for s in self.stages if s.id == stage_id), None)

    def next_stage(self, stage_id: str) -> str | None:
        ids = [s.id for s in self.stages]
        index = ids.index(stage_id) if stage_id in ids else len(ids)
        return ids[index + 1] if index + 1 < len(ids) else None

    def allowed_moves(self, stage_id: str) -> tuple[str, ...]:
        """A transitions entry, else the next stage or any final one (none from a final stage)."""
        if stage_id in self.transitions:
            return self.transitions[stage_id]
        current = self.stage(stage_id)
        if current is None or current.final:
            return ()
        nxt = self.next_stage(stage_id)
        finals = tuple(s.id for s in self.stages if s.final and s.id != nxt)
        return ((nxt,) if nxt else ()) + finals

    def can_move(self, from_stage: str, to_stage: str) -> bool:
        return to_stage in self.allowed_moves(from_stage)

    def refuse_move(self, deal_id: str, from_stage: str, to_stage: str) -> str | None:
        """Why the move is not allowed (for the person who asked), or None if it is."""
        if self.can_move(from_stage, to_stage):
            return None
        allowed = ", ".join(self.allowed_moves(from_stage)) or "none"
        return (
            f"deal {deal_id}: cannot move from {from_stage} to {to_stage} in pipeline {self.id} "
            f"(allowed from {from_stage}: {allowed})"
        )


class Deal(Model):
    """A sale in progress: a client, a pipeline and the stage it has reached."""

    id: RecordId
    client: RecordId
    pipeline: RecordId
    stage: RecordId
    stage_entered_at: AwareDatetime | None = None
    amount: Decimal | None = None
    campaign: RecordId | None = Field(None, description="the campaign the deal came from")
    request: RecordId | None = Field(None, description="the request the deal was made from")
    created_at: AwareDatetime | None = None
    fields: dict[str, Any] = Field(default_factory=dict, description="custom fields")

    def record(self) -> dict[str, Any]:
        return _flatten(self)


class TaskStatus(StrEnum):
    """Open tasks can be completed or cancelled; closed ones stay closed."""

    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class Task(Model):
    """Work for a manager, made by a rule (``rule``) or by the host."""

    id: RecordId
    kind: str
    title: str
    description: str | None = None
    due: AwareDatetime | None = None
    assignee: str | None = None
    priority: Literal["low", "normal", "high"] = "normal"
    status: TaskStatus = TaskStatus.OPEN
    client: str | None = None
    deal: str | None = None
    rule: str | None = Field(None, description="the rule that made it")
    idempotency_key: str | None = None
    created_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = None
    regulation: str | None = Field(None, description="the regulation version that made it")
    note: str | None = Field(None, description="why it went to whom it did (a deputy...)")


class MailingStatus(StrEnum):
    """Where a mailing is on its way from the outbox to the recipient."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Mailing(Model):
    """A rendered message to one recipient, made from a template by a rule."""

    id: RecordId
    template: str
    to: str = Field(description="the resolved address")
    channel: str = "email"
    subject: str = ""
    text: str | None = None
    html: str | None = None
    status: MailingStatus = MailingStatus.PENDING
    client: str | None = None
    deal: str | None = None
    rule: str | None = None
    idempotency_key: str | None = None
    created_at: AwareDatetime | None = None
    regulation: str | None = Field(None, description="the regulation version that made it")


class Interaction(Model):
    """A call, meeting or e-mail with a client, logged by the host."""

    id: RecordId
    kind: Literal["call", "meeting", "email"]
    direction: Literal["in", "out"] = "out"
    outcome: str | None = Field(None, description="e.g. reached, no_answer, agreed, refused")
    client: RecordId
    deal: RecordId | None = None
    contact: RecordId | None = None
    manager: RecordId | None = None
    occurred_at: AwareDatetime
    note: str | None = None


class Event(Model):
    """Something that happened, reported by the host or raised by crmrules itself."""

    id: RecordId
    type: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    occurred_at: AwareDatetime
    client: RecordId | None = None
    deal: RecordId | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    #: the values an update changed: field key -> value before / after
    before: dict[str, Any] = Field(default_factory=dict)
    after: dict[str, Any] = Field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        values = self.__dict__  # exactly the model's fields (see ``_flatten``): read as a dict
        data, at = values["data"], values["occurred_at"]
        if not data:  # most events carry no data: the record without merging it
            return {"id": values["id"], "type": values["type"], "occurred_at": at}
        return {**data, "id": values["id"], "type": values["type"], "occurred_at": at}


__all__ = [
    "Absence",
    "Client",
    "Contact",
    "ContactRole",
    "Deal",
    "Event",
    "Interaction",
    "Mailing",
    "MailingStatus",
    "Manager",
    "MembershipSource",
    "Pipeline",
    "Stage",
    "Task",
    "TaskStatus",
    "TerritoryMembership",
]
