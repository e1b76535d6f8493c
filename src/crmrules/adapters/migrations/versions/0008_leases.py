"""Leased delivery: an outbox message is claimed by one sender at a time.

``crmrules_outbox`` gets ``lease_owner`` and ``lease_until``, as the timers
have: ``claim_messages`` leases due messages to one delivery process
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), and a sender that dies leaves
its lease to expire so another one sends the message.

Revision ID: 0008_leases
Revises: 0007_campaigns
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0008_leases"
down_revision: str | Sequence[str] | None = "0007_campaigns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "crmrules_outbox"


def _schema() -> str | None:
    """The schema crmrules.adapters.migrate was given; None means the connection's default."""
    schema: str | None = context.config.attributes.get("schema")
    return schema


def upgrade() -> None:
    schema = _schema()
    op.add_column(TABLE, sa.Column("lease_owner", sa.String(), nullable=True), schema=schema)
    op.add_column(
        TABLE, sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True), schema=schema
    )


def downgrade() -> None:
    schema = _schema()
    with op.batch_alter_table(TABLE, schema=schema) as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
