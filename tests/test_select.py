"""``engine.select`` and ``crmrules select``: the clients a territory, a rule or a condition takes.

The oracle is a plain loop: every client read back from the store, its
territories or the rule's Python condition checked one by one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.errors import RefusedError, RegulationError
from crmrules.model import Client
from crmrules.rules.regulation import load_regulation
from crmrules.selection import descendants, with_manager
from crmrules.store import Store
from databases import Database, open_database

ROOT = Path(__file__).parent.parent
REGULATION = ROOT / "examples" / "territories" / "regulation.yaml"
MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)
REGIONS = ["Москва", "Санкт-Петербург", "Казань", None]


def _clients() -> list[Client]:
    return [
        Client(
            id=f"c{i:03}",
            name=f"Клиент {i}",
            region=REGIONS[i % 4],
            responsible="ivanov" if i % 5 == 0 else None,
            last_contact_at=NOW - timedelta(days=i),
            fields={"segment": "ABC"[i % 3], "employees": i * 7},
        )
        for i in range(40)
    ]


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


def _engine(store: Store) -> Engine:
    engine = Engine(load_regulation(REGULATION), store, SimulatedClock(NOW), entry_points=False)
    for client in _clients():
        engine.create_client(client)
    return engine


def _stored(engine: Engine) -> list[Client]:
    with engine.store.transaction() as tx:
        return sorted(tx.iter_clients(), key=lambda c: c.id)


def test_a_territory_takes_its_members_and_those_of_its_children(store: Store) -> None:
    engine = _engine(store)
    clients = _stored(engine)
    below = descendants(engine.regulation)
    for territory in engine.regulation.territories:
        expected = [c.id for c in clients if c.territories & below[territory]]
        assert list(engine.select(territory=territory)) == expected
    assert below["msk"] == {"msk", "msk-key"}
    assert list(engine.select(territory="msk-key"))  # not vacuous


def test_a_rule_takes_the_clients_its_condition_takes(store: Store) -> None:
    engine = _engine(store)
    clients = _stored(engine)
    facts = with_manager(engine.regulation)
    for rule in engine.regulation.rules:
        with engine.store.transaction() as tx:
            expected = [c.id for c in clients if rule.condition(facts(tx, c, NOW))]
        assert list(engine.select(rule=rule.id)) == expected
    assert len(list(engine.select(rule="assign-enterprise"))) == len(
        [c for c in clients if not c.responsible and c.fields["employees"] >= 250]
    )


def test_an_ad_hoc_condition_with_a_leaf_only_python_decides(store: Store) -> None:
    engine = _engine(store)
    clients = _stored(engine)
    condition = {
        "all": [
            {"field": "client.last_contact_at", "older_than": "30 days"},
            {"not": {"field": "client.name", "matches": "1$"}},
            {"field": "client.segment", "in": ["A", "B"]},
        ]
    }
    expected = [
        c.id
        for c in clients
        if c.last_contact_at is not None
        and c.last_contact_at < NOW - timedelta(days=30)
        and not c.name.endswith("1")
        and c.fields["segment"] in ("A", "B")
    ]
    assert expected
    assert list(engine.select(condition=condition)) == expected


def test_select_refuses_what_it_cannot_select() -> None:
    engine = _engine(MemoryStore())
    with pytest.raises(
        RefusedError, match=r"exactly one of segment=, territory=, rule= or condition="
    ):
        engine.select()
    with pytest.raises(RefusedError, match="no territory 'mks'"):
        engine.select(territory="mks")
    with pytest.raises(RefusedError, match="no rule 'nope'"):
        engine.select(rule="nope")
    with pytest.raises(RegulationError, match=r"unknown field 'client\.regoin'"):
        engine.select(condition={"field": "client.regoin", "eq": "Москва"})


def _crmrules(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crmrules", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_the_select_command_prints_ids_a_count_or_json(tmp_path: Path) -> None:
    with open_database("sqlite", tmp_path) as db:
        _fill(db)
        expected = [c.id for c in _clients() if c.region == "Москва"]
        base = ("select", str(REGULATION), "--store", db.url, "--territory", "msk")
        listed = _crmrules(*base)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines() == expected
        counted = _crmrules(*base, "--count")
        assert counted.stdout == f"{len(expected)}\n"
        as_json = _crmrules(*base, "--json")
        assert json.loads(as_json.stdout) == expected
        wrong = _crmrules("select", str(REGULATION), "--store", db.url, "--rule", "nope")
        assert wrong.returncode == 1
        assert wrong.stderr.startswith("error: no rule 'nope' in the regulation (rules: ")


def _fill(db: Database) -> None:
    with SQLAlchemyStore(db.url) as store:
        _engine(store)
