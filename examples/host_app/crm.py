"""The back office wired to crmrules: its `companies` table read as crmrules clients.

The mapping says which column holds which crmrules field; crmrules keeps
only its own tables (tasks, mailings, outbox, memberships, audit) beside
the host's, and works inside the host's own transaction.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.orm import Session

from crmrules import (
    Clock,
    Engine,
    HostRecords,
    HostTable,
    Regulation,
    SQLAlchemyStore,
    load_regulation,
)

from .app import Company

REGULATION = Path(__file__).parent / "regulation.yaml"

RECORDS = HostRecords(
    clients=HostTable(
        Company,
        id="company_id",
        columns={
            "name": "title",
            "email": "email",
            "city": "city_name",
            "region": "region_name",
            "responsible": "account_manager",
            "created_at": "registered",
            "segment": "tier",  # a custom field declared in the regulation
            "employees": "staff_count",
        },
    )
)


def load() -> Regulation:
    return load_regulation(REGULATION)


def crm(session: Session, regulation: Regulation, clock: Clock | None = None) -> Engine:
    """crmrules working inside ``session``'s transaction: both commit or roll back together."""
    store = SQLAlchemyStore(session, records=RECORDS)
    return Engine(regulation, store=store, clock=clock, entry_points=False)


def worker_engine() -> Engine:
    """The engine ``crmrules worker --app examples.host_app.crm:worker_engine`` runs.

    The worker must read companies through the same mapping as the app; a
    worker started on the bare database would see no clients at all.
    """
    url = os.environ.get("CRMRULES_DATABASE_URL", "sqlite:///backoffice.sqlite3")
    return Engine(load(), store=SQLAlchemyStore(url, records=RECORDS), entry_points=False)
