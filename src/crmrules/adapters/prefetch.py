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

from crmrules.adapters import direct

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
    @property
    def timers(self) -> sa.Table: ...


class Subject(NamedTuple):
    """What one row of ``subject_query`` holds: the result's JSON, the text of each record's
    JSON ``data`` (the store keeps records validated by it, crmrules.adapters.record_cache);
    None where there is none."""

    result: dict[str, Any] | None
    deal: str | None
    client_id: str | None
    client: str | None
    responsible: str | None
    manager: str | None


def _scalar(
    table: sa.Table, column: str, key: sa.ColumnElement[Any], *, text: bool = False
) -> sa.ScalarSelect[Any]:
    """``(SELECT column FROM table WHERE <primary key> = key)``; ``text``: as its JSON text."""
    primary = table.primary_key.columns.values()[0]
    value = sa.cast(table.c[column], sa.Text()) if text else table.c[column]
    return sa.select(value).where(primary == key).scalar_subquery()


@functools.cache
def subject_query(tables: Tables) -> sa.Select[Any]:
    """One row: the event's result, the deal, the client (the event's, else the deal's) and
    the client's responsible manager (the records as their JSON text), each NULL when there
    is none."""
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
        _scalar(t.deals, "data", deal_id, text=True).label("deal"),
        client_id.label("client_id"),
        _scalar(t.clients, "data", client_id, text=True).label("client"),
        responsible.label("responsible"),
        _scalar(t.managers, "data", responsible, text=True).label("manager"),
    )


def read_subject(
    connection: sa.Connection,
    tables: Tables,
    event_id: str,
    client_id: str | None,
    deal_id: str | None,
) -> Subject:
    values = {EVENT: event_id, CLIENT: client_id, DEAL: deal_id}
    _, rows = direct.execute(connection, subject_query(tables), values)
    return Subject._make(rows[0])


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
    direct.execute(connection, lock_query(tables), {CLIENT: client_id, DEAL: deal_id})


class Calls(NamedTuple):
    """What ``read_calls`` found, by id (JSON ``data``; an id asked for and absent is None)."""

    results: dict[str, Any]
    deals: dict[str, Any]
    clients: dict[str, Any]
    managers: dict[str, Any]
    timers: dict[str, Any]


def _by_ids(
    connection: sa.Connection,
    table: sa.Table,
    column: str,
    ids: list[str],
    *,
    lock: bool,
) -> dict[str, Any]:
    """``{id: column}`` for every id asked for (None when there is no such row)."""
    found: dict[str, Any] = dict.fromkeys(ids)
    if not ids:
        return found
    key = table.primary_key.columns.values()[0]
    query = sa.select(key, table.c[column]).where(key.in_(ids))
    if lock:  # in the order Python sorts ids, as lock_subject takes them
        query = query.order_by(key.collate("C")).with_for_update()
    found.update((row[0], row[1]) for row in connection.execute(query))
    return found


def read_calls(
    connection: sa.Connection,
    tables: Tables,
    calls: list[tuple[str, str | None, str | None]],
    timers: list[str],
    *,
    lock: bool,
    results: bool = True,
) -> Calls:
    """For a batch of engine calls (event id, client id, deal id each): the deals, then the
    clients (the calls' and the deals'), then the timers locked (``lock``: PostgreSQL),
    and the results and managers read; five statements for the batch. ``results=False``:
    the calls' results are taken as absent, not read (see ``prepare_calls``)."""
    t = tables
    deal_ids = sorted({deal for _, _, deal in calls if deal is not None})
    deals: dict[str, Any] = dict.fromkeys(deal_ids)
    owners: set[str] = set()
    if deal_ids:
        key = t.deals.c.id
        query = sa.select(key, t.deals.c.client_id, t.deals.c.data).where(key.in_(deal_ids))
        if lock:
            query = query.order_by(key.collate("C")).with_for_update()
        for row in connection.execute(query):
            deals[row[0]] = row[2]
            owners.add(row[1])
    client_ids = sorted({client for _, client, _ in calls if client is not None} | owners)
    clients = _by_ids(connection, t.clients, "data", client_ids, lock=lock)
    responsible = sorted(
        {str(data["responsible"]) for data in clients.values() if data and data.get("responsible")}
    )
    return Calls(
        results=_by_ids(connection, t.event_results, "result", [c[0] for c in calls], lock=False)
        if results
        else dict.fromkeys(c[0] for c in calls),
        deals=deals,
        clients=clients,
        managers=_by_ids(connection, t.managers, "data", responsible, lock=False),
        timers=_by_ids(connection, t.timers, "data", sorted(set(timers)), lock=lock),
    )


__all__ = [
    "Calls",
    "Subject",
    "lock_query",
    "lock_subject",
    "read_calls",
    "read_subject",
    "subject_query",
]
