"""Host calls for contacts, interactions, a client's history, deals saved by the host, and
reading a client's tasks and mailings, on the memory store and on SQLite."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crmrules import (
    Client,
    Contact,
    ContactRole,
    Deal,
    Engine,
    Event,
    Interaction,
    Mailing,
    MemoryStore,
    RefusedError,
    SimulatedClock,
    SQLAlchemyStore,
    Task,
)

MSK = ZoneInfo("Europe/Moscow")
START = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  deal.delivered_at: {type: datetime}
pipelines:
  - id: sales
    stages: [{id: new}, {id: offer}, {id: won, final: true}]
managers:
  - {id: ivanov, name: Иван Иванов, email: ivanov@example.ru}
templates:
  hello: {subject: "Здравствуйте, {{ client.name }}", text: "Добрый день"}
rules:
  - id: welcome
    on: client.created
    then:
      - send_mailing: {template: hello, to: "contact:buyer"}
  - id: new-deal
    on: deal.created
    then: [{create_task: {kind: call, title: "Новая сделка", due: 1 day}}]
  - id: deal-moved
    on: deal.stage_changed
    then: [{create_task: {title: "Сделка на этапе {{ deal.stage }}"}}]
"""


@pytest.fixture(params=["memory", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    path = tmp_path / "regulation.yaml"
    path.write_text(textwrap.dedent(REGULATION), encoding="utf-8")
    store = MemoryStore() if request.param == "memory" else SQLAlchemyStore("sqlite://")
    engine = Engine.from_path(path, store=store, clock=SimulatedClock(START), entry_points=False)
    yield engine
    engine.store.close()


BUYER = Contact(
    id="p1",
    name="Анна Смирнова",
    email="anna@romashka.ru",
    roles=[ContactRole(client="c1", role="buyer", primary=True)],
)


def test_contacts_are_stored_and_read_and_rules_mail_them(engine: Engine) -> None:
    engine.put_contact(BUYER)
    assert engine.get_contact("p1") == BUYER
    assert engine.get_contact("nobody") is None
    engine.create_client(Client(id="c1", name="Ромашка", responsible="ivanov"))
    engine.create_client(Client(id="c2", name="Лютик", responsible="ivanov"))
    assert engine.contacts("c1") == [BUYER]
    assert engine.contacts("c2") == []
    [mailing] = engine.mailings(client="c1")
    assert isinstance(mailing, Mailing)
    assert (mailing.to, mailing.subject) == ("anna@romashka.ru", "Здравствуйте, Ромашка")
    assert engine.mailings(client="c2") == []
    assert [m.client for m in engine.mailings()] == ["c1"]


def test_interactions_and_the_history_of_a_client_in_time_order(engine: Engine) -> None:
    engine.create_client(Client(id="c1", name="Ромашка", responsible="ivanov"))
    engine.put_contact(BUYER)
    later = Interaction(id="i2", kind="email", client="c1", occurred_at=START + timedelta(hours=2))
    first = Interaction(
        id="i1", kind="call", client="c1", outcome="reached", occurred_at=START + timedelta(hours=1)
    )
    engine.log_interaction(later)
    engine.log_interaction(first)
    engine.clock.advance(timedelta(hours=3))  # type: ignore[attr-defined]
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    assert engine.interactions("c1") == [first, later]
    history = engine.history("c1")
    assert [type(item).__name__ for item in history] == ["Interaction", "Interaction", "Task"]
    assert history[:2] == [first, later]
    assert isinstance(history[2], Task) and history[2].title == "Новая сделка"
    assert engine.history("c2") == []


def test_history_includes_mailings_and_tasks_of_the_client(engine: Engine) -> None:
    engine.put_contact(BUYER)
    engine.create_client(Client(id="c1", name="Ромашка", responsible="ivanov"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    kinds = [type(item).__name__ for item in engine.history("c1")]
    assert sorted(kinds) == ["Mailing", "Task"]
    assert [t.title for t in engine.tasks(client="c1")] == ["Новая сделка"]


def test_a_deal_saved_by_the_host_runs_the_regulation(engine: Engine) -> None:
    engine.create_client(Client(id="c1", name="Ромашка", responsible="ivanov"))
    with engine.store.transaction() as tx:  # the host writes the deal itself
        tx.put_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    result = engine.deal_saved("d1", created=True, event_id="host-d1")
    assert result.fired == ["new-deal"]
    deal = engine.get_deal("d1")
    assert deal is not None and deal.stage_entered_at == START
    assert engine.deal_saved("d1", created=True, event_id="host-d1").duplicate

    with engine.store.transaction() as tx:
        tx.put_deal(deal.model_copy(update={"stage": "offer"}))
    moved = engine.deal_saved("d1", before={"stage": "new"})
    assert moved.fired == ["deal-moved"]
    assert sorted(t.title for t in engine.tasks(client="c1")) == [
        "Новая сделка",
        "Сделка на этапе offer",
    ]


def test_a_deal_saved_by_the_host_must_exist_and_follow_the_pipeline(engine: Engine) -> None:
    engine.create_client(Client(id="c1", name="Ромашка", responsible="ivanov"))
    with pytest.raises(RefusedError, match="no deal 'd9'"):
        engine.deal_saved("d9")
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="offer"))
    with engine.store.transaction() as tx:
        tx.put_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    with pytest.raises(RefusedError, match="cannot move from offer to new"):
        engine.deal_saved("d1", before={"stage": "offer"})


def test_deliver_takes_the_moment_to_deliver_at(engine: Engine) -> None:
    engine.put_contact(BUYER)
    engine.create_client(Client(id="c1", name="Ромашка", responsible="ivanov"))
    sent: list[str] = []

    class Collect:
        name = "email"

        def send(self, message: object) -> None:
            sent.append(getattr(message, "to", ""))

    before = engine.deliver({"email": Collect()}, now=START - timedelta(days=1))
    assert (before.sent, sent) == (0, [])
    report = engine.deliver({"email": Collect()}, now=START)
    assert (report.sent, sent) == (1, ["anna@romashka.ru"])
    assert engine.handle(Event(id="e1", type="ping", occurred_at=START)).fired == []
