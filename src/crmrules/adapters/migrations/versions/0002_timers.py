"""Timers: time triggers, stage deadlines, contact plans and schedules.

``crmrules_timers`` keeps the columns ``find_timers`` filters by and the ones
``claim_timers`` selects and leases by (status, due_at, lease_until), plus
``data``, the whole timer as JSON. Moments are UTC ``timestamp with time zone``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "crmrules_timers"


def _schema() -> str | None:
    """The schema crmrules.adapters.migrate was given; None means the connection's default."""
    schema: str | None = context.config.attributes.get("schema")
    return schema


def upgrade() -> None:
    schema = _schema()
    moment = sa.DateTime(timezone=True)
    op.create_table(
        TABLE,
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=True),
        sa.Column("client_id", sa.String(), nullable=True),
        sa.Column("deal_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("due_at", moment, nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_until", moment, nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=f"pk_{TABLE}"),
        schema=schema,
    )
    op.create_index(f"ix_{TABLE}_due", TABLE, ["status", "due_at"], schema=schema)
    for column in ("client_id", "deal_id", "rule"):
        op.create_index(f"ix_{TABLE}_{column}", TABLE, [column], schema=schema)


def downgrade() -> None:
    op.drop_table(TABLE, schema=_schema())
