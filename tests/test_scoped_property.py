"""No scoped read returns an out-of-scope record, and every in-scope record is returned.

Random clients (with deals, tasks, interactions and contacts), random
directions and a random manager, on memory, SQLite and PostgreSQL. The oracle
is a plain evaluator of the generated conditions, written here apart from
crmrules' condition compiler: a client is in scope when one of the manager's
directions takes it, and a record when its client is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from crmrules import Client, Contact, ContactRole, Deal, Engine, Interaction, Manager, Task
from crmrules.access import OutOfScopeError
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, SQLAlchemyTransaction, metadata
from crmrules.clock import SimulatedClock
from crmrules.rules.regulation import load_regulation
from crmrules.store import Store
from databases import open_database
from scaled import examples

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
REGIONS = ["north", "south", "east", None]
TAGS = ["vip", "new", "b2b"]
NAMES = ["Ромашка", "Roma", "Лютик", ""]

HEADER = """\
version: 1
fields:
  client.employees: {type: integer}
pipelines:
  - id: sales
    stages: [{id: lead}, {id: won, final: true}]
territories:
  - id: big
    when: {field: client.employees, gte: 50}
managers:
  - id: anna
  - id: boris
"""

# -- conditions: generated as data, read by crmrules and by the oracle below

LEAVES = st.one_of(
    st.builds(lambda r: {"field": "client.region", "eq": r}, st.sampled_from(REGIONS[:3])),
    st.builds(
        lambda rs: {"field": "client.region", "in": rs},
        st.lists(st.sampled_from(REGIONS[:3]), min_size=1, max_size=2, unique=True),
    ),
    st.builds(lambda n: {"field": "client.employees", "gt": n}, st.integers(0, 100)),
    st.builds(lambda t: {"field": "client.tags", "contains": t}, st.sampled_from(TAGS)),
    st.builds(lambda b: {"field": "client.region", "is_empty": b}, st.booleans()),
    st.builds(lambda p: {"field": "client.name", "matches": p}, st.sampled_from(["^Ro", "ик$"])),
    st.just({"territory": "big"}),
)
CONDITIONS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=5,
)


def oracle(condition: dict[str, Any], client: dict[str, Any]) -> bool:
    """The generated condition on one client, by hand."""
    if "all" in condition:
        return all(oracle(c, client) for c in condition["all"])
    if "any" in condition:
        return any(oracle(c, client) for c in condition["any"])
    if "not" in condition:
        return not oracle(condition["not"], client)
    if "territory" in condition:
        return client["employees"] is not None and client["employees"] >= 50
    value = client[condition["field"].split(".")[1]]
    if "eq" in condition:
        return bool(value == condition["eq"])
    if "in" in condition:
        return value in condition["in"]
    if "gt" in condition:
        return value is not None and value > condition["gt"]
    if "contains" in condition:
        return condition["contains"] in value
    if "is_empty" in condition:
        return (value is None) == condition["is_empty"]
    return re.search(condition["matches"], value) is not None


CLIENTS = st.lists(
    st.fixed_dictionaries(
        {
            "region": st.sampled_from(REGIONS),
            "employees": st.one_of(st.none(), st.integers(0, 120)),
            "tags": st.sets(st.sampled_from(TAGS)),
            "name": st.sampled_from(NAMES),
            "deals": st.integers(0, 2),
            "tasks": st.integers(0, 2),
            "calls": st.integers(0, 2),
        }
    ),
    min_size=1,
    max_size=8,
)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    with (
        open_database(request.param, tmp_path) as db,
        SQLAlchemyStore(db.url, schema=db.schema) as opened,
    ):
        yield opened


def wipe(store: Store) -> Store:
    """An empty store for the next example (memory: a new one)."""
    if isinstance(store, MemoryStore):
        return MemoryStore()
    with store.transaction() as tx:
        assert isinstance(tx, SQLAlchemyTransaction)
        tables = {t.name: t for t in vars(tx.tables).values()}
        for original in reversed(metadata.sorted_tables):
            if original.name in tables:
                tx.connection.execute(sa.delete(tables[original.name]))
    return store


def test_scoped_reads_return_exactly_the_records_in_scope(store: Store, tmp_path: Path) -> None:
    @settings(
        max_examples=examples(25),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        directions=st.lists(CONDITIONS, min_size=1, max_size=3),
        mine=st.sets(st.integers(0, 2)),
        clients=CLIENTS,
        query=CONDITIONS,
        target=st.integers(0, 7),
    )
    def check(
        directions: list[dict[str, Any]],
        mine: set[int],
        clients: list[dict[str, Any]],
        query: dict[str, Any],
        target: int,
    ) -> None:
        names = [f"d{i}" for i in range(len(directions))]
        chosen = sorted(names[i] for i in mine if i < len(names))
        lines = [
            f"  - id: {n}\n    when: {json.dumps(c)}"
            for n, c in zip(names, directions, strict=True)
        ]
        path = tmp_path / "regulation.yaml"
        path.write_text(HEADER + "directions:\n" + "\n".join(lines) + "\n", "utf-8")
        note(path.read_text("utf-8"))
        engine = Engine(load_regulation(path), wipe(store), SimulatedClock(NOW), entry_points=False)
        engine.put_manager(Manager(id="anna", directions=frozenset(chosen)))
        engine.put_manager(Manager(id="boris"))
        expected: set[str] = set()
        for index, row in enumerate(clients):
            cid = f"c{index}"
            if any(oracle(directions[names.index(n)], row) for n in chosen):
                expected.add(cid)
            fields = {"employees": row["employees"]} if row["employees"] is not None else {}
            engine.create_client(
                Client(
                    id=cid, name=row["name"], region=row["region"], tags=row["tags"], fields=fields
                )
            )
            for d in range(row["deals"]):
                engine.create_deal(
                    Deal(id=f"{cid}-d{d}", client=cid, pipeline="sales", stage="lead")
                )
            for t in range(row["tasks"]):
                with engine.store.transaction() as tx:
                    tx.add_task(
                        Task(id=f"{cid}-t{t}", kind="call", title="t", client=cid, created_at=NOW)
                    )
            for i in range(row["calls"]):
                when = NOW - timedelta(days=i)
                engine.log_interaction(
                    Interaction(id=f"{cid}-i{i}", kind="call", client=cid, occurred_at=when)
                )
            engine.put_contact(
                Contact(
                    id=f"p{index}",
                    name="P",
                    roles=[
                        ContactRole(client=cid, role="director"),
                        ContactRole(client="c0", role="buyer"),
                    ],
                )
            )
        with engine.store.transaction() as tx:
            for who in ("anna", "boris"):
                tx.add_task(Task(id=f"own-{who}", kind="todo", title="x", assignee=who))

        view = engine.scoped("anna")
        assert list(view.client_ids()) == sorted(expected)
        for index in range(len(clients)):
            cid = f"c{index}"
            assert (view.get_client(cid) is not None) == (cid in expected)
        want_query = {f"c{i}" for i, row in enumerate(clients) if oracle(query, row)} & expected
        assert list(view.select(condition=query)) == sorted(want_query)
        deals = {f"c{i}-d{d}" for i, r in enumerate(clients) for d in range(r["deals"])}
        assert [d.id for d in view.deals()] == sorted(
            d for d in deals if d.split("-")[0] in expected
        )
        for deal in deals:
            assert (view.get_deal(deal) is not None) == (deal.split("-")[0] in expected)
        tasks = {t.id for t in view.tasks()}
        assert tasks == {
            f"c{i}-t{t}"
            for i, r in enumerate(clients)
            for t in range(r["tasks"])
            if f"c{i}" in expected
        } | {"own-anna"}
        every_task = {f"c{i}-t{t}" for i, r in enumerate(clients) for t in range(r["tasks"])}
        for task in every_task | {"own-anna", "own-boris"}:
            assert (view.get_task(task) is not None) == (task in tasks), task
        calls = {i.id for i in view.interactions()}
        assert calls == {
            f"c{i}-i{n}"
            for i, r in enumerate(clients)
            for n in range(r["calls"])
            if f"c{i}" in expected
        }
        contacts = view.contacts()
        for contact in contacts:
            assert contact.roles and all(role.client in expected for role in contact.roles)
        assert {c.id for c in contacts} == {
            f"p{i}" for i in range(len(clients)) if f"c{i}" in expected or "c0" in expected
        }

        # a write is refused exactly when its client is out of scope, and then changes nothing
        cid = f"c{target % len(clients)}"
        if cid in expected:
            view.update_client(cid, {"city": "Тверь"})
        else:
            with pytest.raises(OutOfScopeError, match=f"cannot change client {cid}:"):
                view.update_client(cid, {"city": "Тверь"})
        stored = engine.get_client(cid)
        assert stored is not None and (stored.city == "Тверь") == (cid in expected)

    check()
