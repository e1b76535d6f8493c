"""The tables of imports, duplicate keys and merges, on both stores.

- ``crmrules_match_keys``: each client's normalised keys (phone, e-mail,
  tax ids, name) under an index on (kind, key), written with the client, so
  duplicate candidates come from SQL by equal keys (blocking);
- ``crmrules_imports`` and ``crmrules_import_rows``: an import's progress
  (resumable) and the rows that were not simply created (bad, duplicate,
  ambiguous), each with its row and column;
- ``crmrules_merges``: what a merge changed, so ``unmerge`` can put it back.

The functions take a transaction of either store: SQL statements on the SQL
store, the memory store's undo-logged side tables otherwise. Records and
snapshots are JSON (the SQL store's own encoding), the same on both.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from crmrules.adapters.memory import MemoryTransaction
from crmrules.adapters.sqlalchemy import SQLAlchemyTransaction, metadata
from crmrules.errors import StoreError
from crmrules.store import Transaction

MATCH_KEYS = "crmrules_match_keys"
IMPORTS = "crmrules_imports"
IMPORT_ROWS = "crmrules_import_rows"
MERGES = "crmrules_merges"

_match_keys = sa.Table(
    MATCH_KEYS,
    metadata,
    sa.Column("client_id", sa.String(), primary_key=True),
    sa.Column("kind", sa.String(), primary_key=True),
    sa.Column("key", sa.String(), primary_key=True),
    sa.Index("ix_crmrules_match_keys_kind_key", "kind", "key"),
)
_imports = sa.Table(
    IMPORTS,
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("data", sa.JSON(), nullable=False),
)
_import_rows = sa.Table(
    IMPORT_ROWS,
    metadata,
    sa.Column("import_id", sa.String(), primary_key=True),
    sa.Column("row", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("outcome", sa.String(), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),
)
_merges = sa.Table(
    MERGES,
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("keep", sa.String(), nullable=False, index=True),
    sa.Column("data", sa.JSON(), nullable=False),
)


@functools.cache
def _in_schema(name: str, schema: str | None) -> sa.Table:
    table = metadata.tables[name]
    if schema is None:
        return table
    return table.to_metadata(
        sa.MetaData(naming_convention=metadata.naming_convention), schema=schema
    )


def _sql(tx: Transaction) -> tuple[sa.Connection, str | None] | None:
    if isinstance(tx, SQLAlchemyTransaction):
        return tx.connection, tx.tables.clients.schema
    if isinstance(tx, MemoryTransaction):
        return None
    raise StoreError(
        f"this store ({type(tx).__name__}) keeps no import, duplicate-key or merge records; "
        "use the SQL store (SQLite, PostgreSQL) or the memory store"
    )


def _memory(tx: Transaction) -> MemoryTransaction:
    assert isinstance(tx, MemoryTransaction)
    return tx


# -- match keys


def put_keys(tx: Transaction, client_id: str, keys: Iterable[tuple[str, str]]) -> None:
    """Replace the client's keys (an empty set removes them)."""
    wanted = sorted(set(keys))
    sql = _sql(tx)
    if sql is None:
        memory = _memory(tx)
        if memory.side(MATCH_KEYS).get(client_id, []) != wanted:
            if wanted:
                memory.side_put(MATCH_KEYS, client_id, wanted)
            else:
                memory.side_pop(MATCH_KEYS, client_id)
        return
    connection, schema = sql
    table = _in_schema(MATCH_KEYS, schema)
    connection.execute(sa.delete(table).where(table.c.client_id == client_id))
    if wanted:
        rows = [{"client_id": client_id, "kind": k, "key": v} for k, v in wanted]
        connection.execute(sa.insert(table), rows)


def keys_of(tx: Transaction, client_id: str) -> list[tuple[str, str]]:
    sql = _sql(tx)
    if sql is None:
        return [(k[0], k[1]) for k in _memory(tx).side(MATCH_KEYS).get(client_id, [])]
    connection, schema = sql
    t = _in_schema(MATCH_KEYS, schema)
    query = (
        sa.select(t.c.kind, t.c.key).where(t.c.client_id == client_id).order_by(t.c.kind, t.c.key)
    )
    return [(row.kind, row.key) for row in connection.execute(query)]


def clients_by_keys(tx: Transaction, keys: Iterable[tuple[str, str]]) -> set[str]:
    """The clients having at least one of these keys (the candidates of a blocking)."""
    wanted = set(keys)
    if not wanted:
        return set()
    sql = _sql(tx)
    if sql is None:
        side = _memory(tx).side(MATCH_KEYS)
        return {c for c, ks in side.items() if any(tuple(k) in wanted for k in ks)}
    connection, schema = sql
    t = _in_schema(MATCH_KEYS, schema)
    match = sa.or_(*(sa.and_(t.c.kind == k, t.c.key == v) for k, v in sorted(wanted)))
    return set(connection.execute(sa.select(t.c.client_id).where(match).distinct()).scalars())


