"""The initial crmrules tables.

Each record table keeps the columns the store queries plus ``data``, the
whole record as JSON, so adding a field to a model needs no migration.
Moments the store sorts or compares by are UTC ``timestamp with time zone``.

Revision ID: 0001
Revises:
Create Date: 2026-03-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.schema import SchemaItem

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _schema() -> str | None:
    """The schema crmrules.adapters.migrate was given; None means the connection's default."""
    schema: str | None = context.config.attributes.get("schema")
    return schema


def _record_table(name: str, *columns: SchemaItem, key: str = "id") -> None:
    """A table of records: the key, the queried ``columns``, and the JSON ``data``."""
    op.create_table(
        name,
        sa.Column(key, sa.String(), nullable=False),
        *columns,
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(key, name=f"pk_{name}"),
        schema=_schema(),
    )


def _index(table: str, *columns: str, name: str | None = None) -> None:
    index = name or f"ix_{table}_{columns[0]}"
    op.create_index(index, table, list(columns), schema=_schema())


def upgrade() -> None:
    schema = _schema()
    moment = sa.DateTime(timezone=True)

    _record_table("crmrules_clients")

    _record_table("crmrules_deals", sa.Column("client_id", sa.String(), nullable=False))
    _index("crmrules_deals", "client_id")

    _record_table("crmrules_managers")

    _record_table("crmrules_contacts")
    op.create_table(
        "crmrules_contact_clients",
        sa.Column("contact_id", sa.String(), nullable=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", "client_id", name="pk_crmrules_contact_clients"),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            [f"{schema}.crmrules_contacts.id" if schema else "crmrules_contacts.id"],
            name="fk_crmrules_contact_clients_contact_id_crmrules_contacts",
            ondelete="CASCADE",
        ),
        schema=schema,
    )
    _index("crmrules_contact_clients", "client_id")

    _record_table(
        "crmrules_interactions",
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("occurred_at", moment, nullable=False),
    )
    _index("crmrules_interactions", "client_id")

    _record_table(
        "crmrules_tasks",
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column("client_id", sa.String(), nullable=True),
        sa.Column("deal_id", sa.String(), nullable=True),
        sa.Column("assignee", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at", moment, nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_crmrules_tasks_idempotency_key"),
    )
    for column in ("client_id", "deal_id", "assignee", "status"):
        _index("crmrules_tasks", column)

    _record_table(
        "crmrules_mailings",
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column("client_id", sa.String(), nullable=True),
        sa.Column("created_at", moment, nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_crmrules_mailings_idempotency_key"),
    )
    _index("crmrules_mailings", "client_id")

    _record_table(
        "crmrules_outbox",
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("next_attempt_at", moment, nullable=False),
        key="key",
    )
    _index("crmrules_outbox", "status", "next_attempt_at", name="ix_crmrules_outbox_due")

    op.create_table(
        "crmrules_event_results",
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_crmrules_event_results"),
        schema=schema,
    )

    op.create_table(
        "crmrules_rotations",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_crmrules_rotations"),
        schema=schema,
    )

    op.create_table(
        "crmrules_fired",
        sa.Column("rule_id", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("at", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "scope", name="pk_crmrules_fired"),
        schema=schema,
    )

    _record_table("crmrules_memberships", key="client_id")

    op.create_table(
        "crmrules_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_crmrules_audit"),
        schema=schema,
    )
    _index("crmrules_audit", "event_id")


def downgrade() -> None:
    schema = _schema()
    for table in (
        "crmrules_audit",
        "crmrules_memberships",
        "crmrules_fired",
        "crmrules_rotations",
        "crmrules_event_results",
        "crmrules_outbox",
        "crmrules_mailings",
        "crmrules_tasks",
        "crmrules_interactions",
        "crmrules_contact_clients",
        "crmrules_contacts",
        "crmrules_managers",
        "crmrules_deals",
        "crmrules_clients",
    ):
        op.drop_table(table, schema=schema)
