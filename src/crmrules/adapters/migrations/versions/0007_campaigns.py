"""Campaigns, requests, stage moves, and the task and interaction columns reports read.

New tables: ``crmrules_campaigns``, ``crmrules_requests``,
``crmrules_request_items`` and ``crmrules_stage_moves`` (see
crmrules.adapters.campaign_tables). Tasks get ``kind``, ``rule``, ``due_at``
and ``closed_at`` columns and interactions ``kind`` and ``manager_id``; the
upgrade fills them from the rows already stored. Deals stored before this
revision have no stage history; each gets one move, into its current stage at
its ``stage_entered_at``.

Revision ID: 0007_campaigns
Revises: 0006_versions
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0007_campaigns"
down_revision: str | Sequence[str] | None = "0006_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rows read and updated per statement while the new columns are filled.
CHUNK = 1_000


def _schema() -> str | None:
    schema: str | None = context.config.attributes.get("schema")
    return schema


def _moment() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        "crmrules_campaigns",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("start_day", sa.Date(), nullable=False),
        sa.Column("end_day", sa.Date(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_crmrules_campaigns"),
        schema=schema,
    )
    op.create_table(
        "crmrules_requests",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("client_id", sa.String(), nullable=True),
        sa.Column("campaign_id", sa.String(), nullable=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("deal_id", sa.String(), nullable=True),
        sa.Column("created_at", _moment(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_crmrules_requests"),
        schema=schema,
    )
    for column in ("client_id", "campaign_id", "deal_id", "created_at"):
        op.create_index(
            f"ix_crmrules_requests_{column}", "crmrules_requests", [column], schema=schema
        )
    op.create_table(
        "crmrules_request_items",
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("item", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "item", name="pk_crmrules_request_items"),
        schema=schema,
    )
    op.create_index(
        "ix_crmrules_request_items_item", "crmrules_request_items", ["item"], schema=schema
    )
    moves = op.create_table(
        "crmrules_stage_moves",
        sa.Column("deal_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("pipeline", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("won", sa.Boolean(), nullable=False),
        sa.Column("entered_at", _moment(), nullable=False),
        sa.PrimaryKeyConstraint("deal_id", "seq", name="pk_crmrules_stage_moves"),
        schema=schema,
    )
    for column in ("client_id", "entered_at"):
        op.create_index(
            f"ix_crmrules_stage_moves_{column}", "crmrules_stage_moves", [column], schema=schema
        )
    with op.batch_alter_table("crmrules_tasks", schema=schema) as batch:
        batch.add_column(sa.Column("kind", sa.String(), nullable=True))
        batch.add_column(sa.Column("rule", sa.String(), nullable=True))
        batch.add_column(sa.Column("due_at", _moment(), nullable=True))
        batch.add_column(sa.Column("closed_at", _moment(), nullable=True))
        batch.create_index("ix_crmrules_tasks_rule", ["rule"])
        batch.create_index("ix_crmrules_tasks_due_at", ["due_at"])
    with op.batch_alter_table("crmrules_interactions", schema=schema) as batch:
        batch.add_column(sa.Column("kind", sa.String(), nullable=True))
        batch.add_column(sa.Column("manager_id", sa.String(), nullable=True))
        batch.create_index("ix_crmrules_interactions_occurred_at", ["occurred_at"])
    _fill(schema, moves)


def _fill(schema: str | None, moves: sa.Table) -> None:
    """Copy what the new columns hold from each stored record, a chunk at a time."""
    from crmrules.adapters.sqlalchemy import UTCDateTime

    moment = UTCDateTime()
    tasks = sa.table(
        "crmrules_tasks",
        *(sa.column(n) for n in ("id", "kind", "rule")),
        sa.column("due_at", moment),
        sa.column("closed_at", moment),
        sa.column("data", sa.JSON()),
    )
    interactions = sa.table(
        "crmrules_interactions",
        *(sa.column(n) for n in ("id", "kind", "manager_id")),
        sa.column("data", sa.JSON()),
    )
    deals = sa.table(
        "crmrules_deals", sa.column("id"), sa.column("client_id"), sa.column("data", sa.JSON())
    )
    tasks.schema = interactions.schema = deals.schema = schema

    def when(text: str | None) -> datetime | None:
        """A stored moment in UTC: SQLite keeps a moment's wall-clock text, not its offset."""
        return None if text is None else datetime.fromisoformat(text).astimezone(UTC)

    def task_values(d: dict[str, Any]) -> dict[str, Any]:
        due, closed = when(d.get("due")), when(d.get("closed_at"))
        return {"kind": d.get("kind"), "rule": d.get("rule"), "due_at": due, "closed_at": closed}

    def interaction_values(d: dict[str, Any]) -> dict[str, Any]:
        return {"kind": d.get("kind"), "manager_id": d.get("manager")}

    fills: list[tuple[sa.TableClause, Callable[[dict[str, Any]], dict[str, Any]]]] = [
        (tasks, task_values),
        (interactions, interaction_values),
    ]
    for table, values in fills:
        for batch in _chunks(table):
            for row_id, data in batch:
                op.get_bind().execute(
                    sa.update(table).where(table.c.id == row_id).values(**values(data))
                )
    for batch in _chunks(deals):
        rows = [
            {
                "deal_id": row_id,
                "seq": 0,
                "client_id": data["client"],
                "pipeline": data["pipeline"],
                "stage": data["stage"],
                "position": 0,
                "final": False,
                "won": False,
                "entered_at": when(data.get("stage_entered_at") or data.get("created_at")),
            }
            for row_id, data in batch
            if data.get("stage_entered_at") or data.get("created_at")
        ]
        if rows:
            op.bulk_insert(moves, rows)


def _chunks(table: sa.TableClause) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The table's (id, data) rows, a chunk at a time in id order."""
    connection = op.get_bind()
    last: str | None = None
    while True:
        query = sa.select(table.c.id, table.c.data).order_by(table.c.id).limit(CHUNK)
        if last is not None:
            query = query.where(table.c.id > last)
        batch = [(row[0], row[1]) for row in connection.execute(query)]
        if not batch:
            return
        yield batch
        last = batch[-1][0]


def downgrade() -> None:
    schema = _schema()
    with op.batch_alter_table("crmrules_interactions", schema=schema) as batch:
        batch.drop_index("ix_crmrules_interactions_occurred_at")
        batch.drop_column("manager_id")
        batch.drop_column("kind")
    with op.batch_alter_table("crmrules_tasks", schema=schema) as batch:
        batch.drop_index("ix_crmrules_tasks_due_at")
        batch.drop_index("ix_crmrules_tasks_rule")
        for column in ("closed_at", "due_at", "rule", "kind"):
            batch.drop_column(column)
    for table in (
        "crmrules_stage_moves",
        "crmrules_request_items",
        "crmrules_requests",
        "crmrules_campaigns",
    ):
        op.drop_table(table, schema=schema)
