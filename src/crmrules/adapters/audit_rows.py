"""The audit log's rows in the SQL store: written in one executemany per flush, read in order.

Each line is one row: the event's id, the line as JSON (``dump``'s keys and
values, see ``json_values.audit_data``), the event's client and the
regulation version (``crmrules history`` reads by them). A line the engine
hands over as a ``Miss`` (a rule that did not match, ``crmrules.rules.why``)
is written explained, with the same JSON as its ``entry()``, without making
the ``AuditEntry`` first: an event writes about ten such lines.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from crmrules.adapters import direct, json_values, statements
from crmrules.rules.why import Miss
from crmrules.store import AuditEntry

#: the columns of an audit row, in the order ``row`` gives them
COLUMNS = ("event_id", "data", "client_id", "regulation")


def row(entry: AuditEntry | Miss) -> dict[str, Any]:
    """The row of one audit line; a ``Miss`` explained now (its ``entry()``'s JSON)."""
    miss = type(entry) is Miss
    data = json_values.miss_data(entry) if miss else json_values.audit_data(entry)  # type: ignore[arg-type]
    return {
        "event_id": entry.event_id,
        "data": data,
        "client_id": entry.client,
        "regulation": entry.regulation,
    }


#: the most rows one multi-row INSERT takes on PostgreSQL (more go in several)
BATCH = 32


def write(connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """The rows (``row``'s): on SQLite one executemany (its driver runs it in C); on
    PostgreSQL one multi-row INSERT per ``BATCH`` rows, where psycopg's executemany pays a
    pipeline's Python work for every row."""
    if connection.dialect.name != "postgresql":
        direct.execute_many(connection, statements.insert(table), rows, keys=COLUMNS)
        return
    for first in range(0, len(rows), BATCH):
        batch = rows[first : first + BATCH]
        values = {
            f"{column}_{index}": row[column]
            for index, row in enumerate(batch)
            for column in COLUMNS
        }
        direct.execute(connection, _insert_rows(table, len(batch)), values)


@functools.cache
def _insert_rows(table: sa.Table, count: int) -> sa.Insert:
    """``INSERT INTO table (COLUMNS) VALUES (...), ...`` for ``count`` rows, the values of
    row ``i`` bound as ``<column>_<i>``."""
    rows = [
        {
            column: sa.bindparam(f"{column}_{index}", type_=table.c[column].type)
            for column in COLUMNS
        }
        for index in range(count)
    ]
    return sa.insert(table).values(rows)


def query(table: sa.Table, *, event_id: str | None, client: str | None) -> sa.Select[Any]:
    """The lines' JSON in the order written, of one event or client if given."""
    found = sa.select(table.c.data).order_by(table.c.id)
    if event_id is not None:
        found = found.where(table.c.event_id == event_id)
    if client is not None:
        found = found.where(table.c.client_id == client)
    return found


__all__ = ["BATCH", "COLUMNS", "query", "row", "write"]
