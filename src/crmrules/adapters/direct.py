"""The SQL store's hot statements sent straight to the driver, their SQL rendered once.

SQLAlchemy's ``Connection.execute`` does for every execution what these
statements need only once: it looks the compiled form up in its cache,
builds an execution context, works out each parameter's processor and
the result's, and dispatches events. For the few statements an event
sends (its first read, its result, its audit rows, a row written by key)
that costs several times what SQLite takes to run them. A ``Prepared``
holds what that work gives, for one statement, dialect and set of
parameter names (the SQL text, the parameters' order and processors, the
result columns' processors); ``execute`` then binds the values and calls
the driver's cursor on the connection's own DBAPI connection, inside the
transaction SQLAlchemy began, so savepoints, commit and rollback are
SQLAlchemy's as before.

What stays as with ``Connection.execute``: the values go through the same
type processors (the same JSON text, the same UTC moments); a driver error
goes through the connection's own handling (wrapped as ``DBAPIError``, a
lost connection invalidated, ``handle_error`` hooks); and a connection or
engine with ``before_cursor_execute`` / ``after_cursor_execute`` listeners
(a host's tracing, logging) gets the statement through
``Connection.exec_driver_sql``, the same SQL and parameters, so its
listeners see every statement with a real execution context.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.crud import REQUIRED as _REQUIRED  # a bound value still to be given

Processor = Callable[[Any], Any] | None
#: a parameter the statement has no value of its own for, and the caller gave none
_MISSING = object()


class Prepared:
    """One statement compiled for one dialect (and, for an INSERT, one set of columns)."""

    __slots__ = ("_binds", "_names", "_positional", "_processed", "results", "sql")

    def __init__(
        self, statement: sa.Executable, dialect: Dialect, keys: tuple[str, ...] | None
    ) -> None:
        compiled = statement.compile(  # type: ignore[attr-defined]
            dialect=dialect, column_keys=list(keys) if keys is not None else None
        )
        if compiled.escaped_bind_names or any(
            bind.expanding or bind.literal_execute for bind in compiled.binds.values()
        ):
            raise ValueError("a prepared statement takes plain bound parameters only")
        self.sql: str = compiled.string
        defaults = compiled.construct_params(_check=False)
        processors = compiled._bind_processors  # what Core itself applies
        names = compiled.positiontup if dialect.positional else list(defaults)
        #: (name, processor, the statement's own value, else _MISSING) in the driver's order
        self._binds: tuple[tuple[str, Processor, Any], ...] = tuple(
            (
                name,
                processors.get(name),
                _MISSING if defaults[name] is _REQUIRED else defaults[name],
            )
            for name in names
        )
        self._names = tuple(names)
        #: (position, processor) of each parameter that has one
        self._processed = tuple(
            (index, process) for index, (_, process, _) in enumerate(self._binds) if process
        )
        self._positional = dialect.positional
        #: each result column's processor (None: the driver's value as it is)
        self.results: tuple[Processor, ...] = tuple(
            column.type._cached_result_processor(dialect, None)
            for column in getattr(compiled, "_result_columns", ())
        )

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """``values`` (by name) as the driver takes them, each through its type's processor."""
        out = [values.get(name, own) for name, _, own in self._binds]
        if _MISSING in out:  # equal to nothing but itself
            missing = [
                name for name, value in zip(self._names, out, strict=True) if value is _MISSING
            ]
            raise KeyError(f"no value for the bound parameter(s) {', '.join(missing)}")
        for index, process in self._processed:
            out[index] = process(out[index])
        if self._positional:
            return tuple(out)
        return dict(zip(self._names, out, strict=True))

    def row(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """A result row with each column through its processor."""
        return tuple(
            value if process is None else process(value)
            for process, value in zip(self.results, row, strict=True)
        )


@functools.lru_cache(maxsize=1024)  # by dialect: each engine has its own (its JSON serializer)
def prepared(statement: sa.Executable, dialect: Dialect, keys: tuple[str, ...] | None) -> Prepared:
    """The ``Prepared`` of a statement built once (``crmrules.adapters.statements``)."""
    return Prepared(statement, dialect, keys)


def _listened(connection: sa.Connection) -> bool:
    """Someone listens to the statements sent (a ``begin`` listener does not count)."""
    if not (connection._has_events or connection.engine._has_events):
        return False
    dispatch = connection.dispatch
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)


def execute(
    connection: sa.Connection,
    statement: sa.Executable,
    values: Mapping[str, Any],
    *,
    keys: tuple[str, ...] | None = None,
) -> tuple[int, list[tuple[Any, ...]]]:
    """Run ``statement`` with ``values``: the rows it changed (-1: unknown) and the rows it
    returned. ``keys``: the columns of an INSERT whose columns are those given."""
    plan = prepared(statement, connection.dialect, keys)
    parameters = plan.parameters(values)
    if _listened(connection):
        result = connection.exec_driver_sql(plan.sql, parameters)
        rows = [plan.row(r) for r in result.fetchall()] if result.returns_rows else []
        return result.rowcount, rows
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(plan.sql, parameters)
        rows = [plan.row(r) for r in cursor.fetchall()] if cursor.description else []
        return cursor.rowcount, rows
    except Exception as error:
        connection._handle_dbapi_exception(  # wraps, invalidates, runs hooks
            error, plan.sql, parameters, cursor, None
        )
        raise  # not reached: the handler always raises
    finally:
        cursor.close()


def execute_many(
    connection: sa.Connection,
    statement: sa.Executable,
    rows: Iterable[Mapping[str, Any]],
    *,
    keys: tuple[str, ...] | None = None,
) -> None:
    """Run ``statement`` once per row, as one executemany."""
    plan = prepared(statement, connection.dialect, keys)
    parameters = [plan.parameters(row) for row in rows]
    if _listened(connection):
        connection.exec_driver_sql(plan.sql, parameters)
        return
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(plan.sql, parameters)  # type: ignore[arg-type]
    except Exception as error:
        connection._handle_dbapi_exception(error, plan.sql, parameters, cursor, None)
        raise
    finally:
        cursor.close()


def execute_text(connection: sa.Connection, sql: str) -> None:
    """Run SQL text that takes no parameters and returns nothing (``BEGIN IMMEDIATE``)."""
    if _listened(connection):
        connection.exec_driver_sql(sql)
        return
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    except Exception as error:
        connection._handle_dbapi_exception(error, sql, (), cursor, None)
        raise
    finally:
        cursor.close()


__all__ = ["Prepared", "execute", "execute_many", "execute_text", "prepared"]
