"""Conditions as SQL over a host's own client table.

On PostgreSQL, ``crmrules_casefold(text)``: Python's ``str.casefold`` as an
SQL function, so ``ignore_case`` folds a host's text columns exactly as
Python does (see crmrules.rules.sql_host). On every database, the
``territories`` and ``segments`` rows of ``crmrules_client_values`` for the
clients kept in a host's table (those with memberships but no row in
``crmrules_clients``), from their memberships.

Revision ID: 0005_host_sql
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0005_host_sql"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    schema: str | None = context.config.attributes.get("schema")
    return schema


def upgrade() -> None:
    from crmrules.adapters import client_values
    from crmrules.adapters.json_values import load as _load
    from crmrules.adapters.tables import tables_in
    from crmrules.model import TerritoryMembership
    from crmrules.rules.sql_host import casefold_sql

    schema = _schema()
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        op.execute(sa.text(casefold_sql(schema)))
    t = tables_in(schema)
    own = sa.select(t.clients.c.id).where(t.clients.c.id == t.memberships.c.client_id)
    query = sa.select(t.memberships.c.client_id, t.memberships.c.data).where(~own.exists())
    for client_id, data in connection.execute(query).all():
        memberships = [_load(TerritoryMembership, item) for item in data]
        client_values.write_memberships(connection, t.client_values, client_id, memberships)


def downgrade() -> None:
    schema = _schema()
    if op.get_bind().dialect.name == "postgresql":
        name = f'"{schema}".crmrules_casefold' if schema else "crmrules_casefold"
        op.execute(sa.text(f"DROP FUNCTION IF EXISTS {name}(text)"))
