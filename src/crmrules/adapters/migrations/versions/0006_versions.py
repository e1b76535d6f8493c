"""Regulation versions in the audit log: the event's client and the version that decided.

Every audit entry, task, mailing, timer and result keeps the regulation
version that made it in its JSON ``data``; the audit log also gets two
indexed columns, ``client_id`` and ``regulation``, so ``crmrules history``
reads one client's entries (and a version's) without scanning the log.
Entries written before this revision have neither (both stay NULL).

Revision ID: 0006_versions
Revises: 0005_host_sql
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0006_versions"
down_revision: str | Sequence[str] | None = "0005_host_sql"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "crmrules_audit"
COLUMNS = ("client_id", "regulation")


def _schema() -> str | None:
    """The schema crmrules.adapters.migrate was given; None means the connection's default."""
    schema: str | None = context.config.attributes.get("schema")
    return schema


def upgrade() -> None:
    schema = _schema()
    with op.batch_alter_table(TABLE, schema=schema) as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column, sa.String(), nullable=True))
    for column in COLUMNS:
        op.create_index(f"ix_{TABLE}_{column}", TABLE, [column], schema=schema)


def downgrade() -> None:
    schema = _schema()
    for column in COLUMNS:
        op.drop_index(f"ix_{TABLE}_{column}", TABLE, schema=schema)
    with op.batch_alter_table(TABLE, schema=schema) as batch:
        for column in COLUMNS:
            batch.drop_column(column)
