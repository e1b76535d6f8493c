"""Conditions as SQL agree with conditions in Python, on SQLite and PostgreSQL.

Random conditions (every operator, nesting, negation, comparisons of two
fields, missing values, Unicode that folds differently from ``lower()``,
decimals at the edges of floats and of PostgreSQL's range, moments at the
calendar's day boundaries) over random clients stored in a real database:
the ids ``select_ids`` returns (SQL, then Python on the rows SQL kept where it
cannot decide) are exactly those the Python condition takes, and a condition
and its negation split the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import test_conditions_property as gen
from crmrules.adapters import migrate
from crmrules.adapters.host import HostRecords, HostTable
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, SQLAlchemyTransaction, _dump, metadata
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.model import Client, MembershipSource, TerritoryMembership, one_address
from crmrules.rules.conditions import Condition, Facts, Node, Not, normalise
from crmrules.rules.regulation import load_regulation
from crmrules.rules.sql import compile_filter
from crmrules.selection import Selection, client_source, select_ids
from databases import open_database
from scaled import examples

BUILTIN = {"name", "region", "email", "kind", "tags", "territories", "created_at"}
CUSTOM = {"segment", "employees", "revenue", "subscribed", "contract_end"}

#: Numbers at the edges: floats that cannot hold them, ints past 2**53, PostgreSQL's clamp.
NOW = datetime(2025, 6, 1, tzinfo=UTC)
EDGE_NUMBERS = ["0.1", "0.3", "1E+30", "-1E-30", "9007199254740993", "9007199254740992"]
EDGE_NUMBERS += ["1E+200", "-1E+200", "1E-200", "0.30000000000000004", "-0", "1E+100"]
#: Texts whose case folding differs from lower(): ß, İ, ё, titlecase digraphs, final sigma.
EDGE_TEXTS = ["ёлка", "ЁЛКА", "Ёлка", "İ", "i̇", "I", "ı", "ǅ", "ǆ", "ΣΊΣΥΦΟΣ", "σίσυφος"]
EDGE_TEXTS += ["STRASSE", "straße", "ﬁ", "FI"]

NUMBER_PATHS = ("client.employees", "client.revenue")
TEXT_PATHS = ("client.name", "client.region", "client.email")
MOMENT_PATHS = ("client.created_at",)


@st.composite
def edge_leaves(draw: st.DrawFn) -> dict[str, Any]:
    """Leaves the shared generator rarely makes: edge literals and two-field comparisons."""
    kind = draw(st.sampled_from(["number", "text", "ref"]))
    if kind == "number":
        op = draw(st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in"]))
        value: Any = draw(st.sampled_from(EDGE_NUMBERS))
        if op in ("in", "not_in"):
            value = draw(st.lists(st.sampled_from(EDGE_NUMBERS), min_size=1, max_size=3))
        return {"field": "client.revenue", op: value}
    if kind == "text":
        op = draw(st.sampled_from(["eq", "ne", "contains", "starts_with", "ends_with", "in"]))
        path = draw(st.sampled_from(TEXT_PATHS))
        text = draw(st.sampled_from(EDGE_TEXTS))
        leaf: dict[str, Any] = {"field": path, op: [text] if op == "in" else text}
        if draw(st.booleans()):
            leaf["ignore_case"] = True
        return leaf
    pairs = [NUMBER_PATHS, TEXT_PATHS, ("client.segment", "client.kind"), MOMENT_PATHS]
    pairs.append(("client.contract_end",))
    pairs.append(("client.subscribed",))
    paths = draw(st.sampled_from(pairs))
    left, right = draw(st.sampled_from(paths)), draw(st.sampled_from(paths))
    ordered = left in NUMBER_PATHS or left in MOMENT_PATHS or left == "client.contract_end"
    op = draw(st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte"] if ordered else ["eq", "ne"]))
    leaf = {"field": left, op: {"field": right}}
    if left in TEXT_PATHS and op in ("eq", "ne") and draw(st.booleans()):
        leaf["ignore_case"] = True
    return leaf


def conditions() -> st.SearchStrategy[dict[str, Any]]:
    leaves = gen.leaves() | edge_leaves()

    def extend(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        return st.one_of(
            st.lists(inner, min_size=1, max_size=4).map(lambda items: {"all": items}),
            st.lists(inner, min_size=1, max_size=4).map(lambda items: {"any": items}),
            inner.map(lambda item: {"not": item}),
        )

    return st.recursive(leaves, extend, max_leaves=8)


def edge_value(path: str) -> st.SearchStrategy[Any]:
    if path == "client.revenue":
        return st.sampled_from(EDGE_NUMBERS).map(Decimal)
    if path == "client.employees":
        return st.sampled_from([2**53 + 1, 2**53, -(2**63), 10**30, 0])
    if path in TEXT_PATHS:
        return st.sampled_from(EDGE_TEXTS)
    return st.nothing()


@st.composite
def clients(draw: st.DrawFn, raw: dict[str, Any]) -> list[Client]:
    """A few clients whose values often sit near the condition's literals."""
    plain = [
        leaf for leaf in gen.leaves_of(raw) if not any(isinstance(v, dict) for v in leaf.values())
    ]
    hints = {"all": plain} if plain else None
    result = []
    for index in range(draw(st.integers(1, 6))):
        record = draw(gen.facts(hints)).records.get("client") or {}
        record = dict(record)
        for path in (*NUMBER_PATHS, *TEXT_PATHS):
            if draw(st.integers(0, 3)) == 0:
                record[path.split(".", 1)[1]] = draw(edge_value(path))
        builtin = {k: v for k, v in record.items() if k in BUILTIN and v is not None}
        if (
            "email" in builtin
        ):  # an e-mail field holds one address: text that is not one is left out
            try:
                one_address(builtin["email"])
            except ValueError:
                del builtin["email"]
        custom = {k: v for k, v in record.items() if k in CUSTOM}
        result.append(Client(id=f"c{index}", **builtin, fields=custom))
    return result


