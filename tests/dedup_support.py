"""What the import, duplicate and merge tests share: a regulation, stores, the store's state."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from crmrules.adapters import import_tables
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.rules.regulation import load_regulation
from crmrules.store import Store
from databases import open_database

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)
REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.inn: {type: string}
  client.employees: {type: integer}
  client.next_call: {type: datetime}
pipelines:
  - id: sales
    stages: [{id: lead}, {id: offer}, {id: won, final: true}]
territories:
  - {id: msk, when: {field: client.city, eq: Москва}}
  - {id: kzn, when: {field: client.city, eq: Казань}}
duplicates:
  match:
    - {key: inn}
    - {key: phone}
    - {key: email}
    - {key: name, threshold: 90, ambiguous: 75}
templates:
  welcome:
    subject: "Рады знакомству, {{ client.name }}"
    text: "Спасибо, что посетили наш стенд на выставке."
rules:
  - id: welcome
    description: Клиентам из списка выставки — приветственное письмо
    on: client.created
    if: {field: event.source, eq: exhibition}
    then: [{send_mailing: {template: welcome}}]
  - id: merged
    on: client.merged
    then: [{create_task: {kind: call, title: "Проверить объединение {{ event.merged }}"}}]
  - id: call-plan
    on: {after: 1 day, since: client.next_call}
    then: [{create_task: {kind: call, title: "Звонок"}}]
"""


def write_regulation(tmp_path: Path, text: str = REGULATION) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "regulation.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def stores(kind: str, tmp_path: Path) -> Iterator[Store]:
    """A fresh memory store, SQLite file or PostgreSQL schema."""
    if kind == "memory":
        yield MemoryStore()
        return
    tmp_path.mkdir(parents=True, exist_ok=True)
    with open_database(kind, tmp_path) as database:
        store = SQLAlchemyStore(database.url, schema=database.schema)
        try:
            yield store
        finally:
            store.close()


def engine_on(store: Store, tmp_path: Path, text: str = REGULATION) -> Engine:
    regulation = load_regulation(write_regulation(tmp_path, text))
    return Engine(regulation, store, SimulatedClock(NOW), entry_points=False)


def state(store: Store) -> dict[str, Any]:
    """Every record a merge touches, as comparable data (the full store, but logs and results)."""
    with store.transaction() as tx:
        ids = tx.client_ids()
        clients = {c: tx.get_client(c) for c in ids}
        deals = {d.id: d for c in ids for d in tx.deals_of(c)}
        contacts = {k.id: k for c in ids for k in tx.contacts_of(c)}
        tasks = {t.id: t for t in tx.find_tasks()}
        interactions = {i.id: i for c in ids for i in tx.interactions_of(c)}
        return {
            "clients": clients,
            "memberships": {c: tx.memberships(c) for c in ids},
            "keys": {c: import_tables.keys_of(tx, c) for c in ids},
            "deals": deals,
            "contacts": contacts,
            "tasks": tasks,
            "interactions": interactions,
            "mailings": {m.id: m for m in tx.find_mailings()},
            "timers": {t.key: t for t in tx.find_timers()},
        }
