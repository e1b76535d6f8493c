"""The first reads of an engine call, in one statement each.

Every engine call that concerns a client or deal starts the same way: lock
the subject (``lock_subject``), look up the event's earlier result
(``event_result``), then read the deal, its client and the client's
responsible manager (the facts every rule sees). Sent one by one that is
four to six statements, each costing SQLAlchemy's per-execution work and,
on PostgreSQL, a round trip. Here the locks are one statement and the
reads another: the result, the deal, the client and the manager come back
as one row, and the transaction keeps the records for the reads that follow.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa

EVENT, CLIENT, DEAL = "p_event", "p_client", "p_deal"


class Tables(Hashable, Protocol):
    @property
    def clients(self) -> sa.Table: ...
    @property
    def deals(self) -> sa.Table: ...
    @property
    def managers(self) -> sa.Table: ...
    @property
    def event_results(self) -> sa.Table: ...


class Subject(NamedTuple):
    """What one row of ``subject_query`` holds (JSON ``data`` of each record, None if absent)."""

    result: dict[str, Any] | None
    deal: dict[str, Any] | None
    client_id: str | None
    client: dict[str, Any] | None
    responsible: str | None
    manager: dict[str, Any] | None


def _scalar(table: sa.Table, column: str, key: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
    """``(SELECT column FROM table WHERE <primary key> = key)``."""
    primary = table.primary_key.columns.values()[0]
    return sa.select(table.c[column]).where(primary == key).scalar_subquery()


@functools.cache
def subject_query(tables: Tables) -> sa.Select[Any]:
    """One row: the event's result, the deal, the client (the event's, else the deal's) and
    the client's responsible manager, each NULL when there is none."""
    t = tables
    deal_id = sa.bindparam(DEAL, type_=sa.String())
    owner = sa.select(t.deals.c.client_id).where(t.deals.c.id == deal_id).scalar_subquery()
    client_id = sa.func.coalesce(sa.bindparam(CLIENT, type_=sa.String()), owner)
    responsible = (
        sa.select(t.clients.c.data["responsible"].as_string())
        .where(t.clients.c.id == client_id)
        .scalar_subquery()
    )
    event_id = sa.bindparam(EVENT, type_=sa.String())
    return sa.select(
        _scalar(t.event_results, "result", event_id).label("result"),
        _scalar(t.deals, "data", deal_id).label("deal"),
        client_id.label("client_id"),
        _scalar(t.clients, "data", client_id).label("client"),
        responsible.label("responsible"),
        _scalar(t.managers, "data", responsible).label("manager"),
    )


def read_subject(
    connection: sa.Connection,
    tables: Tables,
    event_id: str,
    client_id: str | None,
    deal_id: str | None,
) -> Subject:
    row = connection.execute(
        subject_query(tables), {EVENT: event_id, CLIENT: client_id, DEAL: deal_id}
    ).one()
    return Subject._make(row)


@functools.cache
def lock_query(tables: Tables) -> sa.Select[Any]:
    """``SELECT ... FOR UPDATE`` on the deal, then on the client and the deal's client, sorted.

    One statement for what took one per row: the deal's lock is taken by the
    subquery, which runs first; the clients' in the order of their ids as
    Python sorts them (``COLLATE "C"``), so two callers never wait on each
    other in a circle.
    """
    t = tables
    owner = (
        sa.select(t.deals.c.client_id)
        .where(t.deals.c.id == sa.bindparam(DEAL, type_=sa.String()))
        .with_for_update()
        .scalar_subquery()
    )
    ids = t.clients.c.id
    return (
        sa.select(ids)
        .where(ids.in_([sa.bindparam(CLIENT, type_=sa.String()), owner]))
        .order_by(ids.collate("C"))
        .with_for_update()
    )


def lock_subject(
    connection: sa.Connection, tables: Tables, client_id: str | None, deal_id: str | None
) -> None:
    connection.execute(lock_query(tables), {CLIENT: client_id, DEAL: deal_id}).all()


__all__ = ["Subject", "lock_query", "lock_subject", "read_subject", "subject_query"]
