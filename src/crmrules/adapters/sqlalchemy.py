"""The SQL store: SQLite by default, PostgreSQL in production, through SQLAlchemy 2.

Each record is one row: the columns the store queries (ids, keys, status,
moments to sort by) plus a JSON ``data`` column holding the whole record, so a
field added to a model later needs no migration (crmrules.adapters.tables). The tables (all named
``crmrules_*``) are created and upgraded by the Alembic migrations shipped in
``crmrules/adapters/migrations`` (see ``crmrules.adapters.migrate``); a store
never creates tables in a server database by itself, only in the embedded
SQLite file.

Concurrency: on PostgreSQL ``lock_subject``, ``get_rotation`` and ``lock_timer``
take row locks (``SELECT ... FOR UPDATE``), ``claim_timers`` skips the timers
another worker is claiming (``FOR UPDATE SKIP LOCKED``), and unique-key races,
serialization failures and deadlocks end in ``ConflictError``, which the engine
retries. On SQLite every transaction starts with ``BEGIN IMMEDIATE``, so
writers simply take turns. See docs/storage.md.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from crmrules.adapters import (
    audit_rows,
    client_values,
    deferred,
    direct,
    json_values,
    prefetch,
    record_cache,
    row_cache,
    statements,
    timer_claims,
)
from crmrules.adapters.host import HostRecords
from crmrules.adapters.tables import Base, Tables, UTCDateTime, metadata, tables_in
from crmrules.campaigns import Campaign, Request, StageMove
from crmrules.errors import SchemaError, StoreError, require
from crmrules.model import (
    Client,
    Contact,
    Deal,
    Interaction,
    Mailing,
    Manager,
    MembershipSource,
    Task,
    TaskStatus,
    TerritoryMembership,
)
from crmrules.rules import segments
from crmrules.rules.why import Miss
from crmrules.store import (
    AuditEntry,
    ConflictError,
    FailureStatus,
    MessageStatus,
    OutboxMessage,
    RuleFailure,
    Timer,
    TimerStatus,
)

#: Where the embedded store lives when nothing else is configured: a file in the current folder.
DEFAULT_URL = "sqlite:///crmrules.sqlite3"
#: crmrules' own Alembic version table, so a host's Alembic history is never touched.
VERSION_TABLE = "crmrules_alembic_version"
#: How long a SQLite writer waits for another one before giving up.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
#: SQLite ``synchronous`` settings a store may ask for: NORMAL (the default, in WAL mode
#: durable across process crashes; a power loss may lose the last transactions) or FULL
#: (an fsync at every commit, durable across power loss).
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL")
#: How long connecting to a server may take before crmrules reports it unreachable.
CONNECT_TIMEOUT_SECONDS = 5

M = TypeVar("M", bound=BaseModel)


# -- values in JSON (crmrules.adapters.json_values)

encode, decode = json_values.encode, json_values.decode
_dump, _load, _fresh = json_values.dump, json_values.load, json_values.fresh


# -- engines and errors a person reads


def display_url(url: str | sa.URL) -> str:
    """The URL to show a person: its password replaced by ``***``."""
    if isinstance(url, sa.URL):
        return url.render_as_string(hide_password=True)
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        # Not a URL, but it may still hold a password: hide whatever follows "user:".
        scheme, separator, rest = url.rpartition("://")
        if "@" in rest:
            userinfo, host = rest.rsplit("@", 1)
            if ":" in userinfo:
                rest = f"{userinfo.split(':', 1)[0]}:***@{host}"
        return f"{scheme}{separator}{rest}"


#: ``display_url`` of an engine's URL, worked out once (not at every transaction)
_engine_shown = functools.lru_cache(maxsize=64)(display_url)


def _one_line(text: str, url: sa.URL | None = None) -> str:
    """A driver's message as one line, without the URL's password should it contain it."""
    line = " ".join(str(text).split())
    if url is not None and url.password:
        line = line.replace(str(url.password), "***")
    return line


def parse_url(url: str | sa.URL) -> sa.URL:
    """A SQLAlchemy URL, or a StoreError that shows what a URL looks like."""
    if isinstance(url, sa.URL):
        return url
    try:
        return sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise StoreError(
            f"{display_url(url)!r} is not a database URL. crmrules expects a URL such as "
            f"{DEFAULT_URL} (a SQLite file in the current folder) or "
            "postgresql+psycopg://user:password@host:5432/dbname (PostgreSQL)."
        ) from None


def _is_sqlite_memory(url: sa.URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in (url.database or "")


def sqlite_file(url: sa.URL) -> Path | None:
    """The file a ``sqlite:///`` URL names; None for an in-memory database."""
    if url.get_backend_name() != "sqlite" or _is_sqlite_memory(url) or url.database is None:
        return None
    if url.database.startswith("file:"):
        return Path(url.database[5:].split("?", 1)[0])
    return Path(url.database)


def make_engine(url: str | sa.URL, *, sqlite_synchronous: str = "NORMAL") -> sa.Engine:
    """An engine set up the way crmrules needs it; hosts may use it for their own engine too.

    SQLite: WAL with ``synchronous=NORMAL`` (durable across process crashes;
    after a power loss the last transactions may be lost; ``"FULL"`` waits
    for the disk at every commit instead), foreign keys, a 30 s busy timeout, usable from several
    threads, and every transaction begins with BEGIN IMMEDIATE so two writers
    take turns instead of failing halfway (SQLAlchemy's recipe for pysqlite,
    which also makes SAVEPOINTs work). PostgreSQL: psycopg 3 (``postgresql://``
    means ``postgresql+psycopg://``) with a 5 s connect timeout.
    """
    parsed = parse_url(url)
    shown = display_url(url)
    synchronous = sqlite_synchronous.upper()
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise StoreError(
            f"sqlite_synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}, "
            f"not {sqlite_synchronous!r}"
        )
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if parsed.drivername == "postgresql+psycopg":
        require("psycopg", "postgresql", f"crmrules on {shown}")  # the optional extra
        if "connect_timeout" not in parsed.query:
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    if backend == "sqlite":
        kwargs["connect_args"] = {
            "check_same_thread": False,
            "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
        }
        if _is_sqlite_memory(parsed):
            kwargs["poolclass"] = sa.pool.StaticPool  # one connection holds the whole database
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except sa.exc.NoSuchModuleError:
        raise StoreError(
            f"crmrules cannot open {shown}: SQLAlchemy has no database driver called "
            f"{parsed.drivername!r}. Use a URL such as {DEFAULT_URL} (SQLite) or "
            "postgresql+psycopg://user:password@host:5432/dbname (PostgreSQL)."
        ) from None
    except ImportError as error:
        raise StoreError(
            f"crmrules cannot open {shown}: the Python package for the {parsed.drivername!r} "
            f"driver is not installed ({error}). Install it with pip, or use "
            "postgresql+psycopg://... (pip install 'crmrules[postgresql]')."
        ) from None
    if engine.dialect.driver == "pysqlite":
        _configure_sqlite(engine, synchronous)
    return engine


def _configure_sqlite(engine: sa.Engine, synchronous: str) -> None:
    @sa.event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def begin(connection: sa.Connection) -> None:
        # Take the write lock now: a reader that upgrades to writer later could deadlock.
        direct.execute_text(connection, "BEGIN IMMEDIATE")


