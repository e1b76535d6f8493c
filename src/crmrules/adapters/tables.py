"""crmrules' own SQL tables: one row a record, the JSON of the whole record in ``data``.

The columns beside ``data`` are what the store queries (ids, keys, status,
moments to sort by). ``metadata`` holds them all (crmrules.adapters.campaign_tables
and .import_tables add theirs to it); ``tables_in`` gives the same tables in
another PostgreSQL schema. The Alembic migrations create them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from crmrules.adapters import client_values


class UTCDateTime(TypeDecorator[datetime]):
    """A moment kept in UTC, so the database compares and sorts moments, not wall-clock text.

    Used only for columns the store queries; the exact value, with its
    offset, is in the record's JSON ``data``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"crmrules stores only timezone-aware datetimes, got {value}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """The crmrules tables; a host's own models use their own base and metadata."""

    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


#: Every crmrules table; give it to a host's Alembic ``include_object`` filter.
metadata = Base.metadata


class ClientRow(Base):
    __tablename__ = "crmrules_clients"
    id: Mapped[str] = mapped_column(primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class ClientValueRow(Base):
    """Each client's fields in typed columns, for conditions run as SQL (crmrules.rules.sql).

    Written with the client; see crmrules.adapters.client_values for the layout.
    """

    __tablename__ = "crmrules_client_values"
    __table_args__ = tuple(
        sa.Index(f"ix_crmrules_client_values_{column}", "key", column)
        for column in ("text_key", "folded_key", "number", "moment", "day")
    )
    client_id: Mapped[str] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    text: Mapped[str | None]
    text_key: Mapped[str | None]
    folded: Mapped[str | None]
    folded_key: Mapped[str | None]
    number: Mapped[Any] = mapped_column(client_values.Number(), nullable=True)
    nudge: Mapped[int | None]
    moment: Mapped[datetime | None] = mapped_column(UTCDateTime())
    day: Mapped[date | None]
    flag: Mapped[bool | None]
    blank: Mapped[bool]


class DealRow(Base):
    __tablename__ = "crmrules_deals"
    id: Mapped[str] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(index=True)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class ManagerRow(Base):
    __tablename__ = "crmrules_managers"
    id: Mapped[str] = mapped_column(primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class ContactRow(Base):
    __tablename__ = "crmrules_contacts"
    id: Mapped[str] = mapped_column(primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class ContactClientRow(Base):
    """Which clients a contact has a role in: what ``contacts_of`` looks up."""

    __tablename__ = "crmrules_contact_clients"
    contact_id: Mapped[str] = mapped_column(
        sa.ForeignKey("crmrules_contacts.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(primary_key=True, index=True)


class InteractionRow(Base):
    __tablename__ = "crmrules_interactions"
    id: Mapped[str] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    #: kind and manager: what the manager activity report groups by (migration 0007_campaigns)
    kind: Mapped[str | None]
    manager_id: Mapped[str | None]
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class TaskRow(Base):
    __tablename__ = "crmrules_tasks"
    id: Mapped[str] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str | None] = mapped_column(unique=True)
    client_id: Mapped[str | None] = mapped_column(index=True)
    deal_id: Mapped[str | None] = mapped_column(index=True)
    assignee: Mapped[str | None] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(index=True)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: what the reports read (migration 0007_campaigns): kind, rule, due and closing moments
    kind: Mapped[str | None]
    rule: Mapped[str | None] = mapped_column(index=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class MailingRow(Base):
    __tablename__ = "crmrules_mailings"
    id: Mapped[str] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str | None] = mapped_column(unique=True)
    client_id: Mapped[str | None] = mapped_column(index=True)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class OutboxRow(Base):
    __tablename__ = "crmrules_outbox"
    __table_args__ = (sa.Index("ix_crmrules_outbox_due", "status", "next_attempt_at"),)
    key: Mapped[str] = mapped_column(primary_key=True)
    status: Mapped[str]
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None]
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class EventResultRow(Base):
    __tablename__ = "crmrules_event_results"
    event_id: Mapped[str] = mapped_column(primary_key=True)
    result: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class RotationRow(Base):
    __tablename__ = "crmrules_rotations"
    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[int]


class FiredRow(Base):
    """When a rule last fired in a scope; ``at`` is ISO 8601 text, so its offset survives."""

    __tablename__ = "crmrules_fired"
    rule_id: Mapped[str] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(primary_key=True)
    at: Mapped[str]


class MembershipRow(Base):
    __tablename__ = "crmrules_memberships"
    client_id: Mapped[str] = mapped_column(primary_key=True)
    data: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)


class AuditRow(Base):
    __tablename__ = "crmrules_audit"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(index=True)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    #: the event's client and the regulation version (``crmrules history`` reads by them)
    client_id: Mapped[str | None] = mapped_column(index=True)
    regulation: Mapped[str | None] = mapped_column(index=True)


class TimerRow(Base):
    """A timer; ``ix_crmrules_timers_due`` serves ``claim_timers``, the others ``find_timers``."""

    __tablename__ = "crmrules_timers"
    __table_args__ = (sa.Index("ix_crmrules_timers_due", "status", "due_at"),)
    key: Mapped[str] = mapped_column(primary_key=True)
    kind: Mapped[str]
    rule: Mapped[str | None] = mapped_column(index=True)
    client_id: Mapped[str | None] = mapped_column(index=True)
    deal_id: Mapped[str | None] = mapped_column(index=True)
    status: Mapped[str]
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None]
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class FailureRow(Base):
    """A failed rule run (see crmrules.failures); ``ix_crmrules_failures_open`` lists them."""

    __tablename__ = "crmrules_failures"
    __table_args__ = (sa.Index("ix_crmrules_failures_open", "status", "failed_at"),)
    key: Mapped[str] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(index=True)
    rule: Mapped[str] = mapped_column(index=True)
    status: Mapped[str]
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


@dataclass(frozen=True)
class Tables:
    """The tables of one schema (the same Table objects as ``metadata`` when there is none)."""

    clients: sa.Table
    client_values: sa.Table
    deals: sa.Table
    managers: sa.Table
    contacts: sa.Table
    contact_clients: sa.Table
    interactions: sa.Table
    tasks: sa.Table
    mailings: sa.Table
    outbox: sa.Table
    event_results: sa.Table
    rotations: sa.Table
    fired: sa.Table
    memberships: sa.Table
    audit: sa.Table
    timers: sa.Table
    failures: sa.Table


@functools.cache
def tables_in(schema: str | None) -> Tables:
    """Copies of the tables in ``schema``: explicit, and they work the same on a host's Session."""
    tables = metadata.tables
    if schema is not None:
        copy = sa.MetaData(naming_convention=metadata.naming_convention)
        for original in metadata.sorted_tables:
            original.to_metadata(copy, schema=schema)
        tables = copy.tables
    prefix = "" if schema is None else f"{schema}."

    def table(name: str) -> sa.Table:
        return tables[f"{prefix}crmrules_{name}"]

    return Tables(
        clients=table("clients"),
        client_values=table("client_values"),
        deals=table("deals"),
        managers=table("managers"),
        contacts=table("contacts"),
        contact_clients=table("contact_clients"),
        interactions=table("interactions"),
        tasks=table("tasks"),
        mailings=table("mailings"),
        outbox=table("outbox"),
        event_results=table("event_results"),
        rotations=table("rotations"),
        fired=table("fired"),
        memberships=table("memberships"),
        audit=table("audit"),
        timers=table("timers"),
        failures=table("failures"),
    )


__all__ = [
    "AuditRow",
    "Base",
    "ClientRow",
    "ClientValueRow",
    "ContactClientRow",
    "ContactRow",
    "DealRow",
    "EventResultRow",
    "FailureRow",
    "FiredRow",
    "InteractionRow",
    "MailingRow",
    "ManagerRow",
    "MembershipRow",
    "OutboxRow",
    "RotationRow",
    "Tables",
    "TaskRow",
    "TimerRow",
    "UTCDateTime",
    "metadata",
    "tables_in",
]
