"""The SQL store lends the records the engine's evaluation reads (``lend_client`` and kin).

``Run.view`` reads the event's client, deal and manager without a copy when
the store lends them. The SQL transaction lends the record it validated
from the row (the one ``get_client`` copies), with its flat record: each
equal to what ``get_client(...).record()`` gives, unchanged by what a
caller does to the copies it got, and a new loan after a write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from crmrules import Client, Deal
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.model import Manager

AT = datetime(2026, 12, 3, 9, tzinfo=UTC)


def test_loans_equal_the_copies_and_follow_writes(tmp_path: Path) -> None:
    store = SQLAlchemyStore(f"sqlite:///{tmp_path}/lend.sqlite3")
    client = Client(id="c1", name="Ромашка", responsible="m1", fields={"labels": ["a", "b"]})
    with store.transaction() as tx:
        tx.put_client(client)
        tx.put_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new", created_at=AT))
        tx.put_manager(Manager(id="m1", email="m1@example.ru"))
    with store.transaction() as tx:
        assert tx.lend_client("nobody") is None and tx.lend_deal("nothing") is None
        assert tx.lend_manager("m2") is None
        lent = tx.lend_client("c1")
        assert lent is not None
        copy = tx.get_client("c1")
        assert copy is not None and lent[0] == copy and lent[1] == copy.record()
        copy.fields["labels"].append("changed")  # a caller's copy is its own
        lent[1]["labels"].append("changed")  # and so is the flat record's list
        assert lent[0].fields["labels"] == ["a", "b"]
        assert tx.lend_client("c1") is lent  # once per row's data
        for kind in ("deal", "manager"):
            loan = getattr(tx, f"lend_{kind}")(f"{kind[0]}1")
            stored = getattr(tx, f"get_{kind}")(f"{kind[0]}1")
            assert loan is not None and loan[0] == stored and loan[1] == stored.record()
        tx.put_client(client.model_copy(update={"name": "Лютик"}))
        again = tx.lend_client("c1")
        assert again is not None and again[0].name == "Лютик" and again[1]["name"] == "Лютик"
    store.close()
