"""Segments: named client lists by criteria, manual overrides, ``{segment: id}``, select."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.errors import RefusedError, RegulationError
from crmrules.model import Client, Event
from crmrules.rules.regulation import load_regulation
from crmrules.store import Store
from databases import open_database

ROOT = Path(__file__).parent.parent
BASE = (ROOT / "examples" / "territories" / "regulation.yaml").read_text(encoding="utf-8")
MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)
SEGMENTS = """
segments:
  - id: key-accounts
    name: Ключевые клиенты
    when: {all: [{field: client.segment, eq: A}, {territory: msk}]}
  - id: big
    when: {field: client.employees, gte: 250}
"""
RULES = """
  - id: key-account-call
    on: client.updated
    if: {segment: key-accounts}
    then:
      - create_task: {kind: call, title: "Ключевой клиент: {{ client.name }}"}
  - id: pin
    on: pin
    then: [{add_to_segment: big}, {remove_from_segment: key-accounts}]
  - id: unpin
    on: unpin
    then: [{clear_segment_override: big}, {clear_segment_override: key-accounts}]
"""


def write(tmp_path: Path, segments: str = SEGMENTS, rules: str = RULES) -> Path:
    path = tmp_path / "regulation.yaml"
    path.write_text(BASE.replace("\nrules:\n", f"\n{segments}\nrules:\n{rules}"), "utf-8")
    return path


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


def engine_on(store: Store, tmp_path: Path) -> Engine:
    regulation = load_regulation(write(tmp_path))
    return Engine(regulation, store, SimulatedClock(NOW), entry_points=False)


def client(engine: Engine, client_id: str) -> Client:
    found = engine.get_client(client_id)
    assert found is not None
    return found


def test_membership_follows_the_condition_and_the_overrides(store: Store, tmp_path: Path) -> None:
    engine = engine_on(store, tmp_path)
    fields = {"segment": "A", "employees": 10}
    engine.create_client(Client(id="c1", name="Ромашка", region="Москва", fields=fields))
    engine.create_client(Client(id="c2", name="Лютик", region="Казань", fields=fields))
    assert client(engine, "c1").segments == {"key-accounts"}
    assert client(engine, "c2").segments == frozenset()
    result = engine.update_client("c1", {"name": "ООО Ромашка"})
    assert result.fired == ["key-account-call"]
    assert "Ключевой клиент: ООО Ромашка" in [t.title for t in engine.tasks()]
    assert not any(t.client == "c2" and t.rule == "key-account-call" for t in engine.tasks())
    # Manual overrides win over the conditions until cleared.
    pinned = engine.handle(Event(id="e1", type="pin", occurred_at=NOW, client="c1"))
    assert [e.summary for e in pinned.effects_of("segment_override")] == [
        "client c1 added to segment big (manual, until cleared)",
        "client c1 removed from segment key-accounts (manual, until cleared)",
    ]
    assert client(engine, "c1").segments == {"big"}
    assert list(engine.select(segment="big")) == ["c1"]
    assert list(engine.select(segment="key-accounts")) == []
    engine.update_client("c1", {"name": "ООО «Ромашка»"})
    assert client(engine, "c1").segments == {"big"}
    engine.handle(Event(id="e2", type="unpin", occurred_at=NOW, client="c1"))
    assert client(engine, "c1").segments == {"key-accounts"}
    # The host calls do the same.
    engine.add_to_segment("c2", "key-accounts")
    assert list(engine.select(segment="key-accounts")) == ["c1", "c2"]
    engine.remove_from_segment("c1", "key-accounts")
    assert list(engine.select(segment="key-accounts")) == ["c2"]
    engine.clear_segment_override("c1", "key-accounts")
    engine.clear_segment_override("c2", "key-accounts")
    assert list(engine.select(segment="key-accounts")) == ["c1"]
    assert list(engine.select(condition={"not": {"segment": "key-accounts"}})) == ["c2"]
    # Segments are not territories: the client's territories hold none of them.
    assert client(engine, "c1").territories == {"msk", "msk-key"}
    with pytest.raises(RefusedError, match="no segment 'vip'"):
        engine.add_to_segment("c1", "vip")


def test_select_by_segment_equals_the_members_on_every_store(store: Store, tmp_path: Path) -> None:
    engine = engine_on(store, tmp_path)
    regions = ["Москва", "Казань", "Москва", None]
    for i in range(30):
        fields = {"segment": "ABC"[i % 3], "employees": i * 20}
        engine.create_client(Client(id=f"c{i:02}", region=regions[i % 4], fields=fields))
    with engine.store.transaction() as tx:
        clients = sorted(tx.iter_clients(), key=lambda c: c.id)
    for segment in ("key-accounts", "big"):
        expected = [c.id for c in clients if segment in c.segments]
        assert expected
        assert list(engine.select(segment=segment)) == expected
    big = [c.id for c in clients if c.fields["employees"] >= 250]
    assert list(engine.select(segment="big")) == big


def test_segment_mistakes_are_reported_with_their_location(tmp_path: Path) -> None:
    segments = SEGMENTS + "  - {id: loop, when: {segment: big}}\n"
    segments += "  - {id: deals, when: {field: deal.amount, gt: 5}}\n"
    rules = RULES + "  - {id: typo, on: x, if: {segment: bgi}, then: [{add_to_segment: vpi}]}\n"
    with pytest.raises(RegulationError) as raised:
        load_regulation(write(tmp_path, segments, rules))
    messages = [f"{p.message} ({p.hint})" for p in raised.value.problems]
    assert any(m.startswith("unknown segment 'big' (segments are defined") for m in messages)
    assert "a segment condition reads client fields only, not deal.amount (None)" in messages
    assert "unknown segment 'bgi' (did you mean big?)" in messages
    assert any(m.startswith("unknown segment 'vpi'") for m in messages)
    assert all(p.location is not None for p in raised.value.problems)
