"""``Engine.handle_many``: events in chunks, each acting exactly once, a refused one alone.

The oracle is ``Engine.handle`` called once per event on a second engine:
for random sequences of events (repeated ids, unknown clients, bad data,
rules with ``once`` and ``cooldown`` so that order matters, a rule whose
failing action refuses its event after it made a task) and random
chunk sizes, each event's answer (its result, or the error that refused
it), the tasks made and the audit log must be the same. On SQLite and
PostgreSQL as well as in memory. A chunk cut short by a failure that is
not an event's own (a plugin raising) commits nothing, and running all the
events again completes the work with every event acting once.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from crmrules import Client, Event, SimulatedClock
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.engine import Engine
from crmrules.errors import RecordError, RefusedError
from crmrules.plugins import ActionPlugin, hookimpl
from crmrules.result import Result
from databases import open_database

MSK = ZoneInfo("Europe/Moscow")
START = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)
REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow, working_hours: "09:00-18:00"}
fields:
  client.segment: {type: enum, values: [A, B]}
  event.number: {type: integer}
rules:
  - {id: every, on: ping, if: {field: client.segment, eq: A},
     then: [{create_task: {title: every}}]}
  - {id: first, on: ping, once: per_client, then: [{create_task: {title: first}}]}
  - {id: big, on: ping, if: {field: event.number, gt: 5}, cooldown: 2 days,
     then: [{create_task: {title: big}}]}
  - {id: unlucky, on: ping, if: {field: event.number, eq: 7}, on_error: refuse,
     then: [{create_task: {title: unlucky}}, {explode: {}}]}
"""
CLIENTS = ("c1", "c2", "c3")


class ExplodeParams(BaseModel):
    model_config = {"extra": "forbid"}


class Explode:
    """An action that fails at run time: its rule refuses the whole event (on_error: refuse)."""

    @hookimpl
    def register_actions(self, register: Any) -> None:
        def explode(params: ExplodeParams, context: Any) -> None:
            raise RuntimeError("boom")

        register(ActionPlugin("explode", ExplodeParams, explode))


def make(
    tmp_path: Path, store: MemoryStore | SQLAlchemyStore, plugins: tuple[object, ...] = ()
) -> Engine:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "regulation.yaml"
    path.write_text(textwrap.dedent(REGULATION), encoding="utf-8")
    engine = Engine.from_path(
        path,
        store=store,
        clock=SimulatedClock(START),
        plugins=(Explode(), *plugins),
        entry_points=False,
    )
    for index, client_id in enumerate(CLIENTS[:2]):
        engine.create_client(
            Client(id=client_id, name=client_id, fields={"segment": "AB"[index % 2]})
        )
    return engine


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    found = []
    for _ in range(draw(st.integers(0, 12))):
        number: Any = draw(st.integers(0, 9) | st.just("many"))  # "many" is refused
        found.append(
            Event(
                id=f"e{draw(st.integers(0, 6))}",  # ids repeat
                type="ping",
                occurred_at=START,
                client=draw(st.sampled_from(CLIENTS)),  # c3 is unknown
                data={"number": number},
            )
        )
    return found


def answer(handled: Result | Exception) -> Any:
    if isinstance(handled, Exception):
        return (type(handled).__name__, str(handled))
    return handled.to_dict() | {"duplicate": handled.duplicate}


def one_by_one(engine: Engine, batch: list[Event]) -> list[Any]:
    answers = []
    for event in batch:
        try:
            answers.append(answer(engine.handle(event)))
        except (RecordError, RefusedError) as error:
            answers.append(answer(error))
    return answers


def state(engine: Engine) -> tuple[list[Any], list[Any]]:
    tasks = sorted((t.title, t.client, t.rule) for t in engine.tasks())
    with engine.store.transaction() as tx:
        audit = [(a.event_id, a.kind, a.rule, a.message) for a in tx.audit_log()]
    return tasks, audit


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], MemoryStore | SQLAlchemyStore]]:
    """Makes empty stores of one kind (each SQL one in a database of its own)."""
    if request.param == "memory":
        yield MemoryStore
        return
    opened: list[Any] = []

    def fresh() -> SQLAlchemyStore:
        folder = tmp_path / f"db{len(opened)}"
        folder.mkdir()
        manager = open_database(request.param, folder)
        database = manager.__enter__()
        opened.append(manager)
        store = SQLAlchemyStore(database.url, schema=database.schema)
        opened.append(store)
        return store

    try:
        yield fresh
    finally:
        for item in reversed(opened):
            if isinstance(item, SQLAlchemyStore):
                item.close()
            else:
                item.__exit__(None, None, None)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=events(), chunk=st.integers(1, 5))
def test_handle_many_answers_and_acts_as_handle_one_by_one(
    stores: Callable[[], MemoryStore | SQLAlchemyStore],
    tmp_path_factory: pytest.TempPathFactory,
    batch: list[Event],
    chunk: int,
) -> None:
    folder = tmp_path_factory.mktemp("many")
    oracle, engine = make(folder, MemoryStore()), make(folder, stores())
    expected = one_by_one(oracle, batch)
    assert [answer(h) for h in engine.handle_many(batch, chunk=chunk)] == expected
    assert state(engine) == state(oracle)
    # the same events again: every one is a duplicate now, or refused again
    again = [answer(h) for h in engine.handle_many(batch, chunk=chunk)]
    assert again == one_by_one(oracle, batch)
    assert state(engine) == state(oracle)


class Outage:
    """Raises from around one event's handling, as a store or process failure would."""

    def __init__(self, event_id: str) -> None:
        self.event_id: str | None = event_id

    @hookimpl(wrapper=True)
    def handle_event(self, event: Event, handle: Callable[[Event], Result]) -> Any:
        if event.id == self.event_id:
            raise RuntimeError("outage")
        return (yield)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_chunk_cut_short_commits_nothing_and_a_rerun_acts_once(kind: str, tmp_path: Path) -> None:
    batch = [
        Event(id=f"e{i}", type="ping", occurred_at=START, client="c1", data={"number": i % 7})
        for i in range(10)
    ]
    outage = Outage("e6")
    with open_database(kind, tmp_path) as database:
        store = SQLAlchemyStore(database.url, schema=database.schema)
        try:
            engine = make(tmp_path, store, plugins=(outage,))
            with pytest.raises(RuntimeError, match="outage"):
                engine.handle_many(batch, chunk=4)  # e0-e3 commit; e4-e7 are rolled back
            assert {e for e, *_ in state(engine)[1]} >= {"e0", "e3"}
            assert not {e for e, *_ in state(engine)[1]} & {"e4", "e5", "e6", "e7"}
            outage.event_id = None
            handled = engine.handle_many(batch, chunk=4)
            assert [isinstance(h, Result) and h.duplicate for h in handled] == [True] * 4 + [
                False
            ] * 6
            oracle = make(tmp_path / "oracle", MemoryStore())
            one_by_one(oracle, batch)
            assert state(engine) == state(oracle)
        finally:
            store.close()
