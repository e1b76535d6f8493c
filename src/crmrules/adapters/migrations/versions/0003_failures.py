"""Failed rule runs: what failed, why, and whether it was run again.

``crmrules_failures`` keeps the columns the store lists failures by
(status, failed_at, rule, event_id) plus ``data``, the whole failure as
JSON (with the event the rule ran on, so it can be run again).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "crmrules_failures"


def _schema() -> str | None:
    """The schema crmrules.adapters.migrate was given; None means the connection's default."""
    schema: str | None = context.config.attributes.get("schema")
    return schema


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        TABLE,
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=f"pk_{TABLE}"),
        schema=schema,
    )
    op.create_index(f"ix_{TABLE}_open", TABLE, ["status", "failed_at"], schema=schema)
    for column in ("event_id", "rule"):
        op.create_index(f"ix_{TABLE}_{column}", TABLE, [column], schema=schema)


def downgrade() -> None:
    op.drop_table(TABLE, schema=_schema())
