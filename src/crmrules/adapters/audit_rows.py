"""The audit log's rows in the SQL store: written in one executemany per flush, read in order.

Each line is one row: the event's id, the line as JSON (``dump``'s keys and
values, see ``json_values.audit_data``), the event's client and the
regulation version (``crmrules history`` reads by them). A line the engine
hands over as a ``Miss`` (a rule that did not match, ``crmrules.rules.why``)
is written explained, with the same JSON as its ``entry()``, without making
the ``AuditEntry`` first: an event writes about ten such lines.

The ``data`` column is sent as JSON text made here, with the dialect's own
JSON serializer, rather than as a dict for its type to serialize: the text
of a ``Miss`` is put together from the parts the lines of its event share
(its moment, event, version and client, encoded once), which costs a tenth
of serializing the dict. It is the text ``json.dumps`` gives for the dict
(``tests/test_audit_rows.py`` checks it on random lines); with a serializer
of the host's own (``create_engine(json_serializer=...)``) each line's dict
goes through it instead.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from crmrules.adapters import direct, json_values
from crmrules.rules.why import Miss
from crmrules.store import AuditEntry

#: the columns of an audit row, in the order ``row`` gives them
COLUMNS = ("event_id", "data", "client_id", "regulation")


class JSONText(sa.types.TypeDecorator[Any]):
    """A JSON column's value given as its JSON text already: sent as it is, with the JSON
    type's cast where the dialect renders one (PostgreSQL's ``::JSON``)."""

    impl = sa.JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


class Rows:
    """Makes the rows of one transaction's audit lines (``row``), ``data`` as JSON text."""

    __slots__ = ("_dumps", "_head", "_shared", "_tail")

    def __init__(self, dialect: Dialect) -> None:
        custom: Callable[[Any], str] | None = dialect._json_serializer
        self._dumps: Callable[[Any], str] = custom or json.dumps
        #: a Miss's text is put together only when it is json.dumps's
        self._shared = custom is None
        #: (moment, event id, event type) and the text of a Miss's line up to its rule
        self._head: tuple[datetime, str, str, str] | None = None
        #: (version, client) and the text of a Miss's line after its message
        self._tail: tuple[str | None, str | None, str] | None = None

    def row(self, entry: AuditEntry | Miss) -> dict[str, Any]:
        """The row of one audit line; a ``Miss`` explained now (its ``entry()``'s JSON)."""
        if type(entry) is Miss:
            text = self._miss_text(entry) if self._shared else None
            if text is None:
                text = self._dumps(json_values.miss_data(entry))
        else:
            text = self._dumps(json_values.audit_data(entry))  # type: ignore[arg-type]
        return {
            "event_id": entry.event_id,
            "data": text,
            "client_id": entry.client,
            "regulation": entry.regulation,
        }

    def _miss_text(self, miss: Miss) -> str | None:
        """``json.dumps(json_values.miss_data(miss))``, from the parts its event's lines
        share; None for a line of other types than those (a str subclass, say)."""
        message = miss.why.shown()[0]
        at, event_id, event_type = miss.at, miss.event_id, miss.event_type
        rule, regulation, client = miss.rule, miss.regulation, miss.client
        if type(at) is not datetime or not (
            type(event_id) is str
            and type(event_type) is str
            and type(rule) is str
            and type(message) is str
            and _TEXT.issuperset((type(regulation), type(client)))
        ):
            return None
        head = self._head
        if head is None or not (head[0] is at and head[1] == event_id and head[2] == event_type):
            head = self._head = (at, event_id, event_type, _head(at, event_id, event_type))
        tail = self._tail
        if tail is None or not (tail[0] == regulation and tail[1] == client):
            tail = self._tail = (regulation, client, _tail(regulation, client))
        said = encode_basestring_ascii(message)
        return f'{head[3]}{encode_basestring_ascii(rule)}, "message": {said}{tail[2]}'


_TEXT = frozenset({str, type(None)})


def _head(at: datetime, event_id: str, event_type: str) -> str:
    """The text of a Miss's line up to its rule: ``miss_data``'s keys in its order."""
    moment = encode_basestring_ascii(json_values.moment(at))
    return (
        f'{{"at": {moment}, "event_id": {encode_basestring_ascii(event_id)}, '
        f'"event_type": {encode_basestring_ascii(event_type)}, "kind": "not_matched", "rule": '
    )


def _tail(regulation: str | None, client: str | None) -> str:
    """The text of a Miss's line after its message."""
    return (
        f', "regulation": {json.dumps(regulation)}, "client": {json.dumps(client)}, "data": {{}}}}'
    )


#: the most rows one multi-row INSERT takes on PostgreSQL (more go in several)
BATCH = 32


def write(connection: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """The rows (``Rows.row``'s): on SQLite one executemany (its driver runs it in C); on
    PostgreSQL one multi-row INSERT per ``BATCH`` rows, where psycopg's executemany pays a
    pipeline's Python work for every row."""
    if connection.dialect.name != "postgresql":
        direct.execute_many(connection, _insert_one(table), rows)
        return
    for first in range(0, len(rows), BATCH):
        batch = rows[first : first + BATCH]
        values = {
            f"{column}_{index}": row[column]
            for index, row in enumerate(batch)
            for column in COLUMNS
        }
        direct.execute(connection, _insert_rows(table, len(batch)), values)


def _bind(table: sa.Table, column: str, name: str) -> sa.BindParameter[Any]:
    """``column``'s value bound as ``name``; ``data`` given as its JSON text."""
    return sa.bindparam(name, type_=JSONText() if column == "data" else table.c[column].type)


@functools.cache
def _insert_one(table: sa.Table) -> sa.Insert:
    """``INSERT INTO table (COLUMNS) VALUES (...)``, each value bound by its column's name."""
    return sa.insert(table).values({column: _bind(table, column, column) for column in COLUMNS})


@functools.cache
def _insert_rows(table: sa.Table, count: int) -> sa.Insert:
    """``INSERT INTO table (COLUMNS) VALUES (...), ...`` for ``count`` rows, the values of
    row ``i`` bound as ``<column>_<i>``."""
    rows = [
        {column: _bind(table, column, f"{column}_{index}") for column in COLUMNS}
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


__all__ = ["BATCH", "COLUMNS", "JSONText", "Rows", "query", "write"]
