"""Realignment screens a chunk as a set (SQL) and agrees with recomputing each client alone.

The oracle is the per-client path (``realign._compute``: the client loaded,
typed and recomputed in Python), which the SQL screening must reproduce:
on random regulations (territories with random conditions, a parent and
child, exclusive siblings with priorities, segments whose conditions name
territories) and random clients (some aligned by the engine, some stored
stale, with manual overrides and entries for territories that are gone),
the clients the screening leaves out are exactly those whose memberships
the regulation leaves as they are, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import test_conditions_property as gen
from crmrules import realign
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, SQLAlchemyTransaction
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.errors import CrmRulesError, RegulationError
from crmrules.model import Client, MembershipSource, TerritoryMembership
from crmrules.rules.regulation import load_regulation
from databases import open_database
from scaled import examples
from test_sql_conditions import clients, conditions

TERRITORY_IDS = ("msk", "msk-ent", "north", "south")
FIELDS = {
    "client.segment": {"type": "enum", "values": ["A", "B", "C"]},
    "client.employees": {"type": "integer"},
    "client.revenue": {"type": "decimal"},
    "client.subscribed": {"type": "boolean"},
    "client.contract_end": {"type": "date"},
}


def _client_only(raw: Any) -> Any:
    """``raw`` with leaves a territory cannot use (deals, managers, changes) made plain."""
    if isinstance(raw, dict):
        if "all" in raw or "any" in raw:
            key = "all" if "all" in raw else "any"
            return {key: [_client_only(item) for item in raw[key]]}
        if "not" in raw:
            return {"not": _client_only(raw["not"])}
        field = raw.get("field", "client.")
        if not str(field).startswith("client.") or any(k.startswith("changed") for k in raw):
            return {"field": "client.subscribed", "eq": True}
        value = next((v for k, v in raw.items() if k not in ("field", "ignore_case")), None)
        if isinstance(value, dict) and not str(value.get("field", "client.")).startswith("client."):
            return {"field": "client.subscribed", "eq": True}
    return raw


@st.composite
def regulations(draw: st.DrawFn) -> str:
    territories = []
    for tid in draw(st.lists(st.sampled_from(TERRITORY_IDS), unique=True)):
        entry: dict[str, Any] = {"id": tid, "when": _client_only(draw(conditions()))}
        if tid == "msk-ent" and draw(st.booleans()):
            entry["parent"] = "msk"
        if tid in ("north", "south") and draw(st.booleans()):
            entry["exclusive"] = True
            entry["priority"] = draw(st.integers(0, 2))
        territories.append(entry)
    known = [t["id"] for t in territories]
    segments = []
    for sid in draw(st.lists(st.sampled_from(["key", "big"]), unique=True)):
        when: dict[str, Any] = _client_only(draw(conditions()))
        if known and draw(st.booleans()):
            when = {"any": [when, {"territory": draw(st.sampled_from(known))}]}
        segments.append({"id": sid, "when": when})
    document = {
        "version": 1,
        "calendar": {"timezone": gen.TZ_NAME},
        "fields": FIELDS,
        "territories": territories,
        "segments": segments,
    }
    return json.dumps(document, ensure_ascii=False, default=str)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with open_database(request.param, tmp_path) as db:
        yield db


def _stale(draw: st.DrawFn, client: Client, now: datetime) -> list[TerritoryMembership]:
    """Memberships a client may have been left with: rule entries, overrides, gone territories."""
    names = [*TERRITORY_IDS, "gone", "segment:key", "segment:big", "segment:gone"]
    sources = list(MembershipSource)
    entries = []
    for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=3)):
        entries.append(
            TerritoryMembership(
                client=client.id, territory=name, source=draw(st.sampled_from(sources)), since=now
            )
        )
    return entries


def test_the_screened_chunk_is_the_per_client_answer(database: Any, tmp_path: Path) -> None:
    counter = iter(range(10**9))

    @settings(
        max_examples=examples(60),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        path = tmp_path / f"regulation-{next(counter)}.json"
        document = data.draw(regulations())
        path.write_text(document, encoding="utf-8")
        try:
            regulation = load_regulation(path)
        except RegulationError:
            assume(False)
            return
        now = data.draw(st.sampled_from(gen.NOWS))
        parsed = json.loads(document)
        raw = {"any": [t["when"] for t in parsed["territories"] + parsed["segments"]]}
        note(document)
        with SQLAlchemyStore(database.url, schema=database.schema) as store:
            engine = Engine(regulation, store, SimulatedClock(now), entry_points=False)
            with store.transaction() as tx:
                for old in tx.client_ids():
                    tx.delete_client(old)
            drawn = data.draw(clients(raw))
            for client in drawn:
                if data.draw(st.booleans()):
                    engine.create_client(client)  # aligned by the engine itself
                    continue
                stale = client.model_copy(
                    update={
                        "territories": frozenset(
                            data.draw(st.lists(st.sampled_from([*TERRITORY_IDS, "gone"])))
                        ),
                        "segments": frozenset(data.draw(st.lists(st.sampled_from(["key", "x"])))),
                    }
                )
                with store.transaction() as tx:
                    tx.put_client(stale)
                    tx.set_memberships(client.id, _stale(data.draw, client, now))
            ids = sorted(c.id for c in drawn)
            with store.transaction() as tx:
                assert isinstance(tx, SQLAlchemyTransaction)
                expected = []
                for client_id in ids:
                    client = tx.get_client(client_id)
                    assert client is not None
                    try:
                        if not realign._compute(engine, tx, client, now).unchanged:
                            expected.append(client_id)
                    except CrmRulesError:
                        expected.append(client_id)
                screened = realign._screen(engine, tx, ids, now)
            note(f"expected {expected}, screened {screened}")
            assert screened == expected

    check()


def test_a_realignment_leaves_every_client_unchanged_for_the_screen(
    database: Any, tmp_path: Path
) -> None:
    """After a realignment the screen passes every client: nothing is read one by one."""
    path = tmp_path / "regulation.yaml"
    path.write_text(
        "version: 1\n"
        "calendar: {timezone: Europe/Moscow}\n"
        "fields: {client.employees: {type: integer}}\n"
        "territories:\n"
        "  - {id: msk, when: {field: client.region, eq: Москва}}\n"
        "  - {id: big, parent: msk, when: {field: client.employees, gte: 100}}\n"
        "segments:\n"
        "  - {id: key, when: {all: [{territory: big}, {field: client.name, matches: '^О'}]}}\n",
        encoding="utf-8",
    )
    now = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    with SQLAlchemyStore(database.url, schema=database.schema) as store:
        engine = Engine(load_regulation(path), store, SimulatedClock(now), entry_points=False)
        regions = ["Москва", "Казань"]
        with store.transaction() as tx:
            for i in range(40):
                tx.put_client(
                    Client(
                        id=f"c{i:02}",
                        name="ООО Ромашка" if i % 3 else "ИП Лютик",
                        region=regions[i % 2],
                        fields={"employees": i * 7},
                    )
                )
        report = engine.realign(dry_run=False)
        assert report.changed == 20  # the Moscow clients
        ids = [f"c{i:02}" for i in range(40)]
        with store.transaction() as tx:
            assert realign._screen(engine, tx, ids, now) == []
            key = {c for c in ids if "key" in (tx.get_client(c) or Client(id=c)).segments}
        assert key == {f"c{i:02}" for i in range(40) if i % 2 == 0 and i * 7 >= 100 and i % 3}
        assert engine.realign(dry_run=True).changed == 0
