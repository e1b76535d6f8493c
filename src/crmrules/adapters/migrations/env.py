"""The Alembic environment of the crmrules tables.

Run by ``crmrules.adapters.migrate`` (``crmrules db upgrade``), which passes
the connection and the schema in ``config.attributes``; there is no
alembic.ini. Revisions go to crmrules' own version table, so a host's Alembic
history in the same database is never touched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from crmrules.adapters.sqlalchemy import VERSION_TABLE, metadata

config = context.config
connection = config.attributes.get("connection")
schema: str | None = config.attributes.get("schema")

if context.is_offline_mode() or not isinstance(connection, sa.Connection):
    raise RuntimeError(
        "The crmrules migrations run through crmrules: use `crmrules db upgrade URL` "
        "or crmrules.adapters.migrate.upgrade(url)."
    )

# Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when it exists.
postgres = connection.dialect.name == "postgresql"
if schema is not None and postgres and not sa.inspect(connection).has_schema(schema):
    quoted = connection.dialect.identifier_preparer.quote_schema(schema)
    connection.exec_driver_sql(f"CREATE SCHEMA {quoted}")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    version_table_schema=schema,
)

with context.begin_transaction():
    context.run_migrations()
