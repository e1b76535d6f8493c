"""Built-in events carry exactly the data keys the registry documents (BUILTIN_EVENT_INFO).

A plugin action records the data of every event it sees; the test drives a
real engine through every built-in event and compares the keys each one
carried with the registry the reference tables are generated from.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from crmrules import (
    ActionContext,
    ActionPlugin,
    Campaign,
    Client,
    Deal,
    Engine,
    Interaction,
    MemoryStore,
    Request,
    SimulatedClock,
    hookimpl,
    load_regulation,
)
from crmrules.rules.events import BUILTIN_EVENT_INFO, BUILTIN_EVENTS, TIMER_EVENT

MSK = ZoneInfo("Europe/Moscow")
START = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)
EVENTS = [*BUILTIN_EVENTS, "timer"]


class Nothing(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Recorder:
    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = {}

    def record(self, params: Nothing, ctx: ActionContext) -> None:
        keys = self.seen.setdefault(ctx.event.type, set())
        keys.update(ctx.event.data)

    @hookimpl
    def register_actions(self, register: Any) -> None:
        register(ActionPlugin("record", Nothing, self.record))


REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.due_on: {type: datetime}
pipelines:
  - id: sales
    stages: [{id: new, deadline: 1 day}, {id: offer}, {id: won, final: true}]
territories:
  - {id: msk, when: {field: client.region, eq: Москва}}
rules:
  - id: task-maker
    on: deal.created
    then: [{create_task: {title: Позвонить, kind: call, due: 2 hours}}]
  - id: on-date
    on: {after: 1 hour, since: client.due_on}
    then: [{record: {}}]
"""


def test_every_built_in_event_carries_the_documented_data_keys(tmp_path: Path) -> None:
    rules = "".join(
        f"  - {{id: record-{n}, on: {name}, once: always, then: [{{record: {{}}}}]}}\n"
        for n, name in enumerate(BUILTIN_EVENTS)
    )
    path = tmp_path / "regulation.yaml"
    path.write_text(textwrap.dedent(REGULATION) + rules, encoding="utf-8")
    recorder = Recorder()
    clock = SimulatedClock(START)
    engine = Engine.from_path(
        path, store=MemoryStore(), clock=clock, plugins=[recorder], entry_points=False
    )
    engine.create_client(Client(id="c1", name="Ромашка", region="Москва"))
    engine.update_client("c1", {"region": "Тверь", "due_on": START})
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    engine.create_deal(Deal(id="d2", client="c1", pipeline="sales", stage="new"))
    engine.move_stage("d2", "offer")
    fair = Campaign(id="fair", channel="exhibition", start=START.date(), end=START.date())
    engine.create_campaign(fair)
    engine.create_request(Request(id="r1", campaign="fair", client="c1"))
    engine.convert_request("r1", "d1")
    engine.log_interaction(
        Interaction(id="i1", kind="call", client="c1", outcome="reached", occurred_at=START)
    )
    clock.advance(timedelta(days=2))
    engine.run_due()
    [task, *_] = engine.tasks(deal="d2")
    engine.complete_task(task.id)
    engine.import_clients([{"Название": "Лютик"}], {"columns": {"Название": "name"}}, import_id="i")
    engine.merge_clients("c1", "i-2")

    documented = {event.type: {key.key for key in event.data} for event in BUILTIN_EVENT_INFO}
    documented[TIMER_EVENT.type] = {key.key for key in TIMER_EVENT.data}
    assert sorted(recorder.seen) == sorted(EVENTS)
    assert recorder.seen == documented


def test_built_in_event_data_is_read_without_a_declaration(tmp_path: Path) -> None:
    """`event.territory` on territory.entered needs no `fields:` entry; one may narrow it."""
    text = """\
version: 1
territories:
  - {id: msk, when: {field: client.region, eq: Москва}}
rules:
  - id: welcome-msk
    on: territory.entered
    if: {field: event.territory, eq: msk}
    then: [{create_task: {title: "Московский клиент {{ client.name }}"}}]
"""
    path = tmp_path / "regulation.yaml"
    path.write_text(text, encoding="utf-8")
    engine = Engine.from_path(path, store=MemoryStore(), entry_points=False)
    result = engine.create_client(Client(id="c1", name="Ромашка", region="Москва"))
    assert "welcome-msk" in result.fired
    narrowed = text.replace(
        "territories:", "fields:\n  event.territory: {type: enum, values: [msk, spb]}\nterritories:"
    )
    path.write_text(narrowed, encoding="utf-8")
    spec = load_regulation(path).fields.get("event.territory")
    assert spec is not None and spec.values == ("msk", "spb")
