"""The SQL store's hot statements, built once per table and executed with parameters.

Building a SQLAlchemy Core statement (``select(...).where(column == value)``)
and computing its cache key costs several times what the database spends
running it. The statements an event sends again and again (read a record
by key, replace a row, write the idempotency record) are built here once
per table with bound parameters, so each execution only binds values;
SQLAlchemy's compiled cache then finds their SQL at once.
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

# Bound parameter names are prefixed: SQLAlchemy reserves a column's own name in SET/VALUES.


def key_param(name: str) -> str:
    return f"k_{name}"


def value_param(name: str) -> str:
    return f"v_{name}"


def _where(table: sa.Table, keys: tuple[str, ...]) -> sa.ColumnElement[bool]:
    return sa.and_(*(table.c[name] == sa.bindparam(key_param(name)) for name in keys))


@functools.cache
def select_by_key(table: sa.Table, column: str, keys: tuple[str, ...]) -> sa.Select[Any]:
    """``SELECT column FROM table WHERE key = :k_key AND ...``."""
    return sa.select(table.c[column]).where(_where(table, keys))


@functools.cache
def update_by_key(table: sa.Table, keys: tuple[str, ...], values: tuple[str, ...]) -> sa.Update:
    """``UPDATE table SET value = :v_value, ... WHERE key = :k_key AND ...``."""
    return (
        sa.update(table)
        .where(_where(table, keys))
        .values({name: sa.bindparam(value_param(name)) for name in values})
    )


@functools.cache
def delete_by_key(table: sa.Table, keys: tuple[str, ...]) -> sa.Delete:
    return sa.delete(table).where(_where(table, keys))


@functools.cache
def insert(table: sa.Table) -> sa.Insert:
    """``INSERT INTO table``; the columns are those of the parameters given."""
    return sa.insert(table)


@functools.cache
def exists_by_key(table: sa.Table, column: str) -> sa.Select[Any]:
    return (
        sa.select(sa.literal(1)).where(table.c[column] == sa.bindparam(key_param(column))).limit(1)
    )


@functools.cache
def insert_new(table: sa.Table, postgres: bool) -> sa.Insert:
    """``INSERT`` that does nothing on a conflicting key; its rowcount says which it did."""
    dialect = postgresql if postgres else sqlite
    insert: sa.Insert = dialect.insert(table).on_conflict_do_nothing()
    return insert.execution_options(preserve_rowcount=True)


@functools.cache
def insert_new_returning(table: sa.Table, postgres: bool, column: str) -> sa.Insert:
    """``insert_new`` returning ``column`` of each row it wrote (for a multi-row INSERT)."""
    return insert_new(table, postgres).returning(table.c[column])


@functools.cache
def revive(table: sa.Table, postgres: bool, revivable: sa.ColumnElement[bool]) -> sa.Insert:
    """``INSERT``, or on a conflicting primary key an update to the new values where
    ``revivable`` holds of the row there (an upsert); its rowcount says whether it wrote."""
    dialect = postgresql if postgres else sqlite
    insert = dialect.insert(table)
    keys = {column.name for column in table.primary_key.columns}
    values = {c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys}
    upsert: sa.Insert = insert.on_conflict_do_update(
        index_elements=sorted(keys), set_=values, where=revivable
    )
    return upsert.execution_options(preserve_rowcount=True)


__all__ = [
    "delete_by_key",
    "exists_by_key",
    "insert",
    "insert_new",
    "insert_new_returning",
    "key_param",
    "revive",
    "select_by_key",
    "update_by_key",
    "value_param",
]
