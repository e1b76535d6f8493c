"""Client values: each client's fields in typed columns, so conditions run as SQL.

``crmrules_client_values`` holds one row per present field of a client
(``seq = 0``) and one per element of a set (``seq`` 1, 2, ...), with typed,
indexed columns (see crmrules.adapters.client_values and docs/storage.md).
The upgrade fills it from the clients already stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from crmrules.adapters import client_values

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "crmrules_client_values"
#: Clients read and indexed per statement while the table is filled.
CHUNK = 1_000


def _schema() -> str | None:
    """The schema crmrules.adapters.migrate was given; None means the connection's default."""
    schema: str | None = context.config.attributes.get("schema")
    return schema


def upgrade() -> None:
    schema = _schema()
    table = op.create_table(
        TABLE,
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("text", sa.String(), nullable=True),
        sa.Column("text_key", sa.String(), nullable=True),
        sa.Column("folded", sa.String(), nullable=True),
        sa.Column("folded_key", sa.String(), nullable=True),
        sa.Column("number", client_values.Number(), nullable=True),
        sa.Column("nudge", sa.Integer(), nullable=True),
        sa.Column("moment", sa.DateTime(timezone=True), nullable=True),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("flag", sa.Boolean(), nullable=True),
        sa.Column("blank", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "key", "seq", name=f"pk_{TABLE}"),
        schema=schema,
    )
    for column in ("text_key", "folded_key", "number", "moment", "day"):
        op.create_index(f"ix_{TABLE}_{column}", TABLE, ["key", column], schema=schema)
    _fill(table, schema)


def _fill(values: sa.Table, schema: str | None) -> None:
    """Index the clients already stored, a chunk at a time (ids in order)."""
    from crmrules.adapters.sqlalchemy import _load
    from crmrules.model import Client

    connection = op.get_bind()
    clients = sa.table("crmrules_clients", sa.column("id"), sa.column("data", sa.JSON()))
    clients.schema = schema
    last: str | None = None
    while True:
        query = sa.select(clients.c.id, clients.c.data).order_by(clients.c.id).limit(CHUNK)
        if last is not None:
            query = query.where(clients.c.id > last)
        batch = connection.execute(query).all()
        if not batch:
            return
        client_values.write(
            connection, values, [_load(Client, data) for _, data in batch], replace=False
        )
        last = batch[-1][0]


def downgrade() -> None:
    op.drop_table(TABLE, schema=_schema())
