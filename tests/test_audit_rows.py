"""The SQL store's audit rows: a rule's ``Miss`` written as its explained line, exactly.

The engine hands the SQL store the not_matched lines unexplained (a
``Miss``), and the store writes each explained, without making the
``AuditEntry``. The oracle is the line as it was written before: the
JSON of ``Miss.entry()`` (``json_values.audit_data``), keys in the same
order, on random conditions and facts (test_conditions_property.py).
The store sends that JSON as text it puts together from the parts an
event's lines share: the oracle is ``json.dumps`` of the dict, on lines of
several events and clients in any order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from crmrules.adapters import audit_rows, json_values
from crmrules.adapters.tables import tables_in
from crmrules.model import Event
from crmrules.rules.conditions import Condition, Facts
from crmrules.rules.why import Miss, Seen, Why
from crmrules.store import AuditEntry
from databases import Database, open_database
from test_conditions_property import compile_raw, conditions, facts

AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


@st.composite
def misses(draw: st.DrawFn) -> Miss:
    raw = draw(conditions())
    condition = compile_raw(raw)[0]
    assume(isinstance(condition, Condition))
    assert isinstance(condition, Condition)
    seen_facts: Facts = draw(facts(raw))
    assume(not condition(seen_facts))
    client = draw(st.none() | st.sampled_from(["c1", "клиент-2"]))
    kind = draw(st.sampled_from(["visit", "deal.updated"]))
    event = Event(id="e/1", type=kind, occurred_at=AT, client=client)
    seen = Seen.take(condition.reads, seen_facts, "v1")
    regulation = draw(st.none() | st.just("v1"))
    rule = draw(st.sampled_from(["r1", "правило"]))
    return Miss(AT, event, rule, Why(condition, seen), regulation)


SQLITE = sa.create_engine("sqlite://").dialect


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(misses())
def test_a_miss_is_written_as_its_entry(miss: Miss) -> None:
    written = audit_rows.Rows(SQLITE).row(miss)
    expected = audit_rows.Rows(SQLITE).row(miss.entry())
    assert written == expected
    data = json.loads(written["data"])
    assert list(data.items()) == list(json_values.dump(miss.entry()).items())
    assert written["data"] == json.dumps(json_values.dump(miss.entry()))
    assert AuditEntry.model_validate(data) == miss.entry()


@st.composite
def lines(draw: st.DrawFn) -> list[Miss]:
    """Lines of a few events, clients and versions, in any order (the parts shared change)."""
    base = draw(st.lists(misses(), min_size=1, max_size=3))
    found = []
    for _ in range(draw(st.integers(1, 12))):
        miss = draw(st.sampled_from(base))
        event = Event(
            id=draw(st.sampled_from(["e/1", "e/2", 'é\\"3'])),
            type=draw(st.sampled_from(["visit", "deal.updated"])),
            occurred_at=AT,
            client=draw(st.none() | st.sampled_from(["c1", "c«2»"])),
        )
        at = draw(st.sampled_from([AT, AT + timedelta(seconds=1), AT.astimezone()]))
        regulation = draw(st.none() | st.sampled_from(["v1", "v2"]))
        found.append(Miss(at, event, miss.rule, miss.why, regulation))
    return found


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(lines())
def test_the_lines_of_several_events_are_each_their_own_json(found: list[Miss]) -> None:
    rows = audit_rows.Rows(SQLITE)
    for miss in found:
        written = rows.row(miss)
        assert written["data"] == json.dumps(json_values.dump(miss.entry()))
        assert (written["event_id"], written["client_id"], written["regulation"]) == (
            miss.event_id,
            miss.client,
            miss.regulation,
        )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(misses())
def test_a_host_json_serializer_writes_every_line(miss: Miss) -> None:
    """With the host's own serializer the store does not put the text together itself."""

    def sorted_dumps(value: object) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)

    dialect = sa.create_engine("sqlite://", json_serializer=sorted_dumps).dialect
    written = audit_rows.Rows(dialect).row(miss)
    assert written["data"] == sorted_dumps(json_values.dump(miss.entry()))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with open_database(request.param, tmp_path) as found:
        yield found


def _stored(connection: sa.Connection, table: sa.Table) -> list[tuple[Any, ...]]:
    """The rows as the database keeps them: the JSON as text."""
    query = sa.select(
        table.c.event_id, sa.cast(table.c.data, sa.Text), table.c.client_id, table.c.regulation
    )
    return [tuple(row) for row in connection.execute(query.order_by(table.c.id))]


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
@given(found=lines())
def test_the_rows_written_are_those_core_writes(database: Database, found: list[Miss]) -> None:
    """The text sent is the text Core's JSON type sends for the dict, on each database,
    through one multi-row INSERT or several (``BATCH``)."""
    engine = sa.create_engine(database.url)
    audit = tables_in(database.schema).audit
    try:
        with engine.begin() as connection:
            connection.execute(sa.delete(audit))
            dicts = [
                {
                    "event_id": miss.event_id,
                    "data": json_values.dump(miss.entry()),
                    "client_id": miss.client,
                    "regulation": miss.regulation,
                }
                for miss in found
            ]
            connection.execute(sa.insert(audit), dicts)
            core = _stored(connection, audit)
            connection.execute(sa.delete(audit))
            rows = audit_rows.Rows(connection.dialect)
            audit_rows.write(connection, audit, [rows.row(miss) for miss in found])
            fast = _stored(connection, audit)
            connection.execute(sa.delete(audit))
        assert fast == core
    finally:
        engine.dispose()