def connect(engine: sa.Engine, shown: str | None = None) -> sa.Connection:
    """A connection, or a StoreError that says why the database cannot be reached.

    ``shown`` is the URL as the person wrote it (password hidden), if it differs from the engine's.
    """
    try:
        return engine.connect()
    except sa.exc.DBAPIError as error:
        raise StoreError(_connect_problem(engine.url, shown, error)) from error


def _connect_problem(url: sa.URL, shown: str | None, error: sa.exc.DBAPIError) -> str:
    shown = shown or display_url(url)
    reason = _one_line(str(error.orig), url)
    low = reason.lower()
    if url.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        where = f" ({path.resolve()})" if path is not None else ""
        return (
            f"crmrules could not open the SQLite database {shown}{where}: {reason}. "
            "Check that its folder exists and is writable, or choose another path."
        )
    unknown_user = "role" in low and "does not exist" in low
    if unknown_user or "authentication failed" in low or "no password supplied" in low:
        return (
            f"crmrules could not log in to {shown}: the server refused the user name or "
            f"password ({reason}). Check the user and password in the URL "
            "(or PGPASSWORD / ~/.pgpass)."
        )
    if "does not exist" in low and "database" in low:
        return (
            f"The database named in {shown} does not exist on the server ({reason}). "
            "Create it (for example with createdb) or correct the name at the end of the URL."
        )
    if "refused" in low:
        why = "the connection was refused"
    elif "timeout" in low or "timed out" in low:
        why = f"the server did not answer within {CONNECT_TIMEOUT_SECONDS} seconds"
    elif "translate host name" in low or "name or service not known" in low:
        why = "the host name could not be resolved"
    else:
        why = reason
    return (
        f"crmrules could not connect to the database server of {shown}: {why}. "
        "Check that the server is running and that the host and port in the URL are right."
    )


def _conflict(error: BaseException) -> ConflictError | None:
    """A ConflictError if ``error`` is a race another transaction won; the call may be retried."""
    if not isinstance(error, sa.exc.DBAPIError):
        return None
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg
    sqlite_name = getattr(orig, "sqlite_errorname", None)
    if isinstance(error, sa.exc.IntegrityError):
        unique = sqlstate == "23505" or sqlite_name in (
            "SQLITE_CONSTRAINT_UNIQUE",
            "SQLITE_CONSTRAINT_PRIMARYKEY",
        )
        if not unique and (sqlstate is not None or sqlite_name is not None):
            return None  # another constraint: a bug, not a race
    elif sqlstate not in ("40001", "40P01") and sqlite_name not in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return None
    reason = _one_line(str(orig))
    return ConflictError(
        f"another transaction changed the same rows at the same time ({reason}); "
        "nothing was written and the call can be retried"
    )


def _translated(error: BaseException, shown: str) -> BaseException:
    """A driver error as ConflictError (a race) or StoreError (the database failed); else as is.

    The host gets one crmrules error it can catch, never a raw driver
    exception; the driver's own is kept as ``__cause__``.
    """
    conflict = _conflict(error)
    if conflict is not None:
        return conflict
    if isinstance(error, sa.exc.DBAPIError):
        reason = _one_line(str(error.orig))
        return StoreError(
            f"the database {shown} failed in the middle of a call ({reason}); nothing of the "
            "call was written. Try again once the database is reachable."
        )
    return error


# -- the store


class _Scope(Protocol):
    """A database transaction or savepoint, of a Connection or of a Session."""

    @property
    def is_active(self) -> bool: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class SQLAlchemyStore:
    """The Store protocol on a SQL database.

    ``url_or_engine`` is a URL (the store makes the engine and disposes of
    it in ``close()``), a host's Engine (never disposed of by the store), or a
    host's Connection or Session: then each ``transaction()`` is a SAVEPOINT
    inside the host's transaction, so crmrules' effects commit or roll back
    with the host's own writes, and only the host commits.

    ``records`` (crmrules.adapters.host) keeps clients and deals in the host's
    own tables instead of crmrules'.

    ``schema`` is the PostgreSQL schema that holds the crmrules tables. With
    ``check_schema`` the constructor checks the tables' migration revision;
    a SQLite URL whose file is new or has no crmrules tables is migrated on
    the spot, any other database must be upgraded with ``crmrules db upgrade``.
    """

    def __init__(
        self,
        url_or_engine: str | sa.URL | sa.Engine | sa.Connection | Session,
        *,
        schema: str | None = None,
        check_schema: bool = True,
        records: HostRecords | None = None,
        sqlite_synchronous: str = "NORMAL",
    ) -> None:
        self._records = records
        self._engine: sa.Engine | None = None
        self._connection: sa.Connection | None = None
        self._session: Session | None = None
        self._owns_engine = False
        self._closed = False
        self._lock: threading.RLock | None = None
        if isinstance(url_or_engine, str | sa.URL):
            self._engine = make_engine(url_or_engine, sqlite_synchronous=sqlite_synchronous)
            self._owns_engine = True
            self._shown = display_url(url_or_engine)
        elif isinstance(url_or_engine, sa.Engine):
            self._engine = url_or_engine
            self._shown = display_url(url_or_engine.url)
        elif isinstance(url_or_engine, sa.Connection):
            self._connection = url_or_engine
            self._shown = display_url(url_or_engine.engine.url)
        elif isinstance(url_or_engine, Session):
            self._session = url_or_engine
            self._shown = display_url(url_or_engine.get_bind().engine.url)
        else:
            raise TypeError(
                "SQLAlchemyStore takes a database URL, an Engine, a Connection or a Session, "
                f"not {type(url_or_engine).__name__}"
            )
        try:
            self._setup(schema, check_schema)
        except BaseException:
            self.close()
            raise

    def _setup(self, schema: str | None, check_schema: bool) -> None:
        dialect = self._dialect()
        if schema is not None and dialect.name == "sqlite":
            raise StoreError(
                f"A SQLite database has no schemas, but schema {schema!r} was given for "
                f"{self._shown}. Leave the schema out, or use PostgreSQL."
            )
        self._schema = schema
        self._tables = tables_in(schema)
        #: records validated from their rows' JSON, kept across transactions
        self._validated = record_cache.ValidatedRows()
        self._row_locks = dialect.name != "sqlite"  # BEGIN IMMEDIATE already serialises SQLite
        if self._engine is not None and isinstance(self._engine.pool, sa.pool.StaticPool):
            self._lock = threading.RLock()  # one shared connection: one transaction at a time
        if check_schema:
            self._check_schema()

    def _dialect(self) -> Dialect:
        if self._engine is not None:
            return self._engine.dialect
        if self._connection is not None:
            return self._connection.dialect
        assert self._session is not None
        return self._session.get_bind().dialect

    def _check_schema(self) -> None:
        # Imported here, not at the top: migrate imports this module.
        from crmrules.adapters import migrate

        target: sa.Engine | sa.Connection
        if self._engine is not None:
            target = self._engine
        elif self._connection is not None:
            target = self._connection
        else:
            assert self._session is not None
            target = self._session.connection()
        embedded = self._owns_engine and self._dialect().name == "sqlite"
        if embedded and migrate.current(target, schema=self._schema) is None:
            migrate.upgrade(target, schema=self._schema)  # the embedded default just works
            return
        migrate.check(target, schema=self._schema, shown=self._shown)

    @property
    def records(self) -> HostRecords | None:
        """The host tables that keep clients and deals; None: crmrules' own tables."""
        return self._records

    @property
    def engine(self) -> sa.Engine | None:
        """The engine the store connects with; None when it works in a host's transaction."""
        return self._engine

    @contextmanager
    def transaction(self) -> Iterator[SQLAlchemyTransaction]:
        """Begin; commit when the block ends; roll back (and re-raise) if it raises.

        A race another transaction won (a unique key, a serialization failure,
        a deadlock) is raised as ConflictError after the rollback.
        """
        if self._closed:
            raise StoreError(f"The store for {self._shown} is closed.")
        if self._session is not None:
            nested = self._session.begin_nested()
            yield from self._run(self._session.connection(), nested)
        elif self._connection is not None:
            yield from self._run(self._connection, self._connection.begin_nested())
        else:
            assert self._engine is not None
            with self._lock or nullcontext(), connect(self._engine, self._shown) as connection:
                try:
                    scope = connection.begin()  # BEGIN IMMEDIATE on SQLite: may time out
                except sa.exc.DBAPIError as error:
                    raise _translated(error, self._shown) from error
                yield from self._run(connection, scope)

    def _run(self, connection: sa.Connection, scope: _Scope) -> Iterator[SQLAlchemyTransaction]:
        try:
            transaction = SQLAlchemyTransaction(
                connection,
                self._tables,
                row_locks=self._row_locks,
                records=self._records,
                validated=self._validated,
            )
            yield transaction
            transaction.flush()
            scope.commit()
        except BaseException as error:
            if scope.is_active:
                with suppress(Exception):  # a failed rollback: the first error is the one to report
                    scope.rollback()
            translated = _translated(error, self._shown)
            if translated is error:
                raise
            raise translated from error

    def close(self) -> None:
        """Dispose of the engine the store made; a host's engine, connection or session stays."""
        if self._owns_engine and self._engine is not None and not self._closed:
            self._engine.dispose()
        self._closed = True

    def __enter__(self) -> SQLAlchemyStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _territories(memberships: list[TerritoryMembership]) -> frozenset[str]:
    """A host-kept client's territories: crmrules' memberships, not a host column."""
    return frozenset(
        m.territory
        for m in memberships
        if m.source is not MembershipSource.MANUAL_REMOVE and not segments.is_segment(m)
    )


