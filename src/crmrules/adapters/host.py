"""Clients and deals that live in the host's own tables.

Many hosts already keep companies and deals in their database, with their
own column names. ``HostRecords`` maps those tables onto crmrules' records,
so the SQL store reads and writes clients (and deals) there, in the same
database transaction, while crmrules keeps only its own tables for tasks,
mailings, the outbox, territory memberships, timers and the audit log::

    records = HostRecords(
        clients=HostTable(Company, id="company_id",
                          columns={"name": "title", "city": "city_name", "segment": "tier"}),
    )
    store = SQLAlchemyStore(engine, records=records)

``columns`` maps a crmrules field key (built-in, such as ``name`` or
``responsible``, or a custom field declared in the regulation, such as
``segment``) to the host's column. Territories are never the host's: they
come from crmrules' membership table. A built-in field without a column is
simply not kept (map it to keep it); writing a custom field or
``responsible`` that has no column is an error, because a rule's
assignment or ``set_field`` would otherwise be lost without a word.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from crmrules.errors import StoreError
from crmrules.model import Client, Deal

#: Fields a rule writes; they must have a column if the host keeps the records.
_MUST_KEEP = frozenset({"responsible", "stage", "stage_entered_at"})


@dataclass(frozen=True)
class HostTable:
    """One host table as crmrules records: the table, its id column, and field → column."""

    table: Any = field(repr=False)
    id: str
    columns: Mapping[str, str] = field(default_factory=dict)

    @property
    def sa_table(self) -> sa.Table:
        """The Table behind ``table``, which may be a Table or an ORM class."""
        if isinstance(self.table, sa.Table):
            return self.table
        table = sa.inspect(self.table).local_table
        assert isinstance(table, sa.Table)
        return table

    def check(self, what: str) -> None:
        names = set(self.sa_table.c.keys())
        missing = sorted({self.id, *self.columns.values()} - names)
        if missing:
            raise StoreError(
                f"The {what} mapping names columns that table {self.sa_table.name} does not "
                f"have: {', '.join(missing)}. Its columns are: {', '.join(sorted(names))}."
            )


class HostRecords:
    """Where clients and deals live when the host keeps them; None: crmrules' own tables."""

    def __init__(self, *, clients: HostTable | None = None, deals: HostTable | None = None) -> None:
        if deals is not None and "client" not in deals.columns:
            raise StoreError(
                "The deals mapping needs a column for 'client' (the deal's client id)."
            )
        for what, table in (("clients", clients), ("deals", deals)):
            if table is not None:
                table.check(what)
        self.clients = clients
        self.deals = deals

    # -- reading and writing one kind of record

    @staticmethod
    def _row_to_data(
        mapping: HostTable, row: Mapping[str, Any], builtin: set[str]
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"id": str(row[mapping.id])}
        custom: dict[str, Any] = {}
        for key, column in mapping.columns.items():
            value = row[column]
            if isinstance(value, datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=UTC)  # SQLite keeps no offset: its times are UTC
            if key in builtin:
                data[key] = value
            elif value is not None:
                custom[key] = value
        data["fields"] = custom
        return data

    @staticmethod
    def _data_to_row(
        mapping: HostTable, record: Client | Deal, builtin: set[str], what: str
    ) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for key in builtin - {"id", "fields", "territories", "segments"}:
            value = getattr(record, key)
            if key in mapping.columns:
                row[mapping.columns[key]] = value
            elif value is not None and key in _MUST_KEEP:
                raise StoreError(
                    f"{what} {record.id}: crmrules must keep '{key}' but table "
                    f"{mapping.sa_table.name} has no column for it. Add '{key}' to the "
                    f"{what}s mapping's columns."
                )
        for key, value in record.fields.items():
            if key in mapping.columns:
                row[mapping.columns[key]] = value
            elif value is not None:
                raise StoreError(
                    f"{what} {record.id}: custom field '{key}' has no column in table "
                    f"{mapping.sa_table.name}. Add '{key}' to the {what}s mapping's columns."
                )
        return row

    def _get(
        self, connection: sa.Connection, mapping: HostTable, record_id: str, *, lock: bool = False
    ) -> Mapping[str, Any] | None:
        table = mapping.sa_table
        query = sa.select(table).where(table.c[mapping.id] == record_id)
        if lock:
            query = query.with_for_update()
        row = connection.execute(query).mappings().first()
        return None if row is None else dict(row)

    def _put(
        self, connection: sa.Connection, mapping: HostTable, record_id: str, row: dict[str, Any]
    ) -> None:
        table = mapping.sa_table
        where = table.c[mapping.id] == record_id
        if connection.execute(sa.select(table.c[mapping.id]).where(where)).first() is None:
            connection.execute(sa.insert(table).values({mapping.id: record_id, **row}))
        elif row:
            connection.execute(sa.update(table).where(where).values(row))

    # -- clients

    def get_client(
        self,
        connection: sa.Connection,
        client_id: str,
        territories: frozenset[str],
        segments: frozenset[str] = frozenset(),
    ) -> Client | None:
        assert self.clients is not None
        row = self._get(connection, self.clients, client_id)
        if row is None:
            return None
        data = self._row_to_data(self.clients, row, set(Client.model_fields))
        return Client.model_validate({**data, "territories": territories, "segments": segments})

    def put_client(self, connection: sa.Connection, client: Client) -> None:
        assert self.clients is not None
        row = self._data_to_row(self.clients, client, set(Client.model_fields), "client")
        self._put(connection, self.clients, client.id, row)

    def client_ids(self, connection: sa.Connection) -> list[str]:
        assert self.clients is not None
        column = self.clients.sa_table.c[self.clients.id]
        return sorted(str(v) for v in connection.execute(sa.select(column)).scalars())

    def lock_client(self, connection: sa.Connection, client_id: str) -> None:
        assert self.clients is not None
        self._get(connection, self.clients, client_id, lock=True)

    # -- deals

    def get_deal(self, connection: sa.Connection, deal_id: str) -> Deal | None:
        assert self.deals is not None
        row = self._get(connection, self.deals, deal_id)
        if row is None:
            return None
        return Deal.model_validate(self._row_to_data(self.deals, row, set(Deal.model_fields)))

    def put_deal(self, connection: sa.Connection, deal: Deal) -> None:
        assert self.deals is not None
        row = self._data_to_row(self.deals, deal, set(Deal.model_fields), "deal")
        self._put(connection, self.deals, deal.id, row)

    def deals_of(self, connection: sa.Connection, client_id: str) -> Iterator[Deal]:
        assert self.deals is not None
        table = self.deals.sa_table
        column = table.c[self.deals.columns["client"]]
        ids = connection.execute(sa.select(table.c[self.deals.id]).where(column == client_id))
        for deal_id in sorted(str(v) for v in ids.scalars()):
            deal = self.get_deal(connection, deal_id)
            if deal is not None:
                yield deal

    def lock_deal(self, connection: sa.Connection, deal_id: str) -> str | None:
        """Lock the deal's row; its client id, if the deal exists."""
        assert self.deals is not None
        row = self._get(connection, self.deals, deal_id, lock=True)
        return None if row is None else str(row[self.deals.columns["client"]])


__all__ = ["HostRecords", "HostTable"]
