"""Code that runs in child processes for the SQL concurrency and crash tests.

It lives in its own module so ``multiprocessing``'s spawn start method can
import it in the child.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from crmrules import ActionPlugin, Engine, Event, hookimpl
from crmrules.adapters.sqlalchemy import SQLAlchemyStore

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.mark_a: {type: string}
  client.mark_b: {type: string}
  event.n: {type: string}
  event.who: {type: string}
managers:
  - {id: ivanov}
  - {id: petrova}
rules:
  - id: mark-a
    on: touch
    if: {field: event.who, eq: a}
    then:
      - set_field: {field: client.mark_a, value: "{{ event.n }}"}
      - create_task: {title: "a {{ event.n }}"}
  - id: mark-b
    on: touch
    if: {field: event.who, eq: b}
    then:
      - set_field: {field: client.mark_b, value: "{{ event.n }}"}
      - create_task: {title: "b {{ event.n }}"}
  - id: assign
    on: client.created
    then: [{assign_manager: {strategy: round_robin, among: [ivanov, petrova]}}]
  - id: slow
    on: slow
    then:
      - create_task: {title: before the crash}
      - pause: {}
"""


class PauseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pause:
    """An action that signals it is running (a marker file) and then hangs."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    @hookimpl
    def register_actions(self, register: Any) -> None:
        def pause(params: PauseParams, context: Any) -> None:
            Path(self.marker).write_text("in the middle of the event", encoding="utf-8")
            time.sleep(60)

        register(ActionPlugin("pause", PauseParams, pause))


def engine(regulation: str, url: str, schema: str | None, marker: str = "") -> Engine:
    store = SQLAlchemyStore(url, schema=schema)
    return Engine.from_path(regulation, store=store, plugins=[Pause(marker)], entry_points=False)


def touch(regulation: str, url: str, schema: str | None, who: str, count: int) -> None:
    """Mark the shared client ``count`` times, each event twice, as process ``who``."""
    runner = engine(regulation, url, schema)
    for n in range(1, count + 1):
        for _ in range(2):
            runner.handle(
                Event(
                    id=f"{who}-{n}",
                    type="touch",
                    occurred_at=datetime.now(UTC),
                    client="c1",
                    data={"n": str(n), "who": who},
                )
            )
    runner.store.close()


def create_clients(regulation: str, url: str, schema: str | None, prefix: str, count: int) -> None:
    from crmrules import Client

    runner = engine(regulation, url, schema)
    for n in range(count):
        runner.create_client(
            Client(id=f"{prefix}{n}", name=f"Клиент {n}"), event_id=f"new-{prefix}{n}"
        )
    runner.store.close()


def hang(regulation: str, url: str, schema: str | None, marker: str) -> None:
    runner = engine(regulation, url, schema, marker)
    runner.handle(Event(id="crash-1", type="slow", occurred_at=datetime.now(UTC), client="c1"))