#: Rows held back as new met rows already stored: the batch must be done again, not deferred.
TasksExisted = deferred.RowsExisted


_insert_new = statements.insert_new
key_param = statements.key_param


@functools.cache
def _revivable(t: sa.Table) -> sa.ColumnElement[bool]:
    """A timer cancelled before it fell due: planning its key again revives it."""
    return sa.and_(
        t.c.status == TimerStatus.CANCELLED.value,
        t.c.data["fired_at"].as_string().is_(None),
    )


def _where_given(
    query: sa.Select[Any], *conditions: tuple[sa.ColumnElement[Any], object]
) -> sa.Select[Any]:
    """``query`` filtered by each (column, value) whose value is not None."""
    for column, value in conditions:
        if value is not None:
            query = query.where(column == value)
    return query


class SQLAlchemyTransaction:
    """One unit of work on a SQLAlchemyStore: statements on one connection, in one transaction."""

    def __init__(
        self,
        connection: sa.Connection,
        tables: Tables,
        *,
        row_locks: bool,
        records: HostRecords | None = None,
        validated: record_cache.ValidatedRows | None = None,
    ) -> None:
        self._c = connection
        self._records = records
        self._t = tables
        self._row_locks = row_locks
        self._postgres = connection.dialect.name == "postgresql"
        #: what a JSON column's text is parsed with (as the dialect's own result processor)
        self._loads: Callable[[str], Any] = connection.dialect._json_deserializer or json.loads
        # The JSON of the records read or written by id in this transaction (None: no such
        # record). The engine reads the same client, deal and managers many times per event;
        # this saves a round trip each time, and every read returns a fresh model all the same.
        self._seen = row_cache.RowCache()
        #: the record last validated from each row's data in ``_seen`` (the same object)
        # (a client's pydantic validation, e-mail parsing included, costs more than the read)
        self._loaded: dict[tuple[str, str], tuple[dict[str, Any], Any]] = {}
        #: the records validated in the store's earlier transactions, by their rows' JSON text
        self._shared = validated if validated is not None else record_cache.ValidatedRows()
        #: the JSON text of the rows ``_read_subject`` read, with the data it parsed to
        self._texts: dict[tuple[str, str], tuple[str, Any]] = {}
        #: the record lent from ``_loaded`` for each row and its flat record (``lend_client``)
        self._lent: dict[tuple[str, str], tuple[Any, Mapping[str, Any]]] = {}
        # Audit rows wait here and go in as one multi-row INSERT (an event writes about ten).
        self._audit: list[dict[str, Any]] = []
        self._audit_rows = audit_rows.Rows(connection.dialect)
        # Rows held back for one multi-row statement each (see ``deferred_writes``); None:
        # every write goes at once.
        self._deferred: deferred.Deferred | None = None
        # What ``prepare_calls`` locked and read for the calls of a batch.
        self._locked_subjects: set[tuple[str | None, str | None]] = set()
        self._locked_timers: set[str] = set()
        self._results: dict[str, Any] = {}
        # The subject ``lock_subject`` was given: ``event_result`` reads it with the result.
        self._subject: tuple[str | None, str | None] | None = None

    @property
    def _shown(self) -> str:
        """The database as error messages name it (worked out when one is raised)."""
        return _engine_shown(self._c.engine.url)

    # -- what crmrules.selection queries

    @property
    def connection(self) -> sa.Connection:
        """The connection, for queries of their own (the rows held back are written first)."""
        self._settle()
        return self._c

    @property
    def tables(self) -> Tables:
        return self._t

    @property
    def records(self) -> HostRecords | None:
        """The host tables that keep clients and deals; None: crmrules' own tables."""
        return self._records

    @property
    def indexes_clients(self) -> bool:
        """Clients are in crmrules' tables (with their values), not a host's own."""
        return self._records is None or self._records.clients is None

    def ordered_id(self, column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
        """``column`` compared and sorted by code point, as Python sorts strings."""
        return self._by_id(column)

    def lock_clients(self, ids: list[str]) -> None:
        """Row locks on these clients (crmrules' own table), in one statement, in id order."""
        if self._row_locks and ids:
            t = self._t.clients
            query = sa.select(t.c.id).where(t.c.id.in_(ids)).order_by(t.c.id)
            self._c.execute(query.with_for_update()).all()

    def load_clients(self, ids: list[str]) -> list[Client]:
        """The clients with these ids (those that exist), in id order; later reads of them
        in this transaction need no round trip."""
        t = self._t.clients
        rows = self._c.execute(sa.select(t.c.id, t.c.data).where(t.c.id.in_(ids))).all()
        found = {row.id: row.data for row in rows}
        for client_id in ids:
            self._seen[t.name, client_id] = found.get(client_id)
        clients = []
        for client_id in sorted(found):
            client = _load(Client, found[client_id])
            self._loaded[t.name, client_id] = (found[client_id], client)
            clients.append(_fresh(client))
        return clients

    # -- helpers

    def _settle(self) -> None:
        """Write the rows held back (see ``deferred_writes``), before a statement that may
        read their tables."""
        if self._deferred:
            self._deferred.write(self._c)

    def flush(self) -> None:
        """Write the rows held back and the audit rows added since the last flush (the
        store does it before commit)."""
        self._settle()
        if self._audit:
            rows, self._audit = self._audit, []
            audit_rows.write(self._c, self._t.audit, rows)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A SAVEPOINT: the block's writes are rolled back alone if it raises.

        Driver errors from the block come out as StoreError or ConflictError,
        after the rollback to the savepoint (or, if even that fails, with
        the whole transaction lost: the caller must not go on).
        """
        self.flush()  # rows added before the savepoint must not be rolled back with it
        audit = len(self._audit)
        try:
            nested = self._c.begin_nested()
        except sa.exc.DBAPIError as error:
            raise _translated(error, self._shown) from error
        self._seen.mark()
        try:
            yield
        except BaseException as error:
            self._seen.rollback()
            del self._audit[audit:]  # the block's audit rows, not yet written, go with it
            if self._deferred is not None:
                self._deferred.clear()  # all held back in the block (settled at its start)
            if nested.is_active:
                try:
                    nested.rollback()
                except sa.exc.DBAPIError as failed:
                    raise _translated(failed, self._shown) from error
            translated = _translated(error, self._shown)
            if translated is error:
                raise
            raise translated from error
        self._seen.release()
        try:
            nested.commit()  # RELEASE SAVEPOINT
        except sa.exc.DBAPIError as error:
            raise _translated(error, self._shown) from error

    def _put(self, table: sa.Table, key: dict[str, Any], values: dict[str, Any]) -> None:
        """Replace the row with ``key``, or insert it; the same two statements on every database."""
        params = {statements.key_param(name): value for name, value in key.items()}
        params.update((statements.value_param(name), value) for name, value in values.items())
        update = statements.update_by_key(table, tuple(key), tuple(values))
        updated, _ = direct.execute(self._c, update, params)
        if updated == 0:
            row = {**key, **values}
            direct.execute(self._c, statements.insert(table), row, keys=tuple(row))
        if len(key) == 1 and "data" in values:
            self._seen[table.name, next(iter(key.values()))] = values["data"]

    def _add_new(self, table: sa.Table, column: str, key: str, values: dict[str, Any]) -> bool:
        """Insert the row unless one with its key (or another unique value) is there."""
        row = {column: key, **values}
        insert = _insert_new(table, self._postgres)
        added = direct.execute(self._c, insert, row, keys=tuple(row))[0] == 1
        if added:
            self._seen[table.name, key] = values["data"]
        return added

    def _data(self, table: sa.Table, key: str) -> Any:
        """The JSON ``data`` of the row with ``key`` (None: no such row), read once."""
        if (table.name, key) in self._seen:
            return self._seen[table.name, key]
        column = table.primary_key.columns.values()[0].name
        query = statements.select_by_key(table, "data", (column,))
        data = self._seen[table.name, key] = self._scalar(query, {key_param(column): key})
        return data

    def _validated(self, model: type[M], table: sa.Table, key: str) -> M | None:
        """The record of the row with ``key``, validated once per row's data: the
        transaction's own, to copy or lend, never to change."""
        data = self._data(table, key)
        if data is None:
            return None
        loaded = self._loaded.get((table.name, key))
        if loaded is None or loaded[0] is not data:
            loaded = self._loaded[table.name, key] = (data, _load(model, data))
            read = self._texts.get((table.name, key))
            if read is not None and read[1] is data:  # as read: kept for later transactions
                self._shared.keep((table.name, key), read[0], data, loaded[1])
        return loaded[1]

    def _get(self, model: type[M], table: sa.Table, key: str) -> M | None:
        if model is not Client and model is not Deal:
            data = self._data(table, key)
            return None if data is None else _load(model, data)
        # A client or deal is read several times per event: validated once per row's data.
        record = self._validated(model, table, key)
        return None if record is None else _fresh(record)

    def _lend(
        self, model: type[M], table: sa.Table, key: str
    ) -> tuple[M, Mapping[str, Any]] | None:
        """The validated record itself and its flat record, made once per row's data (see
        ``lend_client``)."""
        record = self._validated(model, table, key)
        if record is None:
            return None
        lent = self._lent.get((table.name, key))
        if lent is None or lent[0] is not record:
            lent = self._lent[table.name, key] = (record, json_values.flat_record(record))
        return lent

    def _scalar(self, query: sa.Select[Any], values: dict[str, Any]) -> Any:
        """The one column of the one row ``query`` finds (None: no row)."""
        _, rows = direct.execute(self._c, query, values)
        return rows[0][0] if rows else None

    def _list(self, model: type[M], query: sa.Select[Any]) -> list[M]:
        return [_load(model, data) for data in self._c.execute(query).scalars()]

    def _by_id(self, column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
        """Order ids by code point, as Python sorts strings, whatever the database collation."""
        return column.collate("C") if self._postgres else column

    # -- records

    def lock_subject(self, client_id: str | None, deal_id: str | None) -> None:
        """Row locks on the deal, then on its client and ``client_id``, sorted (no deadlocks).

        The next ``event_result`` reads the subject with the result (crmrules.adapters.prefetch).
        """
        own = self._records is None
        self._subject = (client_id, deal_id) if own and (client_id or deal_id) else None
        if not self._row_locks or (client_id, deal_id) in self._locked_subjects:
            return
        if own:
            prefetch.lock_subject(self._c, self._t, client_id, deal_id)
            return
        t = self._t
        clients = {client_id} if client_id is not None else set()
        if deal_id is not None:
            if self._records is not None and self._records.deals is not None:
                owner = self._records.lock_deal(self._c, deal_id)
            else:
                query = sa.select(t.deals.c.client_id).where(t.deals.c.id == deal_id)
                owner = self._c.execute(query.with_for_update()).scalar_one_or_none()
            if owner is not None:
                clients.add(owner)
        for client in sorted(clients):
            if self._records is not None and self._records.clients is not None:
                self._records.lock_client(self._c, client)
                continue
            query = sa.select(t.clients.c.id).where(t.clients.c.id == client)
            self._c.execute(query.with_for_update())

    def prepare_calls(
        self,
        calls: list[tuple[str, str | None, str | None]],
        timers: list[str],
        *,
        results: bool = True,
    ) -> None:
        """For a batch of engine calls to come in this transaction (event id, client id, deal
        id each): lock their subjects and ``timers`` and read them, with the calls' results
        and the clients' managers, in five statements for the batch instead of about three
        per call (crmrules.adapters.prefetch). Each call's ``lock_subject``, ``event_result``
        and ``lock_timer`` then send nothing. Taken at the top of the transaction (not in a
        savepoint, whose rollback would release the locks); with host tables, nothing.

        ``results=False``: the calls' results are taken as absent without a read, for a
        batch whose results are written as plain INSERTs at its end: a result kept from
        before then fails that INSERT, and the caller undoes the batch."""
        if self._records is not None or self._seen.marked:
            return
        self._settle()
        found = prefetch.read_calls(
            self._c, self._t, calls, timers, lock=self._row_locks, results=results
        )
        t = self._t
        for table, rows in ((t.deals, found.deals), (t.clients, found.clients)):
            for key, data in rows.items():
                self._seen.setdefault((table.name, key), data)  # a write of this transaction wins
        for key, data in found.managers.items():
            self._seen.setdefault((t.managers.name, key), data)
        for key, data in found.timers.items():
            self._seen[t.timers.name, key] = data  # as lock_timer reads it: from the database
        self._locked_timers.update(found.timers)
        self._results.update(found.results)
        self._locked_subjects.update((client, deal) for _, client, deal in calls)

    def get_client(self, client_id: str) -> Client | None:
        if self._records is not None and self._records.clients is not None:
            memberships = self.memberships(client_id)
            return self._records.get_client(
                self._c, client_id, _territories(memberships), segments.members(memberships)
            )
        return self._get(Client, self._t.clients, client_id)

    def lend_client(self, client_id: str) -> tuple[Client, Mapping[str, Any]] | None:
        """The client as this transaction validated it and its flat record (``Client.record``),
        to read, not change: what the engine's evaluation of an event reads
        (``crmrules.run.Run.view``), without the copy ``get_client`` makes."""
        if self._records is not None and self._records.clients is not None:
            client = self.get_client(client_id)  # a host's record: a copy of its own
            return None if client is None else (client, client.record())
        return self._lend(Client, self._t.clients, client_id)

    def lend_deal(self, deal_id: str) -> tuple[Deal, Mapping[str, Any]] | None:
        """The deal, to read, not change (see ``lend_client``)."""
        if self._records is not None and self._records.deals is not None:
            deal = self.get_deal(deal_id)
            return None if deal is None else (deal, deal.record())
        return self._lend(Deal, self._t.deals, deal_id)

    def lend_manager(self, manager_id: str) -> tuple[Manager, Mapping[str, Any]] | None:
        """The manager, to read, not change (see ``lend_client``)."""
        return self._lend(Manager, self._t.managers, manager_id)

    def put_client(self, client: Client) -> None:
        if self._records is not None and self._records.clients is not None:
            self._records.put_client(self._c, client)
            return
        self._put(self._t.clients, {"id": client.id}, {"data": _dump(client)})
        client_values.write_one(self._c, self._t.client_values, client)

    def iter_clients(self) -> Iterator[Client]:
        if self._records is not None and self._records.clients is not None:
            ids = self._records.client_ids(self._c)
            return (c for c in (self.get_client(i) for i in ids) if c is not None)
        t = self._t.clients
        rows = self._c.execute(sa.select(t.c.data).order_by(self._by_id(t.c.id))).scalars().all()
        return (_load(Client, data) for data in rows)

    def client_ids(self) -> list[str]:
        if self._records is not None and self._records.clients is not None:
            return self._records.client_ids(self._c)
        t = self._t.clients
        return list(self._c.execute(sa.select(t.c.id).order_by(self._by_id(t.c.id))).scalars())

    def delete_client(self, client_id: str) -> None:
        """The client, its values and memberships gone (a merge took it); the rest stays."""
        t = self._t
        for table, column in (
            (t.clients, t.clients.c.id),
            (t.client_values, t.client_values.c.client_id),
            (t.memberships, t.memberships.c.client_id),
        ):
            self._c.execute(sa.delete(table).where(column == client_id))
        self._seen[t.clients.name, client_id] = None
        self._seen[t.memberships.name, client_id] = None

    def delete_timer(self, key: str) -> None:
        self._settle()
        self._c.execute(sa.delete(self._t.timers).where(self._t.timers.c.key == key))
        self._seen[self._t.timers.name, key] = None

    def get_deal(self, deal_id: str) -> Deal | None:
        if self._records is not None and self._records.deals is not None:
            return self._records.get_deal(self._c, deal_id)
        return self._get(Deal, self._t.deals, deal_id)

    def put_deal(self, deal: Deal) -> None:
        if self._records is not None and self._records.deals is not None:
            self._records.put_deal(self._c, deal)
            return
        values = {"client_id": deal.client, "data": _dump(deal)}
        self._put(self._t.deals, {"id": deal.id}, values)

    def deals_of(self, client_id: str) -> list[Deal]:
        if self._records is not None and self._records.deals is not None:
            return list(self._records.deals_of(self._c, client_id))
        t = self._t.deals
        query = sa.select(t.c.data).where(t.c.client_id == client_id)
        return self._list(Deal, query.order_by(self._by_id(t.c.id)))

    def get_manager(self, manager_id: str) -> Manager | None:
        return self._get(Manager, self._t.managers, manager_id)

    def put_manager(self, manager: Manager) -> None:
        self._put(self._t.managers, {"id": manager.id}, {"data": _dump(manager)})

    def list_managers(self) -> list[Manager]:
        t = self._t.managers
        return self._list(Manager, sa.select(t.c.data).order_by(self._by_id(t.c.id)))

    def get_contact(self, contact_id: str) -> Contact | None:
        return self._get(Contact, self._t.contacts, contact_id)

    def put_contact(self, contact: Contact) -> None:
        links = self._t.contact_clients
        self._put(self._t.contacts, {"id": contact.id}, {"data": _dump(contact)})
        self._c.execute(sa.delete(links).where(links.c.contact_id == contact.id))
        clients = sorted({role.client for role in contact.roles})
        if clients:
            rows = [{"contact_id": contact.id, "client_id": client} for client in clients]
            self._c.execute(sa.insert(links), rows)

    def contacts_of(self, client_id: str) -> list[Contact]:
        t, links = self._t.contacts, self._t.contact_clients
        ids = sa.select(links.c.contact_id).where(links.c.client_id == client_id)
        query = sa.select(t.c.data).where(t.c.id.in_(ids)).order_by(self._by_id(t.c.id))
        return self._list(Contact, query)

    def add_interaction(self, interaction: Interaction) -> None:
        values = {
            "client_id": interaction.client,
            "occurred_at": interaction.occurred_at,
            "kind": interaction.kind,
            "manager_id": interaction.manager,
            "data": _dump(interaction),
        }
        self._put(self._t.interactions, {"id": interaction.id}, values)

    def interactions_of(self, client_id: str) -> list[Interaction]:
        t = self._t.interactions
        query = sa.select(t.c.data).where(t.c.client_id == client_id)
        return self._list(Interaction, query.order_by(t.c.occurred_at, self._by_id(t.c.id)))

    def get_interaction(self, interaction_id: str) -> Interaction | None:
        return self._get(Interaction, self._t.interactions, interaction_id)

    # -- campaigns, requests, stage history (crmrules.adapters.campaign_tables)

    @property
    def _campaign_tables(self) -> campaign_tables.CampaignTables:
        return campaign_tables.tables(self._t.clients.schema)

    def put_campaign(self, campaign: Campaign) -> None:
        campaign_tables.put_campaign(self._c, self._campaign_tables, campaign)

    def get_campaign(self, campaign_id: str) -> Campaign | None:
        return campaign_tables.get_campaign(self._c, self._campaign_tables, campaign_id)

    def list_campaigns(self) -> list[Campaign]:
        t = self._campaign_tables
        return campaign_tables.list_campaigns(self._c, t, self._by_id(t.campaigns.c.id))

    def put_request(self, request: Request) -> None:
        campaign_tables.put_request(self._c, self._campaign_tables, request)

    def get_request(self, request_id: str) -> Request | None:
        return campaign_tables.get_request(self._c, self._campaign_tables, request_id)

    def add_stage_move(self, move: StageMove) -> None:
        campaign_tables.add_stage_move(self._c, self._campaign_tables, move)

    def stage_moves(self, deal_id: str) -> list[StageMove]:
        return campaign_tables.stage_moves_of(self._c, self._campaign_tables, deal_id)

    def find_interactions(
        self,
        *,
        client: str | None = None,
        deal: str | None = None,
        manager: str | None = None,
        contact: str | None = None,
    ) -> list[Interaction]:
        t = self._t.interactions
        query = _where_given(
            sa.select(t.c.data),
            (t.c.client_id, client),
            *(
                (t.c.data[key].as_string(), value)
                for key, value in (("deal", deal), ("manager", manager), ("contact", contact))
            ),
        )
        return self._list(Interaction, query.order_by(t.c.occurred_at, self._by_id(t.c.id)))

    def find_contacts(self, *, client: str | None = None) -> list[Contact]:
        if client is not None:
            return self.contacts_of(client)
        t = self._t.contacts
        return self._list(Contact, sa.select(t.c.data).order_by(self._by_id(t.c.id)))

    def load_rows(self, model: type[M], query: sa.Select[Any]) -> list[M]:
        """The records a query of ``data`` columns selects (for reads that scope their SQL)."""
        self._settle()
        return self._list(model, query)

    # -- tasks and mailings

    @contextmanager
    def deferred_writes(self) -> Iterator[None]:
        """New tasks, mailings and outbox messages, event results and timers settled are
        held back and written as one multi-row statement each (crmrules.adapters.deferred).

        For a batch of work undone as a whole when anything goes wrong: ``add_task``,
        ``add_mailing`` and ``enqueue`` take each record as new; if one was there already
        (so they should have said False), writing raises ``TasksExisted`` and the caller
        undoes the batch and does it again without deferring. The rows are written when
        the block ends, and before any statement that may read their tables.
        """
        outer = self._deferred
        if outer is None:
            self._deferred = deferred.Deferred()
        try:
            yield
            self._settle()
        finally:
            if outer is None and self._deferred is not None:
                self._deferred.clear()
                self._deferred = None

    #: the name the schedule's occurrences know it by
    deferred_tasks = deferred_writes

    def _hold_new(self, table: sa.Table, column: str, key: str, values: dict[str, Any]) -> bool:
        """Insert the row as new: at once (False if it existed), or held back (True)."""
        if self._deferred is None:
            return self._add_new(table, column, key, values)
        insert = statements.insert_new_returning(table, self._postgres, column)
        self._deferred.add(insert, {column: key, **values}, new=True)
        self._seen[table.name, key] = values["data"]
        return True

    def add_task(self, task: Task) -> bool:
        """One INSERT that does nothing when the idempotency key (or the id) is there."""
        if task.idempotency_key is None:
            self.put_task(task)
            return True
        return self._hold_new(self._t.tasks, "id", task.id, self._task_values(task))

    def get_task(self, task_id: str) -> Task | None:
        return self._get(Task, self._t.tasks, task_id)

    @staticmethod
    def _task_values(task: Task) -> dict[str, Any]:
        return {
            "idempotency_key": task.idempotency_key,
            "client_id": task.client,
            "deal_id": task.deal,
            "assignee": task.assignee,
            "status": task.status.value,
            "created_at": task.created_at,
            "kind": task.kind,
            "rule": task.rule,
            "due_at": task.due,
            "closed_at": task.closed_at,
            "data": _dump(task),
        }

    def put_task(self, task: Task) -> None:
        self._settle()
        self._put(self._t.tasks, {"id": task.id}, self._task_values(task))

    def find_tasks(
        self,
        *,
        client: str | None = None,
        deal: str | None = None,
        assignee: str | None = None,
        status: TaskStatus | None = None,
    ) -> list[Task]:
        self._settle()
        t = self._t.tasks
        query = _where_given(
            sa.select(t.c.data),
            (t.c.client_id, client),
            (t.c.deal_id, deal),
            (t.c.assignee, assignee),
            (t.c.status, None if status is None else status.value),
        )
        order = (t.c.created_at.is_(None), t.c.created_at, self._by_id(t.c.id))
        return self._list(Task, query.order_by(*order))

    def add_mailing(self, mailing: Mailing) -> bool:
        """One INSERT that does nothing when the idempotency key (or the id) is there."""
        if mailing.idempotency_key is None:
            self.put_mailing(mailing)
            return True
        return self._hold_new(self._t.mailings, "id", mailing.id, self._mailing_values(mailing))

    def get_mailing(self, mailing_id: str) -> Mailing | None:
        return self._get(Mailing, self._t.mailings, mailing_id)

    @staticmethod
    def _mailing_values(mailing: Mailing) -> dict[str, Any]:
        return {
            "idempotency_key": mailing.idempotency_key,
            "client_id": mailing.client,
            "created_at": mailing.created_at,
            "data": _dump(mailing),
        }

    def put_mailing(self, mailing: Mailing) -> None:
        self._settle()
        self._put(self._t.mailings, {"id": mailing.id}, self._mailing_values(mailing))

    def find_mailings(self, *, client: str | None = None) -> list[Mailing]:
        self._settle()
        t = self._t.mailings
        query = sa.select(t.c.data)
        if client is not None:
            query = query.where(t.c.client_id == client)
        order = (t.c.created_at.is_(None), t.c.created_at, self._by_id(t.c.id))
        return self._list(Mailing, query.order_by(*order))

    # -- outbox

    def enqueue(self, message: OutboxMessage) -> bool:
        """One INSERT that does nothing when a message with the key is there."""
        return self._hold_new(self._t.outbox, "key", message.key, self._message_values(message))

    def due_messages(self, now: datetime, limit: int) -> list[OutboxMessage]:
        self._settle()
        if limit <= 0:
            return []
        t = self._t.outbox
        query = (
            sa.select(t.c.data)
            .where(t.c.status == MessageStatus.PENDING.value, t.c.next_attempt_at <= now)
            .order_by(t.c.next_attempt_at, self._by_id(t.c.key))
            .limit(limit)
        )
        return self._list(OutboxMessage, query)

    def claim_messages(
        self, now: datetime, limit: int, worker: str, lease_until: datetime
    ) -> list[OutboxMessage]:
        """Lease due messages; on PostgreSQL rows another sender is claiming are skipped."""
        self._settle()
        t = self._t.outbox
        pending, due = MessageStatus.PENDING.value, t.c.next_attempt_at
        claimed = self._leasable(t, OutboxMessage, pending, due, now, limit, worker, lease_until)
        for message in claimed:
            self.put_message(message)
        return claimed

    def renew_leases(self, worker: str, lease_until: datetime) -> int:
        """One UPDATE per table; rows locked by a transaction settling them are skipped."""
        self._settle()
        renewed = 0
        tables: tuple[tuple[sa.Table, str, type[Timer] | type[OutboxMessage]], ...] = (
            (self._t.timers, TimerStatus.PENDING.value, Timer),
            (self._t.outbox, MessageStatus.PENDING.value, OutboxMessage),
        )
        for t, pending, model in tables:
            held = sa.select(t.c.key, t.c.data).where(
                t.c.lease_owner == worker, t.c.status == pending
            )
            if self._row_locks:
                held = held.with_for_update(skip_locked=True)
            update = {
                key: _dump(_load(model, data).model_copy(update={"lease_until": lease_until}))
                for key, data in self._c.execute(held)
            }
            if not update:
                continue
            self._c.execute(
                sa.update(t)
                .where(t.c.key == sa.bindparam("k"))
                .values(lease_until=lease_until, data=sa.bindparam("d")),
                [{"k": key, "d": data} for key, data in update.items()],
            )
            for key, data in update.items():
                self._seen[t.name, key] = data
            renewed += len(update)
        return renewed

    @staticmethod
    def _message_values(message: OutboxMessage) -> dict[str, Any]:
        return {
            "status": message.status.value,
            "next_attempt_at": message.next_attempt_at,
            "lease_owner": message.lease_owner,
            "lease_until": message.lease_until,
            "data": _dump(message),
        }

    def put_message(self, message: OutboxMessage) -> None:
        self._settle()
        self._put(self._t.outbox, {"key": message.key}, self._message_values(message))

    def get_message(self, key: str) -> OutboxMessage | None:
        return self._get(OutboxMessage, self._t.outbox, key)

    # -- engine state

    def event_result(self, event_id: str) -> dict[str, Any] | None:
        subject, self._subject = self._subject, None
        if event_id in self._results:  # read by prepare_calls
            result = self._results.pop(event_id)
        elif subject is not None:
            result = self._read_subject(event_id, *subject)
        else:
            self._settle()
            query = statements.select_by_key(self._t.event_results, "result", ("event_id",))
            found = self._c.execute(query, {statements.key_param("event_id"): event_id})
            result = found.scalar_one_or_none()
        return None if result is None else dict(decode(result))

    def _read_subject(
        self, event_id: str, client_id: str | None, deal_id: str | None
    ) -> dict[str, Any] | None:
        """The event's result; its deal, client and manager kept for the reads that follow."""
        row = prefetch.read_subject(self._c, self._t, event_id, client_id, deal_id)
        found = [(self._t.deals, deal_id, row.deal), (self._t.clients, row.client_id, row.client)]
        if row.responsible is not None:
            found.append((self._t.managers, row.responsible, row.manager))
        for table, key, text in found:
            if key is not None and (table.name, key) not in self._seen:  # a write here wins
                self._seen[table.name, key] = self._parsed((table.name, key), text)
        return row.result

    def _parsed(self, key: tuple[str, str], text: str | None) -> Any:
        """The data of a row read as JSON text; its record too if an earlier transaction
        validated the same text (``crmrules.adapters.record_cache``)."""
        if text is None:
            return None
        kept = self._shared.get(key, text)
        if kept is not None:
            self._loaded[key] = kept
            return kept[0]
        data = self._loads(text)
        self._texts[key] = (text, data)
        return data

    def save_event_result(self, event_id: str, result: dict[str, Any]) -> None:
        # A plain INSERT: two processes handling the same event race on this key,
        # and the loser's ConflictError retry finds the winner's result.
        insert, row = statements.insert(self._t.event_results), {"event_id": event_id}
        row["result"] = encode(result)
        if self._deferred is not None:
            self._deferred.add(insert, row)
        else:
            direct.execute(self._c, insert, row, keys=("event_id", "result"))

    def get_rotation(self, key: str) -> int:
        """The counter, with its row locked until commit so two round robins take turns."""
        t = self._t.rotations
        if self._postgres:
            insert = postgresql.insert(t).values(key=key, value=0).on_conflict_do_nothing()
            self._c.execute(insert)
        query = sa.select(t.c.value).where(t.c.key == key)
        if self._row_locks:
            query = query.with_for_update()
        value = self._c.execute(query).scalar_one_or_none()
        return 0 if value is None else int(value)

    def set_rotation(self, key: str, value: int) -> None:
        self._put(self._t.rotations, {"key": key}, {"value": value})

    def last_fired(self, rule_id: str, scope: str) -> datetime | None:
        query = statements.select_by_key(self._t.fired, "at", ("rule_id", "scope"))
        at = self._scalar(query, {key_param("rule_id"): rule_id, key_param("scope"): scope})
        return None if at is None else datetime.fromisoformat(at)

    def record_fired(self, rule_id: str, scope: str, at: datetime) -> None:
        self._put(self._t.fired, {"rule_id": rule_id, "scope": scope}, {"at": at.isoformat()})

    def memberships(self, client_id: str) -> list[TerritoryMembership]:
        key = (self._t.memberships.name, client_id)
        if key in self._seen:
            data = self._seen[key]
        else:
            query = statements.select_by_key(self._t.memberships, "data", ("client_id",))
            data = self._seen[key] = self._scalar(query, {key_param("client_id"): client_id})
        return [_load(TerritoryMembership, item) for item in data or []]

    def set_memberships(self, client_id: str, memberships: list[TerritoryMembership]) -> None:
        """Replace the client's memberships; the same ones again (a client stored with its
        territories unchanged, the common case) write nothing."""
        t = self._t.memberships
        data = [_dump(m) for m in memberships] or None  # none: no row
        key = (t.name, client_id)
        if key in self._seen and self._seen[key] == data:
            return
        self._seen[key] = data
        delete = statements.delete_by_key(t, ("client_id",))
        direct.execute(self._c, delete, {key_param("client_id"): client_id})
        if data:
            row = {"client_id": client_id, "data": data}
            direct.execute(self._c, statements.insert(t), row, keys=("client_id", "data"))
        if self._records is not None and self._records.clients is not None:
            # A host-kept client's territories and segments, for SQL conditions.
            client_values.write_memberships(self._c, self._t.client_values, client_id, memberships)

    # -- timers

    @staticmethod
    def _timer_values(timer: Timer) -> dict[str, Any]:
        return {
            "kind": timer.kind,
            "rule": timer.rule,
            "client_id": timer.client,
            "deal_id": timer.deal,
            "status": timer.status.value,
            "due_at": timer.due_at,
            "lease_owner": timer.lease_owner,
            "lease_until": timer.lease_until,
            "data": _dump(timer),
        }

    def plan_timer(self, timer: Timer) -> bool:
        """Insert the timer, or revive one cancelled before it fell due; else leave it.

        One statement on both databases (an upsert whose update applies only to
        such a timer); two processes planning the same key both succeed.
        """
        self._settle()
        t = self._t.timers
        values = self._timer_values(timer)
        # On PostgreSQL it waits for a concurrent insert of the same key to commit first.
        upsert = statements.revive(t, self._postgres, _revivable(t))
        row = {"key": timer.key, **values}
        planned = direct.execute(self._c, upsert, row, keys=tuple(row))[0] == 1
        if planned:
            self._seen[t.name, timer.key] = values["data"]
        else:
            self._seen.pop((t.name, timer.key), None)  # another process's timer: read it anew
        return planned

    def get_timer(self, key: str) -> Timer | None:
        return self._get(Timer, self._t.timers, key)

    def put_timer(self, timer: Timer) -> None:
        t, values = self._t.timers, self._timer_values(timer)
        if self._deferred is not None and timer.key in self._locked_timers:
            # The row is there (locked by prepare_calls): one UPDATE for the batch's timers.
            update = statements.update_by_key(t, ("key",), tuple(values))
            params = {statements.value_param(name): value for name, value in values.items()}
            self._deferred.add(update, {statements.key_param("key"): timer.key, **params})
            self._seen[t.name, timer.key] = values["data"]
            return
        self._settle()
        self._put(t, {"key": timer.key}, values)

    def find_timers(
        self,
        *,
        client: str | None = None,
        deal: str | None = None,
        rule: str | None = None,
        kind: str | None = None,
        status: TimerStatus | None = None,
        limit: int | None = None,
    ) -> list[Timer]:
        self._settle()
        t = self._t.timers
        query = _where_given(
            sa.select(t.c.data),
            (t.c.client_id, client),
            (t.c.deal_id, deal),
            (t.c.rule, rule),
            (t.c.kind, kind),
            (t.c.status, None if status is None else status.value),
        )
        query = query.order_by(t.c.due_at, self._by_id(t.c.key))
        return self._list(Timer, query if limit is None else query.limit(limit))

    def _leasable(
        self,
        t: sa.Table,
        model: type[M],
        pending: str,
        due: sa.Column[Any],
        now: datetime,
        limit: int,
        worker: str,
        lease_until: datetime,
    ) -> list[M]:
        """Up to ``limit`` due rows not leased to another worker, as leased to ``worker``.

        On PostgreSQL the rows are locked and rows another worker is claiming are
        skipped. A worker's own leases are its to go on with (after a reconnect).
        """
        if limit <= 0:
            return []
        query = (
            sa.select(t.c.data)
            .where(
                t.c.status == pending,
                due <= now,
                sa.or_(t.c.lease_until.is_(None), t.c.lease_until < now, t.c.lease_owner == worker),
            )
            .order_by(due, self._by_id(t.c.key))
            .limit(limit)
        )
        if self._row_locks:
            query = query.with_for_update(skip_locked=True)
        lease = {"lease_owner": worker, "lease_until": lease_until}
        return [
            _load(model, data).model_copy(update=lease) for data in self._c.execute(query).scalars()
        ]

    def claim_timers(
        self, now: datetime, limit: int, worker: str, lease_until: datetime
    ) -> list[Timer]:
        """Lease due timers; on PostgreSQL rows another worker is claiming are skipped."""
        self._settle()
        if self._postgres and limit > 0:
            return self._claim_returning(now, limit, worker, lease_until)
        return self._claim_selected(now, limit, worker, lease_until)

    def _claim_selected(
        self, now: datetime, limit: int, worker: str, lease_until: datetime
    ) -> list[Timer]:
        """The due timers selected (locked, on a server), then each one's lease written."""
        t = self._t.timers
        pending = TimerStatus.PENDING.value
        claimed = self._leasable(t, Timer, pending, t.c.due_at, now, limit, worker, lease_until)
        lease = {"lease_owner": worker, "lease_until": lease_until}
        if claimed:
            dumped = {timer.key: _dump(timer) for timer in claimed}
            update = (
                sa.update(t)
                .where(t.c.key == sa.bindparam("k"))
                .values(**lease, data=sa.bindparam("d"))
            )
            self._c.execute(update, [{"k": key, "d": data} for key, data in dumped.items()])
            for key, data in dumped.items():
                self._seen[t.name, key] = data
        return claimed

    def _claim_returning(
        self, now: datetime, limit: int, worker: str, lease_until: datetime
    ) -> list[Timer]:
        """PostgreSQL: the batch leased in one ``UPDATE ... RETURNING`` (its rows chosen and
        locked by a ``FOR UPDATE SKIP LOCKED`` subquery), the lease written into ``data`` by
        the server; what ``claim_timers``' SELECT and per-row UPDATEs did, in one statement.

        A row whose JSON ``jsonb`` cannot hold (a ``\\u0000``) keeps its ``data`` in the
        statement and gets the lease written from Python after it."""
        t = self._t.timers
        c = timer_claims
        params = {
            c.NOW: now,
            c.LIMIT: limit,
            c.WORKER: worker,
            c.UNTIL: lease_until,
            c.UNTIL_TEXT: json_values.moment(lease_until),  # as the record's JSON holds it
        }
        claimed: list[Timer] = []
        for data in self._c.execute(c.claim_statement(t), params).scalars().all():
            timer = _load(Timer, data)
            if timer.lease_owner != worker or timer.lease_until != lease_until:
                lease = {"lease_owner": worker, "lease_until": lease_until}
                timer = timer.model_copy(update=lease)
                data = _dump(timer)
                self._c.execute(sa.update(t).where(t.c.key == timer.key).values(data=data))
            self._seen[t.name, timer.key] = data
            claimed.append(timer)
        return sorted(claimed, key=timer_claims.claim_order)

    def lock_timer(self, key: str) -> Timer | None:
        """The timer read from the database (not this transaction's cache), locked until commit.

        A timer ``prepare_calls`` locked is taken from the cache: it was read from the
        database then, and only this transaction can have changed it since.
        """
        t = self._t.timers
        if key in self._locked_timers and (t.name, key) in self._seen:
            data = self._seen[t.name, key]
            return None if data is None else _load(Timer, data)
        self._settle()
        query = sa.select(t.c.data).where(t.c.key == key)
        if self._row_locks:
            query = query.with_for_update()
        data = self._seen[t.name, key] = self._c.execute(query).scalar_one_or_none()
        return None if data is None else _load(Timer, data)

    #: ``add_audit`` takes a rule's ``Miss`` (crmrules.rules.why) and writes it explained
    writes_misses = True

    def add_audit(self, entry: AuditEntry | Miss) -> None:
        self._audit.append(self._audit_rows.row(entry))

    def audit_log(
        self, *, event_id: str | None = None, client: str | None = None
    ) -> list[AuditEntry]:
        self.flush()
        query = audit_rows.query(self._t.audit, event_id=event_id, client=client)
        return self._list(AuditEntry, query)

    # -- failed rule runs

    def put_failure(self, failure: RuleFailure) -> None:
        values = {
            "event_id": failure.event_id,
            "rule": failure.rule,
            "status": failure.status.value,
            "failed_at": failure.failed_at,
            "data": _dump(failure),
        }
        self._put(self._t.failures, {"key": failure.key}, values)

    def lock_failure(self, key: str) -> RuleFailure | None:
        t = self._t.failures
        query = sa.select(t.c.data).where(t.c.key == key)
        if self._row_locks:
            query = query.with_for_update()
        data = self._seen[t.name, key] = self._c.execute(query).scalar_one_or_none()
        return None if data is None else _load(RuleFailure, data)

    def find_failures(
        self, *, status: FailureStatus | None = None, rule: str | None = None
    ) -> list[RuleFailure]:
        t = self._t.failures
        query = _where_given(
            sa.select(t.c.data),
            (t.c.status, None if status is None else status.value),
            (t.c.rule, rule),
        )
        return self._list(RuleFailure, query.order_by(t.c.failed_at, self._by_id(t.c.key)))


def default_store() -> SQLAlchemyStore:
    """The store of ``$CRMRULES_DATABASE_URL``, else ``crmrules.sqlite3`` in the current folder."""
    return SQLAlchemyStore(os.environ.get("CRMRULES_DATABASE_URL") or DEFAULT_URL)


__all__ = [
    "DEFAULT_URL",
    "VERSION_TABLE",
    "Base",
    "SQLAlchemyStore",
    "SQLAlchemyTransaction",
    "SchemaError",
    "StoreError",
    "UTCDateTime",
    "decode",
    "default_store",
    "display_url",
    "encode",
    "make_engine",
    "metadata",
]

# The tables of campaigns, requests and stage moves join the shared metadata on import.
from crmrules.adapters import campaign_tables  # noqa: E402

# The tables of import, duplicate keys and merges join the metadata (and the schema copies).
from crmrules.adapters import import_tables as _import_tables  # noqa: E402

assert _import_tables.MATCH_KEYS in metadata.tables
