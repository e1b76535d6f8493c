"""Audit rows written in one statement at commit, and SQLite's durability setting.

The SQL store keeps an event's audit rows until the transaction commits (or
someone reads the log) and writes them in one multi-row INSERT. What a
transaction sees and what survives a rollback must not change: every store
of the contract runs the same checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.errors import StoreError
from crmrules.store import Store
from test_store_contract import audit, store

__all__ = ["store"]  # the contract's fixture: memory, SQLite and PostgreSQL


def messages(store: Store) -> list[str]:
    with store.transaction() as tx:
        return [entry.message for entry in tx.audit_log()]


def test_a_failed_savepoint_takes_its_audit_rows_and_only_those(store: Store) -> None:
    with store.transaction() as tx:
        tx.add_audit(audit("ev-1", "before"))
        with pytest.raises(RuntimeError), tx.savepoint():
            tx.add_audit(audit("ev-1", "inside, rolled back"))
            raise RuntimeError("the rule failed")
        with tx.savepoint():
            tx.add_audit(audit("ev-1", "inside, kept"))
        assert [entry.message for entry in tx.audit_log(event_id="ev-1")] == [
            "before",
            "inside, kept",
        ]
        tx.add_audit(audit("ev-2", "after the read"))
    assert messages(store) == ["before", "inside, kept", "after the read"]


def test_a_rolled_back_transaction_writes_no_audit_rows(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.add_audit(audit("ev-1", "lost"))
        raise RuntimeError("the call failed")
    assert messages(store) == []


def pragma(store: SQLAlchemyStore, name: str) -> object:
    assert store.engine is not None
    with store.engine.connect() as connection:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_is_wal_with_synchronous_normal_by_default_and_full_on_request(
    tmp_path: Path,
) -> None:
    default = SQLAlchemyStore(f"sqlite:///{tmp_path}/normal.sqlite3")
    full = SQLAlchemyStore(f"sqlite:///{tmp_path}/full.sqlite3", sqlite_synchronous="full")
    try:
        assert pragma(default, "journal_mode") == "wal"
        assert pragma(default, "synchronous") == 1  # NORMAL
        assert pragma(full, "synchronous") == 2  # FULL
    finally:
        default.close()
        full.close()


def test_an_unknown_synchronous_setting_is_refused_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="one of NORMAL, FULL, not 'OFF'"):
        SQLAlchemyStore(f"sqlite:///{tmp_path}/off.sqlite3", sqlite_synchronous="OFF")
    assert not sa.inspect(sa.create_engine(f"sqlite:///{tmp_path}/off.sqlite3")).get_table_names()
