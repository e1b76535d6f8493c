"""Imports, duplicate keys and merges.

``crmrules_match_keys`` holds each client's normalised keys (phone, e-mail,
tax ids, name) under an index on (kind, key), for finding duplicates by SQL;
it is filled by ``crmrules duplicates`` (or the first import) from the
regulation's ``duplicates:`` section. ``crmrules_imports`` and
``crmrules_import_rows`` keep each import's progress and listed rows;
``crmrules_merges`` what each merge changed, for ``unmerge``.

Revision ID: 0009_import_merge
Revises: 0008_leases
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0009_import_merge"
down_revision: str | Sequence[str] | None = "0008_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = "crmrules_match_keys"
IMPORTS = "crmrules_imports"
ROWS = "crmrules_import_rows"
MERGES = "crmrules_merges"


def _schema() -> str | None:
    """The schema crmrules.adapters.migrate was given; None means the connection's default."""
    schema: str | None = context.config.attributes.get("schema")
    return schema


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        KEYS,
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "kind", "key", name=f"pk_{KEYS}"),
        schema=schema,
    )
    op.create_index(f"ix_{KEYS}_kind_key", KEYS, ["kind", "key"], schema=schema)
    op.create_table(
        IMPORTS,
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{IMPORTS}"),
        schema=schema,
    )
    op.create_table(
        ROWS,
        sa.Column("import_id", sa.String(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("import_id", "row", name=f"pk_{ROWS}"),
        schema=schema,
    )
    op.create_table(
        MERGES,
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("keep", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{MERGES}"),
        schema=schema,
    )
    op.create_index(f"ix_{MERGES}_keep", MERGES, ["keep"], schema=schema)


def downgrade() -> None:
    schema = _schema()
    for table in (MERGES, ROWS, IMPORTS, KEYS):
        op.drop_table(table, schema=schema)
