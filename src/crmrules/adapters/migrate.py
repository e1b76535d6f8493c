"""The crmrules tables' migrations: Alembic, driven from Python, with no alembic.ini.

The migration scripts ship inside the package (``crmrules/adapters/migrations``)
and record their revision in ``crmrules_alembic_version`` (in ``schema`` when
one is given), so a host that uses Alembic for its own tables keeps its own
history untouched. ``crmrules db upgrade`` and ``crmrules db current`` call
these functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from crmrules.adapters.sqlalchemy import (
    DEFAULT_URL,
    VERSION_TABLE,
    connect,
    make_engine,
    parse_url,
    sqlite_file,
)
from crmrules.adapters.sqlalchemy import display_url as _display
from crmrules.errors import SchemaError, StoreError

#: A database: a URL, an Engine, or a Connection (then the caller commits).
Target = str | sa.URL | sa.Engine | sa.Connection


def display_url(target: Target) -> str:
    """The database to show a person, password hidden."""
    if isinstance(target, sa.Engine):
        return _display(target.url)
    if isinstance(target, sa.Connection):
        return _display(target.engine.url)
    return _display(target)


def _config(connection: sa.Connection | None = None, schema: str | None = None) -> Config:
    """Alembic's configuration, made in code: the packaged scripts, our connection and schema."""
    config = Config()
    scripts = resources.files("crmrules.adapters") / "migrations"
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def head() -> str:
    """The revision this crmrules needs."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None, "the crmrules migrations are missing from the package"
    return revision


def _known() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def _check_schema_option(dialect: sa.Dialect, schema: str | None, shown: str) -> None:
    if schema is not None and dialect.name == "sqlite":
        raise StoreError(
            f"A SQLite database has no schemas, but schema {schema!r} was given for {shown}. "
            "Leave the schema out, or use PostgreSQL."
        )


@contextmanager
def _connection(
    target: Target, schema: str | None, shown: str | None = None
) -> Iterator[sa.Connection]:
    """A connection to ``target``: the caller's own, or a new one closed (and disposed of) after."""
    shown = shown or display_url(target)
    if isinstance(target, sa.Connection):
        _check_schema_option(target.dialect, schema, shown)
        yield target
        return
    engine = target if isinstance(target, sa.Engine) else make_engine(target)
    try:
        _check_schema_option(engine.dialect, schema, shown)
        with connect(engine, shown) as connection:
            yield connection
    finally:
        if engine is not target:
            engine.dispose()


def _revision(connection: sa.Connection, schema: str | None) -> str | None:
    options = {"version_table": VERSION_TABLE, "version_table_schema": schema}
    try:
        return MigrationContext.configure(connection, opts=options).get_current_revision()
    except sa.exc.DBAPIError as error:
        reason = " ".join(str(error.orig).split())
        raise StoreError(
            f"crmrules could not read the revision of its tables in {display_url(connection)}: "
            f"{reason}. Check that the URL names the right database."
        ) from error


def current(target: Target, schema: str | None = None) -> str | None:
    """The revision of the crmrules tables, or None if there are none.

    A SQLite file that does not exist is not created just to look at it.
    """
    if isinstance(target, str | sa.URL):
        path = sqlite_file(parse_url(target))
        if path is not None and not path.exists():
            return None
    with _connection(target, schema) as connection:
        return _revision(connection, schema)


def upgrade(target: Target, revision: str = "head", schema: str | None = None) -> None:
    """Create the crmrules tables or bring them to ``revision``, in one transaction.

    On PostgreSQL a missing ``schema`` is created. Given a Connection, the
    upgrade joins its transaction (if one is open) and the caller commits.
    """
    if isinstance(target, sa.Connection):
        _check_schema_option(target.dialect, schema, display_url(target))
        _upgrade(target, revision, schema)
        return
    with _connection(target, schema) as connection, connection.begin():
        _upgrade(connection, revision, schema)


def _upgrade(connection: sa.Connection, revision: str, schema: str | None) -> None:
    try:
        command.upgrade(_config(connection, schema), revision)
    except CommandError as error:
        raise SchemaError(
            f"crmrules cannot upgrade {display_url(connection)} to revision {revision!r}: "
            f"{error}. The revisions this crmrules knows end at {head()}."
        ) from error


def problem(revision: str | None, shown: str, schema: str | None = None) -> str | None:
    """What is wrong with tables at ``revision`` and what to do, in one paragraph; None if fine."""
    wanted = head()
    if revision == wanted:
        return None
    where = shown if schema is None else f"{shown} (schema {schema})"
    run = f"Run: crmrules db upgrade {shown}" + (f" --schema {schema}" if schema else "")
    if "***" in shown:
        run += " (with the real password in place of ***)"
    if revision is None:
        return (
            f"The database {where} has no crmrules tables. crmrules creates them by itself "
            "only in a SQLite database it opens from a URL, never in a server database or in "
            f"one handed to it as an Engine, Connection or Session. {run}"
        )
    if revision in _known():
        return (
            f"The crmrules tables in {where} are at revision {revision} but this crmrules "
            f"needs {wanted}. {run}"
        )
    return (
        f"The crmrules tables in {where} are at revision {revision}, which this crmrules does "
        f"not know (it needs {wanted}): a newer crmrules has upgraded them. Install that newer "
        "crmrules here too (pip install --upgrade crmrules)."
    )


def check(target: Target, schema: str | None = None, shown: str | None = None) -> None:
    """Raise SchemaError (one paragraph: what is wrong, what to do) unless at head."""
    with _connection(target, schema, shown) as connection:
        revision = _revision(connection, schema)
    message = problem(revision, shown or display_url(target), schema)
    if message is not None:
        raise SchemaError(message)


__all__ = [
    "DEFAULT_URL",
    "VERSION_TABLE",
    "check",
    "current",
    "display_url",
    "head",
    "problem",
    "upgrade",
]
