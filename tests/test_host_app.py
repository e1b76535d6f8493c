"""examples/host_app: an existing SQLAlchemy app whose `companies` table crmrules reads.

The host writes its own rows in its own transaction; crmrules reads them
through the mapping in examples/host_app/crm.py, keeps its own tables
beside them, and commits or rolls back with the host.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from examples.host_app import crm
from examples.host_app.app import Base, Company, place_order, register_company
from sqlalchemy.orm import Session

from crmrules import Event, SimulatedClock
from crmrules.adapters import migrate
from crmrules.adapters.sqlalchemy import make_engine
from crmrules.errors import StoreError
from crmrules.model import TaskStatus

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)
POSTGRES = os.environ.get("CRMRULES_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """The host's database: its own tables, and crmrules' tables migrated beside them."""
    if request.param == "sqlite":
        db = make_engine(f"sqlite:///{tmp_path / 'backoffice.sqlite3'}")
    else:
        if not POSTGRES:
            pytest.skip("set CRMRULES_TEST_POSTGRES_URL to run against PostgreSQL")
        database = f"hostapp_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
        db = make_engine(sa.make_url(POSTGRES).set(database=database))
    Base.metadata.create_all(db)
    migrate.upgrade(db)
    try:
        yield db
    finally:
        db.dispose()
        if request.param == "postgresql":
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE "{database}"'))
            admin.dispose()


def company(**values: object) -> Company:
    defaults: dict[str, object] = {
        "company_id": "romashka",
        "title": "ООО Ромашка",
        "email": "info@romashka.example",
        "city_name": "Москва",
        "region_name": "Москва",
        "tier": "A",
        "staff_count": 120,
    }
    return Company(**{**defaults, **values})


def test_a_company_registered_by_the_host_gets_a_manager_in_the_same_transaction(
    engine: sa.Engine,
) -> None:
    regulation = crm.load()
    with Session(engine) as session, session.begin():
        register_company(session, company())
        result = crm.crm(session, regulation, SimulatedClock(NOW)).client_saved(
            "romashka", created=True, event_id="register-romashka"
        )
        assert result.fired == ["assign-new-company"]
    with Session(engine) as session:
        stored = session.get(Company, "romashka")
        assert stored is not None
        # crmrules wrote the assignment into the host's own column.
        assert stored.account_manager == "ivanov"
        assert stored.title == "ООО Ромашка"
        client = crm.crm(session, regulation).get_client("romashka")
    assert client is not None
    assert (client.name, client.city, client.fields["segment"]) == ("ООО Ромашка", "Москва", "A")
    assert client.territories == frozenset({"msk"})
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
    assert {"companies", "orders"} <= tables
    assert "crmrules_clients" in tables  # present (for hosts without their own), but unused:
    with engine.connect() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM crmrules_clients")).scalar()
    assert count == 0


def test_an_order_makes_a_task_and_a_mailing_and_rolls_back_with_the_host(
    engine: sa.Engine,
) -> None:
    regulation = crm.load()
    with Session(engine) as session, session.begin():
        register_company(session, company(account_manager="petrova"))
        crm.crm(session, regulation, SimulatedClock(NOW)).client_saved("romashka", created=True)

    def order(event_id: str, total: int) -> Event:
        return Event(
            id=event_id,
            type="order.placed",
            occurred_at=NOW,
            client="romashka",
            data={"total": total},
        )

    # The host's transaction fails after crmrules acted: neither the order nor the task stays.
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        place_order(session, "romashka", 250_000)
        crm.crm(session, regulation, SimulatedClock(NOW)).handle(order("order-1", 250_000))
        raise RuntimeError("the host's payment check failed")
    with Session(engine) as session:
        assert crm.crm(session, regulation).tasks(client="romashka") == []
        assert session.scalars(sa.text("SELECT count(*) FROM orders")).one() == 0

    # The same order again, and this time the host commits: both stay.
    with Session(engine) as session, session.begin():
        place_order(session, "romashka", 250_000)
        result = crm.crm(session, regulation, SimulatedClock(NOW)).handle(order("order-1", 250_000))
        assert result.fired == ["big-order-call"]
    with Session(engine) as session:
        engine_view = crm.crm(session, regulation)
        (task,) = engine_view.tasks(client="romashka", status=TaskStatus.OPEN)
        assert task.title == "Позвонить ООО Ромашка: заказ на 250000 ₽"
        assert task.assignee == "petrova"
        assert task.due == datetime(2026, 3, 3, 10, 0, tzinfo=MSK)
        with engine_view.store.transaction() as tx:
            (mailing,) = tx.find_mailings(client="romashka")
        assert mailing.subject == "Спасибо за заказ, ООО Ромашка"


def test_a_mapping_with_a_wrong_column_is_refused_with_the_columns_it_has() -> None:
    from crmrules.adapters.host import HostRecords, HostTable

    with pytest.raises(StoreError) as caught:
        HostRecords(clients=HostTable(Company, id="company_id", columns={"name": "name"}))
    assert str(caught.value).startswith(
        "The clients mapping names columns that table companies does not have: name."
    )


def test_a_rule_writing_an_unmapped_custom_field_is_a_clear_error(engine: sa.Engine) -> None:
    from crmrules.adapters import SQLAlchemyStore
    from crmrules.adapters.host import HostRecords, HostTable
    from crmrules.model import Client

    records = HostRecords(clients=HostTable(Company, id="company_id", columns={"name": "title"}))
    store = SQLAlchemyStore(engine, records=records)
    with pytest.raises(StoreError) as caught, store.transaction() as tx:
        tx.put_client(Client(id="lutik", name="ООО Лютик", fields={"segment": "B"}))
    assert str(caught.value) == (
        "client lutik: custom field 'segment' has no column in table companies. "
        "Add 'segment' to the clients mapping's columns."
    )
    store.close()
