"""The facts of an event read from records a store lends, against those read from copies.

``Run.view`` reads the event's deal, client and the client's manager with
the memory store's ``lend_client`` / ``lend_deal`` / ``lend_manager`` (the
stored records themselves and their flat records, made once per stored
version) instead of copies. The oracle is the plain path every store has:
``Run.subjects`` (copies) and ``Run.facts``. Random records, managers kept
in the store, in the regulation or nowhere, and events of every kind.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crmrules import Client, Engine, Event, SimulatedClock, load_regulation
from crmrules.adapters import MemoryStore
from crmrules.model import Deal, Manager
from crmrules.result import Result
from crmrules.run import Run

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
REGULATION = """\
version: 1
pipelines:
  - id: sales
    stages: [{id: lead}, {id: won, final: true}]
fields:
  client.score: {type: integer}
managers:
  - id: listed
rules:
  - id: big
    on: client.updated
    if: {field: client.score, gt: 5}
    then: [{create_task: {title: "Call"}}]
"""
VALUES = st.none() | st.integers(-5, 5) | st.text(max_size=3) | st.lists(st.integers(), max_size=2)
FIELDS = st.dictionaries(st.sampled_from(["score", "segment", "labels", "name"]), VALUES)


@settings(max_examples=60, deadline=None)
@given(
    fields=FIELDS,
    deal_fields=FIELDS,
    responsible=st.sampled_from([None, "stored", "listed", "nobody"]),
    with_deal=st.booleans(),
    kind=st.sampled_from(["client.updated", "deal.updated", "deal.created", "visit"]),
    before=st.dictionaries(st.sampled_from(["score", "stage"]), VALUES, max_size=2),
)
def test_the_lent_view_is_the_copied_one(
    tmp_path_factory: Any,
    fields: dict[str, Any],
    deal_fields: dict[str, Any],
    responsible: str | None,
    with_deal: bool,
    kind: str,
    before: dict[str, Any],
) -> None:
    path = Path(tmp_path_factory.mktemp("view")) / "regulation.yaml"
    path.write_text(textwrap.dedent(REGULATION), encoding="utf-8")
    engine = Engine(load_regulation(path), MemoryStore(), SimulatedClock(NOW), entry_points=False)
    with engine.store.transaction() as tx:
        tx.put_manager(Manager(id="stored", name="Stored"))
        tx.put_client(Client(id="c1", name="Acme", responsible=responsible, fields=fields))
        tx.put_deal(
            Deal(
                id="d1", client="c1", pipeline="sales", stage="lead", amount=Decimal(3)
            ).model_copy(update={"fields": deal_fields})
        )
    event = Event(
        id="e1",
        type=kind,
        occurred_at=NOW,
        client=None if with_deal else "c1",
        deal="d1" if with_deal else None,
        data={"note": "x"},
        before=before,
        after={key: 1 for key in before},
    )
    with engine.store.transaction() as tx:
        run = Run(engine.setting, tx, NOW, Result("view"))
        client, deal, facts = run.view(event)
        copied_client, copied_deal = run.subjects(event)
        expected = run.facts(event, copied_client, copied_deal)
    assert facts == expected
    assert (client is None) == (copied_client is None)
    assert client is None or client.model_dump() == copied_client.model_dump()  # type: ignore[union-attr]
    assert (deal is None) == (copied_deal is None)
    assert deal is None or deal.model_dump() == copied_deal.model_dump()  # type: ignore[union-attr]