def _parse(raw: dict[str, Any]) -> Node | None:
    problems: list[Any] = []
    return gen.parse(raw, ("if",), gen.make_scope(problems))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLAlchemyStore]:
    with open_database(request.param, tmp_path) as db:
        engine = sa.create_engine(db.url.replace("postgresql://", "postgresql+psycopg://", 1))
        if db.schema is not None:
            engine = sa.create_engine(
                db.search_path_url.replace("postgresql://", "postgresql+psycopg://", 1)
            )
        with SQLAlchemyStore(engine) as opened:
            yield opened
        engine.dispose()


def _replace_clients(store: SQLAlchemyStore, stored: list[Client]) -> list[Client]:
    with store.transaction() as tx:
        assert isinstance(tx, SQLAlchemyTransaction)
        tx.connection.execute(sa.delete(tx.tables.client_values))
        tx.connection.execute(sa.delete(tx.tables.clients))
        for client in stored:
            tx.put_client(client)
    with store.transaction() as tx:
        return [c for c in (tx.get_client(client.id) for client in stored) if c is not None]


def _agrees(store: SQLAlchemyStore, replace: Any) -> None:
    """SQL then Python gives the Python answer; a condition and its negation split the table."""

    @settings(
        max_examples=examples(200),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        raw = data.draw(conditions())
        tree = _parse(raw)
        assume(tree is not None)
        assert tree is not None
        now = data.draw(st.sampled_from(gen.NOWS))
        stored = replace(store, data.draw(clients(raw)))
        condition = Condition(tree, gen.CAL)
        expected = [c.id for c in stored if condition(Facts({"client": c.record()}, now))]
        chunk = data.draw(st.sampled_from([2, 1000]))
        got = list(select_ids(store, Selection(tree, gen.CAL, now), chunk=chunk, fetch=chunk))
        note(f"tree {tree!r}")
        assert got == sorted(expected)
        negation = normalise(Not(tree))
        rest = list(select_ids(store, Selection(negation, gen.CAL, now), chunk=chunk, fetch=3))
        assert sorted(got + rest) == sorted(c.id for c in stored)

    check()


def test_sql_then_python_is_the_python_answer(store: SQLAlchemyStore) -> None:
    _agrees(store, _replace_clients)


#: The host's client table: a column for each field the generated clients have, but tags.
HOST_COLUMNS = {
    "name": "title",
    "region": "region_name",
    "email": "email",
    "kind": "kind",
    "created_at": "created",
    "segment": "tier",
    "employees": "staff",
    "revenue": "revenue",
    "subscribed": "subscribed",
    "contract_end": "contract_end",
}


def _host_table(metadata: sa.MetaData, postgres: bool) -> sa.Table:
    return sa.Table(
        "companies",
        metadata,
        sa.Column("company_id", sa.String, primary_key=True),
        sa.Column("title", sa.String, nullable=False),
        sa.Column("region_name", sa.Text),
        sa.Column("email", sa.String(200)),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("created", sa.DateTime(timezone=postgres)),  # naive UTC on SQLite
        sa.Column("tier", sa.String),
        sa.Column("staff", sa.BigInteger),
        # Exact on PostgreSQL; a float on SQLite (its NUMERIC would read back rounded).
        sa.Column("revenue", sa.Numeric if postgres else sa.Float),
        sa.Column("subscribed", sa.Boolean),
        sa.Column("contract_end", sa.Date),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def host_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLAlchemyStore]:
    """A store whose clients live in a host table (``HostRecords``), its columns mapped."""
    with open_database(request.param, tmp_path) as db:
        url = db.search_path_url if db.schema is not None else db.url
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        table = _host_table(sa.MetaData(), request.param == "postgresql")
        table.create(engine)
        records = HostRecords(clients=HostTable(table, id="company_id", columns=HOST_COLUMNS))
        with SQLAlchemyStore(engine, records=records) as opened:
            yield opened
        engine.dispose()


def _replace_host_clients(store: SQLAlchemyStore, stored: list[Client]) -> list[Client]:
    """The clients in the host's table, their territories in crmrules' memberships."""
    assert store.records is not None and store.records.clients is not None
    table = store.records.clients.sa_table
    with store.transaction() as tx:
        assert isinstance(tx, SQLAlchemyTransaction)
        tx.connection.execute(sa.delete(tx.tables.client_values))
        tx.connection.execute(sa.delete(tx.tables.memberships))
        tx.connection.execute(sa.delete(table))
        for client in stored:
            employees = client.fields.get("employees")
            if isinstance(employees, int) and abs(employees) >= 2**63:  # past a BIGINT
                client = client.model_copy(update={"fields": {**client.fields, "employees": None}})
            tx.put_client(client)
            tx.set_memberships(
                client.id,
                [
                    TerritoryMembership(
                        client=client.id, territory=t, source=MembershipSource.RULE, since=NOW
                    )
                    for t in sorted(client.territories)
                ],
            )
    with store.transaction() as tx:
        return [c for c in (tx.get_client(client.id) for client in stored) if c is not None]


def test_sql_over_host_columns_is_the_python_answer(host_store: SQLAlchemyStore) -> None:
    _agrees(host_store, _replace_host_clients)


def test_host_leaves_need_no_python(host_store: SQLAlchemyStore) -> None:
    """Guards against vacuity: leaves over mapped columns are decided by SQL alone."""
    exact = [
        {"field": "client.region", "eq": "Москва", "ignore_case": True},
        {"field": "client.name", "contains": "ß", "ignore_case": True},
        {"territory": "msk"},
        {"field": "client.created_at", "older_than": "30 days"},
        {"field": "client.employees", "gte": 10},
        {"field": "client.contract_end", "before": "2025-07-01"},
        {"not": {"field": "client.email", "is_empty": True}},
        {"field": "client.subscribed", "eq": True},
        {"field": "client.segment", "eq": {"field": "client.kind"}},
    ]
    with host_store.transaction() as tx:
        assert isinstance(tx, SQLAlchemyTransaction)
        for raw in [*exact, {"field": "client.revenue", "gt": "0.1"}]:
            tree = _parse(raw)
            assert tree is not None
            where = Selection(tree, gen.CAL, datetime(2025, 6, 15, tzinfo=UTC)).sql(tx)
            assert where.exact, raw
        for raw in [
            {"field": "client.tags", "contains": "vip"},
            {"field": "client.phone", "eq": "1"},
        ]:
            tree = _parse(raw)
            assert tree is not None
            assert not Selection(tree, gen.CAL, datetime(2025, 6, 15, tzinfo=UTC)).sql(tx).exact


def test_casefold_in_sql_is_pythons(host_store: SQLAlchemyStore) -> None:
    """``crmrules_casefold`` folds every character as ``str.casefold`` does, on both databases."""
    text = "".join(chr(p) for p in range(1, 0x110000) if not 0xD800 <= p < 0xE000)
    with host_store.transaction() as tx:
        assert isinstance(tx, SQLAlchemyTransaction)
        source = client_source(tx)
        assert source.host is not None
        folded = tx.connection.execute(sa.select(source.host.fold(sa.literal(text)))).scalar()
    assert folded == text.casefold()


def test_exact_leaves_need_no_python(store: SQLAlchemyStore) -> None:
    """Guards against vacuity: common leaves are decided by SQL alone."""
    exact = [
        {"field": "client.region", "eq": "Москва", "ignore_case": True},
        {"field": "client.tags", "contains_any": ["vip", "ß"]},
        {"territory": "msk"},
        {"field": "client.created_at", "older_than": "30 days"},
        {"field": "client.employees", "gte": 10},
        {"field": "client.contract_end", "before": "2025-07-01"},
        {"not": {"field": "client.email", "is_empty": True}},
        {"field": "client.created_at", "lt": {"field": "client.last_contact_at"}},
    ]
    with store.transaction() as tx:
        assert isinstance(tx, SQLAlchemyTransaction)
        for raw in exact:
            tree = _parse(raw)
            assert tree is not None
            where = Selection(tree, gen.CAL, datetime(2025, 6, 15, tzinfo=UTC)).sql(tx)
            assert where.exact, raw
        tree = _parse({"field": "client.region", "matches": "^Мос"})
        assert tree is not None
        where = compile_filter(
            tree,
            values=tx.tables.client_values,
            client_id=tx.tables.clients.c.id,
            calendar=gen.CAL,
            now=datetime(2025, 6, 15, tzinfo=UTC),
            dialect=tx.connection.dialect.name,
        )
        assert not where.exact


def test_the_migration_indexes_the_clients_already_stored(tmp_path: Path) -> None:
    """Clients written before 0004 are found by SQL once the database is upgraded."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    migrate.upgrade(url, revision="0003")
    clients = [
        Client(id=f"c{i}", region="Москва" if i % 2 else "Казань", tags=frozenset({"vip"}))
        for i in range(2_500)  # more than one chunk of the upgrade
    ]
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        rows = [{"id": c.id, "data": _dump(c)} for c in clients]
        connection.execute(sa.insert(metadata.tables["crmrules_clients"]), rows)
    engine.dispose()
    migrate.upgrade(url)
    tree = _parse({"all": [{"field": "client.region", "eq": "москва", "ignore_case": True}]})
    assert tree is not None
    with SQLAlchemyStore(url) as store:
        got = list(select_ids(store, Selection(tree, gen.CAL, datetime.now(UTC))))
    assert got == sorted(c.id for c in clients if c.region == "Москва")


HOST_SCHEDULE = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.segment: {type: enum, values: [A, B]}
  client.employees: {type: integer}
rules:
  - id: daily
    on: {every: 1 day, at: "09:00"}
    if:
      all:
        - {field: client.region, eq: москва, ignore_case: true}
        - {field: client.employees, gte: 10}
    then:
      - create_task: {kind: call, title: "Позвонить {{ client.name }}"}
"""


def test_a_schedule_fires_over_the_host_columns(
    host_store: SQLAlchemyStore, tmp_path: Path
) -> None:
    """A daily schedule over host-kept clients: the clients SQL selects get their tasks."""
    path = tmp_path / "regulation.yaml"
    path.write_text(HOST_SCHEDULE, encoding="utf-8")
    start = datetime(2026, 6, 1, 5, 0, tzinfo=UTC)  # 08:00 in Moscow
    engine = Engine(load_regulation(path), host_store, SimulatedClock(start), entry_points=False)
    regions = ["Москва", "МОСКВА", "Казань", None]
    with host_store.transaction() as tx:
        for i in range(40):
            region, employees = regions[i % 4], (i * 7) % 20
            fields = {"employees": employees} if i % 5 else {}
            tx.put_client(Client(id=f"h{i:02}", name=f"ООО {i}", region=region, fields=fields))
    want = sorted(f"h{i:02}" for i in range(40) if i % 4 in (0, 1) and i % 5 and (i * 7) % 20 >= 10)
    with host_store.transaction() as tx:
        assert isinstance(tx, SQLAlchemyTransaction)
        tree = engine.rules_by_id["daily"].condition.tree
        assert Selection(tree, gen.CAL, start).sql(tx).exact
    assert list(engine.select(rule="daily")) == want
    engine.sync_timers()
    engine.run_due(datetime(2026, 6, 1, 6, 0, tzinfo=UTC))
    assert sorted(t.client for t in engine.tasks() if t.client) == want


def test_the_migration_indexes_host_memberships_already_stored(tmp_path: Path) -> None:
    """Memberships of host-kept clients stored before 0005_host_sql are found by SQL after it."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    migrate.upgrade(url, revision="0004")
    engine = sa.create_engine(url)
    table = _host_table(sa.MetaData(), postgres=False)
    table.create(engine)
    msk = TerritoryMembership(client="h1", territory="msk", source=MembershipSource.RULE, since=NOW)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(table), [{"company_id": "h1", "title": "А", "kind": "company"}]
        )
        rows = [{"client_id": "h1", "data": [_dump(msk)]}]
        connection.execute(sa.insert(metadata.tables["crmrules_memberships"]), rows)
    engine.dispose()
    migrate.upgrade(url)
    records = HostRecords(clients=HostTable(table, id="company_id", columns=HOST_COLUMNS))
    tree = _parse({"territory": "msk"})
    assert tree is not None
    with SQLAlchemyStore(url, records=records) as store:
        assert list(select_ids(store, Selection(tree, gen.CAL, NOW))) == ["h1"]