def candidate_pairs(tx: Transaction, after: str | None, limit: int) -> list[tuple[str, str]]:
    """Pairs of clients sharing a key, the first id above ``after``, at most ``limit`` firsts.

    A self-join on (kind, key): the database pairs only clients in one block.
    Pairs come sorted, each once (first < second).
    """
    sql = _sql(tx)
    if sql is None:
        by_key: dict[tuple[str, str], set[str]] = {}
        for client, ks in _memory(tx).side(MATCH_KEYS).items():
            for k in ks:
                by_key.setdefault(tuple(k), set()).add(client)
        pairs = {(a, b) for ids in by_key.values() for a in ids for b in ids if a < b}
        picked = set(sorted({a for a, _ in pairs if after is None or a > after})[:limit])
        return sorted(p for p in pairs if p[0] in picked)
    connection, schema = sql
    t = _in_schema(MATCH_KEYS, schema)
    a, b = t.alias("a"), t.alias("b")
    postgres = connection.dialect.name == "postgresql"

    def ordered(column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
        return column.collate("C") if postgres else column

    firsts = sa.select(a.c.client_id).group_by(a.c.client_id)
    if after is not None:
        firsts = firsts.where(ordered(a.c.client_id) > after)
    firsts = firsts.where(
        sa.exists().where(
            b.c.kind == a.c.kind,
            b.c.key == a.c.key,
            ordered(b.c.client_id) > ordered(a.c.client_id),
        )
    )
    chosen = firsts.order_by(ordered(a.c.client_id)).limit(limit).subquery()
    query = (
        sa.select(a.c.client_id.label("first"), b.c.client_id.label("second"))
        .join(b, sa.and_(b.c.kind == a.c.kind, b.c.key == a.c.key))
        .where(a.c.client_id.in_(sa.select(chosen.c.client_id)))
        .where(ordered(b.c.client_id) > ordered(a.c.client_id))
        .distinct()
    )
    return sorted((row.first, row.second) for row in connection.execute(query))


# -- imports, their rows, merges: JSON records by key


def get_record(tx: Transaction, table: str, key: str) -> dict[str, Any] | None:
    sql = _sql(tx)
    if sql is None:
        found = _memory(tx).side(table).get(key)
        return None if found is None else dict(found)
    connection, schema = sql
    t = _in_schema(table, schema)
    column = t.c.id
    data = connection.execute(sa.select(t.c.data).where(column == key)).scalar_one_or_none()
    return None if data is None else dict(data)


def put_record(tx: Transaction, table: str, key: str, data: dict[str, Any]) -> None:
    sql = _sql(tx)
    if sql is None:
        _memory(tx).side_put(table, key, data)
        return
    connection, schema = sql
    t = _in_schema(table, schema)
    extra = {"keep": data["keep"]} if table == MERGES else {}
    updated = connection.execute(sa.update(t).where(t.c.id == key).values(data=data, **extra))
    if updated.rowcount == 0:
        connection.execute(sa.insert(t).values(id=key, data=data, **extra))


def merge_ids(tx: Transaction) -> list[str]:
    """The ids of every merge recorded, sorted."""
    sql = _sql(tx)
    if sql is None:
        return sorted(_memory(tx).side(MERGES))
    connection, schema = sql
    t = _in_schema(MERGES, schema)
    return sorted(connection.execute(sa.select(t.c.id)).scalars())


def put_import_row(
    tx: Transaction, import_id: str, row: int, outcome: str, data: dict[str, Any]
) -> None:
    sql = _sql(tx)
    entry = {"outcome": outcome, **data}
    if sql is None:
        _memory(tx).side_put(IMPORT_ROWS, (import_id, row), entry)
        return
    connection, schema = sql
    t = _in_schema(IMPORT_ROWS, schema)
    where = sa.and_(t.c.import_id == import_id, t.c.row == row)
    connection.execute(sa.delete(t).where(where))
    connection.execute(
        sa.insert(t).values(import_id=import_id, row=row, outcome=outcome, data=entry)
    )


def import_rows(tx: Transaction, import_id: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows an import listed (bad, duplicate, ambiguous), in row order."""
    sql = _sql(tx)
    if sql is None:
        side = _memory(tx).side(IMPORT_ROWS)
        for key in sorted(k for k in side if k[0] == import_id):
            yield key[1], dict(side[key])
        return
    connection, schema = sql
    t = _in_schema(IMPORT_ROWS, schema)
    query = sa.select(t.c.row, t.c.data).where(t.c.import_id == import_id).order_by(t.c.row)
    for row in connection.execute(query):
        yield row.row, dict(row.data)


def delete_client(tx: Transaction, client_id: str) -> None:
    """The client gone with its memberships and keys (a merge took it into another)."""
    _sql(tx)  # refuses a store without these tables
    assert isinstance(tx, SQLAlchemyTransaction | MemoryTransaction)
    tx.delete_client(client_id)
    put_keys(tx, client_id, ())


def delete_timer(tx: Transaction, key: str) -> None:
    _sql(tx)
    assert isinstance(tx, SQLAlchemyTransaction | MemoryTransaction)
    tx.delete_timer(key)


def require(tx: Transaction) -> None:
    """A StoreError unless the store keeps these tables."""
    _sql(tx)


def supported(tx: Transaction) -> bool:
    """Whether the store keeps these tables (the SQL and memory stores; not a plugin's)."""
    return isinstance(tx, SQLAlchemyTransaction | MemoryTransaction)


__all__ = [
    "IMPORTS",
    "IMPORT_ROWS",
    "MATCH_KEYS",
    "MERGES",
    "candidate_pairs",
    "clients_by_keys",
    "delete_client",
    "delete_timer",
    "get_record",
    "import_rows",
    "keys_of",
    "merge_ids",
    "put_import_row",
    "put_keys",
    "put_record",
    "require",
    "supported",
]
