"""Databases for the isolation tests: memory, a SQLite file, a fresh PostgreSQL schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from crmrules.adapters import migrate

POSTGRES = os.environ.get("CRMRULES_TEST_POSTGRES_URL")


@dataclass(frozen=True)
class Database:
    """A migrated database: its URL and the schema holding the crmrules tables."""

    url: str
    schema: str | None

    @property
    def search_path_url(self) -> str:
        """The URL with the schema as search_path, for a process that takes only a URL."""
        if self.schema is None:
            return self.url
        return str(
            sa.make_url(self.url)
            .update_query_dict({"options": f"-csearch_path={self.schema}"})
            .render_as_string(hide_password=False)
        )


@contextmanager
def open_database(kind: str, tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite file, or a fresh PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
        migrate.upgrade(url)
        yield Database(url, None)
        return
    if not POSTGRES:
        pytest.skip("PostgreSQL tests need CRMRULES_TEST_POSTGRES_URL")
    schema = f"crmrules_iso_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        migrate.upgrade(POSTGRES, schema=schema)  # creates the schema too
        yield Database(POSTGRES, schema)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """SQLite always; PostgreSQL when CRMRULES_TEST_POSTGRES_URL is set (a fresh schema)."""
    with open_database(request.param, tmp_path) as db:
        yield db
