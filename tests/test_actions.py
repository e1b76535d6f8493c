"""Every built-in action, and the host operations, through a real Engine.

Each test loads an inline regulation (a Moscow calendar, custom fields, one
pipeline, four managers and two territories), runs events through an Engine
on a MemoryStore with a SimulatedClock, and checks what was stored, what the
Result says (effects, events, explanations) and what went to the outbox.
"""

from __future__ import annotations

import hashlib
import textwrap
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
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
    OutboxMessage,
    RecordError,
    RefusedError,
    RegulationError,
    Result,
    SimulatedClock,
    Task,
    TaskStatus,
)
from crmrules.adapters.memory import MemoryStore
from crmrules.store import MessageStatus

MSK = ZoneInfo("Europe/Moscow")
START = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)  # a Monday
FRIDAY_EVENING = datetime(2026, 3, 6, 19, 30, tzinfo=MSK)
FAR_FUTURE = datetime(2030, 1, 1, tzinfo=MSK)

HEADER = """\
version: 1
calendar:
  timezone: Europe/Moscow
  working_hours: "09:00-18:00"
  holidays: [2026-03-09]        # the day off for 8 March, which falls on a Sunday in 2026
fields:
  client.segment: {type: enum, values: [A, B, C]}
  client.status: {type: string}
  client.employees: {type: integer}
  client.contract_end: {type: date}
  deal.delivered_at: {type: datetime}
  deal.discount: {type: decimal}
  event.number: {type: string}
  event.status: {type: string}
  event.amount: {type: integer}
  event.task: {type: string}
  event.kind: {type: string}
  event.territory: {type: string}
pipelines:
  - id: sales
    stages: [{id: new}, {id: offer}, {id: invoice}, {id: won, final: true},
             {id: lost, final: true}]
    transitions:
      - {from: offer, to: [invoice, new, lost]}
managers:
  - {id: ivanov, name: Иван Иванов, email: ivanov@example.ru, skills: [b2b, enterprise],
     capacity: 3}
  - {id: petrova, name: Мария Петрова, email: petrova@example.ru, skills: [b2b], capacity: 2}
  - {id: sidorov, name: Пётр Сидоров, skills: [retail]}
  - {id: smirnova, name: Анна Смирнова, email: smirnova@example.ru, active: false}
territories:
  - {id: msk, name: Москва, when: {field: client.region, eq: Москва},
     managers: [ivanov, petrova]}
  - {id: spb, name: Санкт-Петербург, when: {field: client.region, eq: Санкт-Петербург},
     managers: [sidorov]}
"""


# --- helpers ----------------------------------------------------------------------------------


def make(tmp_path: Path, rules: str, *, start: datetime = START) -> Engine:
    path = tmp_path / "regulation.yaml"
    path.write_text(HEADER + textwrap.dedent(rules), encoding="utf-8")
    return Engine.from_path(
        path, store=MemoryStore(), clock=SimulatedClock(start), entry_points=False
    )


def add_client(engine: Engine, client_id: str = "c1", **values: Any) -> Result:
    data: dict[str, Any] = {
        "name": "ООО Ромашка",
        "email": "info@romashka.ru",
        "region": "Москва",
        "city": "Москва",
        "responsible": "ivanov",
        **values,
    }
    return engine.create_client(Client(id=client_id, **data))


def add_deal(engine: Engine, deal_id: str = "d1", client_id: str = "c1", **values: Any) -> Result:
    data: dict[str, Any] = {"pipeline": "sales", "stage": "new", **values}
    return engine.create_deal(Deal(id=deal_id, client=client_id, **data))


def event(event_type: str, event_id: str, **kwargs: Any) -> Event:
    return Event(id=event_id, type=event_type, occurred_at=START, **kwargs)


def advance(engine: Engine, delta: timedelta) -> None:
    clock = engine.clock
    assert isinstance(clock, SimulatedClock)
    clock.advance(delta)


def summaries(result: Result, kind: str | None = None) -> list[str]:
    return [e.summary for e in result.effects if kind is None or e.kind == kind]


def outbox(engine: Engine) -> list[OutboxMessage]:
    with engine.store.transaction() as tx:
        return tx.due_messages(FAR_FUTURE, 1000)


def record_id(prefix: str, key: str) -> str:
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def only_task(engine: Engine) -> Task:
    (task,) = engine.tasks()
    return task


def client_of(engine: Engine, client_id: str = "c1") -> Client:
    stored = engine.get_client(client_id)
    assert stored is not None
    return stored


def deal_of(engine: Engine, deal_id: str = "d1") -> Deal:
    stored = engine.get_deal(deal_id)
    assert stored is not None
    return stored


# --- create_task ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        ("3 hours", datetime(2026, 3, 2, 13, 0, tzinfo=MSK)),
        ("PT3H", datetime(2026, 3, 2, 13, 0, tzinfo=MSK)),
        ("2 days", datetime(2026, 3, 4, 10, 0, tzinfo=MSK)),
        ("1 month", datetime(2026, 4, 2, 10, 0, tzinfo=MSK)),
        # Monday 10:00 + 2 business days: Wednesday 10:00 (9 March is not in between)
        ("2 business days", datetime(2026, 3, 4, 10, 0, tzinfo=MSK)),
    ],
)
def test_create_task_due_as_a_duration_from_now(
    tmp_path: Path, due: str, expected: datetime
) -> None:
    engine = make(
        tmp_path,
        f"""
        rules:
          - id: call
            on: lead.received
            then:
              - create_task: {{kind: call, title: "Позвонить {{{{ client.name }}}}",
                               due: "{due}"}}
        """,
    )
    add_client(engine)
    result = engine.handle(event("lead.received", "e1", client="c1"))
    task = only_task(engine)
    assert task.due == expected
    assert summaries(result) == [
        f"task call 'Позвонить ООО Ромашка' for ivanov due {expected.isoformat()}"
    ]
    assert result.effects[0].data == {
        "task": task.id,
        "kind": "call",
        "title": "Позвонить ООО Ромашка",
        "assignee": "ivanov",
        "due": expected.isoformat(),
    }


def test_create_task_business_days_from_a_friday_evening_count_from_the_next_opening(
    tmp_path: Path,
) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: call
            on: lead.received
            then: [{create_task: {kind: call, title: Перезвонить, due: 2 business days}}]
        """,
        start=FRIDAY_EVENING,
    )
    add_client(engine)
    engine.handle(event("lead.received", "e1", client="c1"))
    # Friday 19:30 is after hours; Monday 9 March is a holiday, so counting starts on
    # Tuesday 09:00, and two working days later is Thursday 09:00.
    assert only_task(engine).due == datetime(2026, 3, 12, 9, 0, tzinfo=MSK)


def test_create_task_due_from_a_date_field_with_an_offset(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: warranty
            on: deal.delivered
            then:
              - create_task:
                  title: Проверить удовлетворённость
                  due: {field: deal.delivered_at, after: 15 days}
          - id: renewal
            on: deal.delivered
            then:
              - create_task:
                  title: Продлить договор
                  due: {field: client.contract_end, before: 30 days}
        """,
    )
    add_client(engine, fields={"contract_end": "2026-06-30"})
    add_deal(engine, fields={"delivered_at": "2026-02-20T15:00:00+03:00"})
    result = engine.handle(event("deal.delivered", "e1", deal="d1"))
    due = {t.title: t.due for t in engine.tasks()}
    assert due == {
        "Проверить удовлетворённость": datetime(2026, 3, 7, 15, 0, tzinfo=MSK),
        # a date anchor means the start of that day in the calendar's zone
        "Продлить договор": datetime(2026, 5, 31, 0, 0, tzinfo=MSK),
    }
    assert summaries(result) == [
        "task todo 'Проверить удовлетворённость' for ivanov due 2026-03-07T15:00:00+03:00",
        "task todo 'Продлить договор' for ivanov due 2026-05-31T00:00:00+03:00",
    ]


def test_create_task_with_an_empty_anchor_field_has_no_due_and_says_so(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: warranty
            on: deal.delivered
            then:
              - create_task:
                  title: Проверить удовлетворённость
                  due: {field: deal.delivered_at, after: 15 days}
        """,
    )
    add_client(engine)
    add_deal(engine)
    result = engine.handle(event("deal.delivered", "e1", deal="d1"))
    assert only_task(engine).due is None
    assert summaries(result) == [
        "task todo 'Проверить удовлетворённость' for ivanov"
        " (no due date: deal.delivered_at is empty)"
    ]


def test_create_task_assignees(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: tasks
            on: lead.received
            then:
              - create_task: {title: ответственному, assignee: responsible}
              - create_task: {title: Петровой, assignee: petrova}
              - create_task: {title: Смирновой, assignee: smirnova}
              - create_task: {title: по территории, assignee: territory}
              - create_task:
                  title: по очереди
                  assignee: {strategy: round_robin, among: [petrova, sidorov]}
        """,
    )
    add_client(engine)
    first = engine.handle(event("lead.received", "e1", client="c1"))
    assert summaries(first) == [
        "task todo 'ответственному' for ivanov",
        "task todo 'Петровой' for petrova",
        "task todo 'Смирновой' for nobody (inactive manager smirnova: left unassigned)",
        "task todo 'по территории' for ivanov",
        "task todo 'по очереди' for petrova",
    ]
    # the rotations (the territory's and the rule's) are kept in the store
    second = engine.handle(event("lead.received", "e2", client="c1"))
    assert [e.data["assignee"] for e in second.effects] == [
        "ivanov",
        "petrova",
        None,
        "petrova",
        "sidorov",
    ]
    third = engine.handle(event("lead.received", "e3", client="c1"))
    assert [e.data["assignee"] for e in third.effects][3:] == ["ivanov", "petrova"]


def test_create_task_without_a_responsible_manager_is_left_unassigned(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: tasks
            on: lead.received
            then:
              - create_task: {title: ответственному}
              - create_task: {title: по территории, assignee: territory}
        """,
    )
    add_client(engine, responsible=None, region="Казань")
    result = engine.handle(event("lead.received", "e1", client="c1"))
    assert [t.assignee for t in engine.tasks()] == [None, None]
    assert summaries(result) == [
        "task todo 'ответственному' for nobody (no responsible manager: left unassigned)",
        "task todo 'по территории' for nobody"
        " (territory: the client is in no territory: left unassigned)",
    ]


def test_create_task_stores_the_rendered_description_priority_and_links(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: meeting
            on: lead.received
            then:
              - create_task:
                  kind: meeting
                  title: "Встреча: {{ client.name }}"
                  description: "Г. {{ client.city }}, сделка {{ deal.id }}, этап {{ deal.stage }}"
                  priority: high
                  due: 1 week
        """,
    )
    add_client(engine)
    add_deal(engine)
    engine.handle(event("lead.received", "e1", deal="d1"))
    task = only_task(engine)
    assert task.model_dump() == {
        "id": record_id("task", "e1:meeting:0"),
        "kind": "meeting",
        "title": "Встреча: ООО Ромашка",
        "description": "Г. Москва, сделка d1, этап new",
        "due": datetime(2026, 3, 9, 10, 0, tzinfo=MSK),
        "assignee": "ivanov",
        "priority": "high",
        "status": TaskStatus.OPEN,
        "client": "c1",
        "deal": "d1",
        "rule": "meeting",
        "idempotency_key": "e1:meeting:0",
        "created_at": START,
        "closed_at": None,
        "regulation": engine.regulation.release.id,
        "note": None,
    }


def test_create_task_is_idempotent_with_deterministic_keys_and_ids(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: call
            on: lead.received
            then:
              - create_task: {kind: call, title: Позвонить}
              - create_task: {kind: email, title: Написать}
        """,
    )
    add_client(engine)
    first = engine.handle(event("lead.received", "lead-17", client="c1"))
    again = engine.handle(event("lead.received", "lead-17", client="c1"))
    assert not first.duplicate and again.duplicate
    assert again.effects == first.effects
    tasks = engine.tasks()
    assert sorted((t.idempotency_key, t.id) for t in tasks) == [
        ("lead-17:call:0", record_id("task", "lead-17:call:0")),
        ("lead-17:call:1", record_id("task", "lead-17:call:1")),
    ]
    # A second engine on the same store (another process) acts once too.
    other = Engine(engine.regulation, engine.store, engine.clock, entry_points=False)
    assert other.handle(event("lead.received", "lead-17", client="c1")).duplicate
    assert len(engine.tasks()) == 2
    # Another event makes other tasks with other keys.
    engine.handle(event("lead.received", "lead-18", client="c1"))
    assert len(engine.tasks()) == 4


# --- send_mailing -----------------------------------------------------------------------------

#: indented like the rules below it, so that make() dedents both alike
MAIL = """
        templates:
          offer:
            subject: "Предложение для {{ client.name }}"
            text: "Здравствуйте, {{ client.name }}!"
            html: "<p>Здравствуйте, {{ client.name }}!</p>"
"""


def test_send_mailing_recipients(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        MAIL
        + """
        rules:
          - id: offer
            on: offer.ready
            then:
              - send_mailing: offer
              - send_mailing: {template: offer, to: responsible}
              - send_mailing: {template: offer, to: "contact:director"}
              - send_mailing: {template: offer, to: zakaz@romashka.ru, channel: telegram}
        """,
    )
    add_client(engine)
    add_client(engine, "c2", name="ООО Лютик", email="info@lutik.ru")
    with engine.store.transaction() as tx:
        tx.put_contact(
            Contact(
                id="p1",
                name="Сергей Бухгалтеров",
                email="buh@romashka.ru",
                roles=[ContactRole(client="c1", role="accountant")],
            )
        )
        tx.put_contact(
            Contact(
                id="p2",
                name="Ольга Директорова",
                email="director@romashka.ru",
                roles=[
                    ContactRole(client="c2", role="accountant"),
                    ContactRole(client="c1", role="director", primary=True),
                ],
            )
        )
    result = engine.handle(event("offer.ready", "e1", client="c1"))
    assert summaries(result) == [
        "mailing offer to info@romashka.ru: 'Предложение для ООО Ромашка'",
        "mailing offer to ivanov@example.ru: 'Предложение для ООО Ромашка'",
        "mailing offer to director@romashka.ru: 'Предложение для ООО Ромашка'",
        "mailing offer to zakaz@romashka.ru: 'Предложение для ООО Ромашка'",
    ]
    with engine.store.transaction() as tx:
        mailings = tx.find_mailings(client="c1")
    assert sorted((m.idempotency_key, m.to, m.channel) for m in mailings) == [
        ("e1:offer:0", "info@romashka.ru", "email"),
        ("e1:offer:1", "ivanov@example.ru", "email"),
        ("e1:offer:2", "director@romashka.ru", "email"),
        ("e1:offer:3", "zakaz@romashka.ru", "telegram"),
    ]
    for mailing in mailings:
        assert mailing.id == record_id("mailing", mailing.idempotency_key or "")
        assert (mailing.template, mailing.rule, mailing.client) == ("offer", "offer", "c1")
        assert mailing.subject == "Предложение для ООО Ромашка"
        assert mailing.text == "Здравствуйте, ООО Ромашка!"
        assert mailing.html == "<p>Здравствуйте, ООО Ромашка!</p>"
    messages = {m.key: m for m in outbox(engine)}
    assert sorted(messages) == ["e1:offer:0", "e1:offer:1", "e1:offer:2", "e1:offer:3"]
    for mailing in mailings:
        message = messages[mailing.idempotency_key or ""]
        assert (message.mailing, message.to, message.channel) == (
            mailing.id,
            mailing.to,
            mailing.channel,
        )
        assert (message.subject, message.text, message.html) == (
            mailing.subject,
            mailing.text,
            mailing.html,
        )
        assert message.status is MessageStatus.PENDING
        assert message.next_attempt_at == START


def test_send_mailing_to_a_client_without_email_is_refused_and_the_rule_goes_on(
    tmp_path: Path,
) -> None:
    engine = make(
        tmp_path,
        MAIL
        + """
        rules:
          - id: offer
            on: offer.ready
            then:
              - send_mailing: offer
              - send_mailing: {template: offer, to: "contact:director"}
              - create_task: {kind: call, title: "Узнать e-mail {{ client.name }}"}
        """,
    )
    add_client(engine, email=None)
    result = engine.handle(event("offer.ready", "e1", client="c1"))
    assert [(e.kind, e.summary) for e in result.effects] == [
        ("refused", "send_mailing refused: client c1 has no e-mail address"),
        (
            "refused",
            "send_mailing refused: no contact with role 'director' and an e-mail address",
        ),
        ("task_created", "task call 'Узнать e-mail ООО Ромашка' for ivanov"),
    ]
    assert result.explain().splitlines() == [
        "offer.ready (e1, client c1)",
        "  ✓ offer: fired",
        "      → send_mailing refused: client c1 has no e-mail address",
        "      → send_mailing refused: no contact with role 'director' and an e-mail address",
        "      → task call 'Узнать e-mail ООО Ромашка' for ivanov",
    ]
    assert outbox(engine) == []
    assert len(engine.tasks()) == 1


def test_effects_and_refusals_are_in_the_audit_log_under_their_event(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        MAIL
        + """
        rules:
          - id: offer
            on: offer.ready
            then:
              - send_mailing: offer
              - create_task: {title: "Узнать e-mail"}
        """,
    )
    add_client(engine, email=None)
    engine.handle(event("offer.ready", "e1", client="c1"))
    with engine.store.transaction() as tx:
        log = tx.audit_log(event_id="e1")
    assert [(e.kind, e.rule, e.message) for e in log] == [
        ("fired", "offer", "offer.ready"),
        ("refused", "offer", "send_mailing refused: client c1 has no e-mail address"),
        ("effect", "offer", "task todo 'Узнать e-mail' for ivanov"),
    ]
    # every line of the audit log names the event it is about, by id and by type
    assert {e.event_type for e in log} == {"offer.ready"}


def test_send_mailing_escapes_client_data_in_html_only(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        MAIL
        + """
        rules:
          - {id: offer, on: offer.ready, then: [{send_mailing: offer}]}
        """,
    )
    add_client(engine, name='<script>alert("x")</script> & Ко')
    engine.handle(event("offer.ready", "e1", client="c1"))
    (message,) = outbox(engine)
    assert message.html == (
        "<p>Здравствуйте, &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Ко!</p>"
    )
    assert message.text == 'Здравствуйте, <script>alert("x")</script> & Ко!'
    assert message.subject == 'Предложение для <script>alert("x")</script> & Ко'


# --- move_stage -------------------------------------------------------------------------------


def test_move_stage_to_next_raises_stage_changed_and_updated(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - {id: advance, on: measured, then: [{move_stage: next}]}
          - id: on-offer
            on: deal.stage_changed
            if: {field: deal.stage, changed_to: offer}
            then: [{create_task: {title: "Подготовить КП"}}]
          - id: left-new
            on: deal.updated
            if: {field: deal.stage, changed_from: new}
            then: [{notify: {to: petrova, message: "Сделка {{ deal.id }}: {{ deal.stage }}"}}]
        """,
    )
    add_client(engine)
    add_deal(engine)
    advance(engine, timedelta(hours=2))
    result = engine.handle(event("measured", "e1", deal="d1"))
    deal = deal_of(engine)
    assert deal.stage == "offer"
    assert deal.stage_entered_at == START + timedelta(hours=2)
    assert deal.created_at == START
    assert [(e.id, e.type, e.depth, e.client, e.deal) for e in result.events] == [
        ("e1", "measured", 0, None, "d1"),
        ("e1/deal.stage_changed:advance:0", "deal.stage_changed", 1, "c1", "d1"),
        ("e1/deal.updated:advance:0", "deal.updated", 1, "c1", "d1"),
    ]
    (moved,) = result.effects_of("stage_moved")
    assert (moved.summary, moved.data) == (
        "deal d1: new → offer",
        {"deal": "d1", "before": "new", "after": "offer"},
    )
    assert result.fired == ["advance", "on-offer", "left-new"]
    assert [t.title for t in engine.tasks()] == ["Подготовить КП"]
    assert [m.text for m in outbox(engine)] == ["Сделка d1: offer"]


def test_move_stage_to_an_explicit_stage_follows_the_transitions(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - {id: invoice, on: invoice.issued, then: [{move_stage: invoice}]}
          - {id: lose, on: lead.lost, then: [{move_stage: lost}]}
        """,
    )
    add_client(engine)
    add_deal(engine, stage="offer")
    result = engine.handle(event("invoice.issued", "e1", deal="d1"))
    assert summaries(result) == ["deal d1: offer → invoice"]
    assert deal_of(engine).stage == "invoice"
    # invoice → lost: any final stage is a default move
    assert summaries(engine.handle(event("lead.lost", "e2", deal="d1"))) == [
        "deal d1: invoice → lost"
    ]
    assert deal_of(engine).stage == "lost"


def test_move_stage_refusals_leave_the_deal_alone(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: jump
            on: jump
            then:
              - move_stage: invoice
              - create_task: {title: после отказа}
        """,
    )
    add_client(engine)
    add_deal(engine)
    result = engine.handle(event("jump", "e1", deal="d1"))
    assert [(e.kind, e.summary) for e in result.effects] == [
        (
            "refused",
            "move_stage refused: deal d1: cannot move from new to invoice in pipeline sales "
            "(allowed from new: offer, won, lost)",
        ),
        ("task_created", "task todo 'после отказа' for ivanov"),
    ]
    assert [e.type for e in result.events] == ["jump"]
    deal = deal_of(engine)
    assert (deal.stage, deal.stage_entered_at) == ("new", START)
    # an event about the client only has no deal to move
    no_deal = engine.handle(event("jump", "e2", client="c1"))
    assert summaries(no_deal, "refused") == ["move_stage refused: the event has no deal to move"]


def test_move_stage_from_a_final_stage_to_next_is_refused(tmp_path: Path) -> None:
    engine = make(tmp_path, "rules:\n  - {id: step, on: step, then: [{move_stage: next}]}\n")
    add_client(engine)
    add_deal(engine, stage="lost")
    result = engine.handle(event("step", "e1", deal="d1"))
    assert summaries(result) == ["move_stage refused: stage lost is the last stage of sales"]
    assert deal_of(engine).stage == "lost"


def test_move_stage_to_the_current_stage_does_nothing(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - {id: stay, on: stay, then: [{move_stage: offer}]}
          - {id: watch, on: [deal.stage_changed, deal.updated], then: [{create_task: {title: t}}]}
        """,
    )
    add_client(engine)
    add_deal(engine, stage="offer")
    advance(engine, timedelta(days=1))
    result = engine.handle(event("stay", "e1", deal="d1"))
    assert result.fired == ["stay"]
    assert result.effects == []
    assert [e.type for e in result.events] == ["stay"]
    assert deal_of(engine).stage_entered_at == START
    assert engine.tasks() == []


# --- assign_manager ---------------------------------------------------------------------------


def test_assign_manager_round_robin_rotates_across_events(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: assign
            on: client.created
            then: [{assign_manager: {strategy: round_robin, among: [ivanov, petrova]}}]
          - id: welcome
            on: client.updated
            if: {field: client.responsible, changed: true}
            then: [{create_task: {title: "Познакомиться с {{ client.name }}",
                                  assignee: responsible}}]
        """,
    )
    results = [add_client(engine, f"c{i}", responsible=None) for i in range(1, 5)]
    assert [client_of(engine, f"c{i}").responsible for i in range(1, 5)] == [
        "ivanov",
        "petrova",
        "ivanov",
        "petrova",
    ]
    assert summaries(results[0], "manager_assigned") == [
        "client c1: responsible ivanov (round robin among ivanov, petrova: ivanov (turn 1))"
    ]
    assert summaries(results[3], "manager_assigned") == [
        "client c4: responsible petrova (round robin among ivanov, petrova: petrova (turn 4))"
    ]
    # the assignment is a client update: the welcome rule fires in the same cascade
    assert results[0].fired == ["assign", "welcome"]
    assert sorted((t.client, t.assignee) for t in engine.tasks()) == [
        ("c1", "ivanov"),
        ("c2", "petrova"),
        ("c3", "ivanov"),
        ("c4", "petrova"),
    ]


def test_assign_manager_least_loaded_counts_open_tasks_against_capacity(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: assign
            on: reassign
            then: [{assign_manager: {strategy: least_loaded, among: [ivanov, petrova]}}]
        """,
    )
    add_client(engine, responsible=None)
    made: list[str] = []

    def give(manager: str, count: int, status: TaskStatus = TaskStatus.OPEN) -> None:
        with engine.store.transaction() as tx:
            for _ in range(count):
                made.append(f"t{len(made)}")
                tx.put_task(
                    Task(
                        id=made[-1],
                        kind="call",
                        title="звонок",
                        assignee=manager,
                        status=status,
                        created_at=START,
                    )
                )

    give("ivanov", 1)
    give("petrova", 5, TaskStatus.DONE)  # closed tasks are no load
    result = engine.handle(event("reassign", "e1", client="c1"))
    # ivanov 1/3, petrova 0/2
    assert summaries(result) == [
        "client c1: responsible petrova (least loaded: petrova (0 of 2 open tasks))"
    ]
    give("petrova", 2)  # petrova is full now: 2 of 2
    result = engine.handle(event("reassign", "e2", client="c1"))
    assert summaries(result) == [
        "client c1: responsible ivanov (least loaded: ivanov (1 of 3 open tasks))"
    ]
    give("ivanov", 2)  # both full
    result = engine.handle(event("reassign", "e3", client="c1"))
    assert summaries(result) == [
        "assign_manager refused: least loaded: everyone is at capacity "
        "(ivanov 3 of 3, petrova 2 of 2)"
    ]
    assert client_of(engine).responsible == "ivanov"


def test_assign_manager_by_skill_territory_and_fallback(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: enterprise
            on: assign.enterprise
            then: [{assign_manager: {strategy: by_skill, skills: [ENTERPRISE]}}]
          - id: local
            on: assign.local
            then: [{assign_manager: {strategy: territory}}]
          - id: rare
            on: assign.rare
            then: [{assign_manager: {strategy: by_skill, skills: [retail, b2b],
                                     fallback: petrova}}]
          - id: impossible
            on: assign.impossible
            then:
              - assign_manager: {strategy: by_skill, skills: [1c]}
              - create_task: {title: "Назначить вручную", assignee: petrova}
        """,
    )
    add_client(engine, responsible=None)
    add_client(engine, "c2", name="ООО Нева", region="Санкт-Петербург", responsible=None)

    by_skill = engine.handle(event("assign.enterprise", "e1", client="c1"))
    assert summaries(by_skill) == [
        "client c1: responsible ivanov (by skill [ENTERPRISE]: ivanov (0 of 3 open tasks))"
    ]
    territory = engine.handle(event("assign.local", "e2", client="c2"))
    assert summaries(territory) == [
        "client c2: responsible sidorov "
        "(territory spb, round robin among sidorov: sidorov (turn 1))"
    ]
    fallback = engine.handle(event("assign.rare", "e3", client="c2"))
    assert summaries(fallback) == [
        "client c2: responsible petrova "
        "(by skill [retail, b2b]: no active manager has all skills (ivanov lacks retail; "
        "petrova lacks retail; sidorov lacks b2b; smirnova lacks retail, b2b); fallback petrova)"
    ]
    refused = engine.handle(event("assign.impossible", "e4", client="c1"))
    assert [(e.kind, e.summary) for e in refused.effects] == [
        (
            "refused",
            "assign_manager refused: by skill [1c]: no active manager has all skills "
            "(ivanov lacks 1c; petrova lacks 1c; sidorov lacks 1c; smirnova lacks 1c)",
        ),
        ("task_created", "task todo 'Назначить вручную' for petrova"),
    ]
    assert client_of(engine).responsible == "ivanov"
    assert client_of(engine, "c2").responsible == "petrova"


def test_assign_manager_keeps_the_same_manager_quietly(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: assign
            on: reassign
            then: [{assign_manager: {strategy: by_skill, skills: [enterprise]}}]
          - {id: watch, on: client.updated, then: [{create_task: {title: t}}]}
        """,
    )
    add_client(engine)  # ivanov already
    result = engine.handle(event("reassign", "e1", client="c1"))
    assert result.effects == []
    assert result.fired == ["assign"]
    assert engine.tasks() == []


# --- set_field --------------------------------------------------------------------------------


def test_set_field_on_client_fields_with_literals_templates_and_coercion(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: qualify
            on: lead.qualified
            then:
              - set_field: {field: client.status, value: в работе}
              - set_field: {field: client.employees, value: "42"}
              - set_field: {field: client.source, value: выставка}
              - set_field: {field: client.segment, value: "{{ event.status }}"}
        """,
    )
    add_client(engine, fields={"segment": "C"})
    result = engine.handle(event("lead.qualified", "e1", client="c1", data={"status": "A"}))
    stored = client_of(engine)
    assert stored.fields == {"segment": "A", "status": "в работе", "employees": 42}
    assert stored.source == "выставка"
    assert [(e.summary, e.data) for e in result.effects] == [
        ("client.status = в работе", {"field": "client.status", "value": "в работе"}),
        ("client.employees = 42", {"field": "client.employees", "value": 42}),
        ("client.source = выставка", {"field": "client.source", "value": "выставка"}),
        ("client.segment = A", {"field": "client.segment", "value": "A"}),
    ]
    assert [(e.id, e.type, e.depth) for e in result.events] == [
        ("e1", "lead.qualified", 0),
        ("e1/client.updated:qualify:0", "client.updated", 1),
        ("e1/client.updated:qualify:1", "client.updated", 1),
        ("e1/client.updated:qualify:2", "client.updated", 1),
        ("e1/client.updated:qualify:3", "client.updated", 1),
    ]


def test_set_field_raises_updates_that_fire_changed_to_rules(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: qualify
            on: lead.qualified
            then:
              - set_field: {field: client.status, value: "{{ event.status }}"}
              - set_field: {field: deal.discount, value: "7.5"}
          - id: in-work
            on: client.updated
            if: {field: client.status, changed_to: в работе}
            then: [{create_task: {title: "Статус: {{ client.status }}"}}]
          - id: discount
            on: deal.updated
            if:
              all:
                - {field: deal.discount, changed_from: "5"}
                - {field: deal.discount, changed_to: "7.5"}
            then: [{notify: {to: ivanov, message: "Скидка {{ deal.discount }}%"}}]
        """,
    )
    add_client(engine, fields={"status": "новый"})
    add_deal(engine, fields={"discount": "5"})
    result = engine.handle(event("lead.qualified", "e1", deal="d1", data={"status": "в работе"}))
    assert deal_of(engine).fields == {"discount": Decimal("7.5")}
    assert client_of(engine).fields["status"] == "в работе"
    assert result.fired == ["qualify", "in-work", "discount"]
    assert summaries(result) == [
        "client.status = в работе",
        "deal.discount = 7.5",
        "task todo 'Статус: в работе' for ivanov",
        "notify ivanov@example.ru via log: 'Скидка 7.5%'",
    ]
    assert result.explain().splitlines() == [
        "lead.qualified (e1, deal d1)",
        "  ✓ qualify: fired",
        "      → client.status = в работе",
        "      → deal.discount = 7.5",
        "  client.updated (e1/client.updated:qualify:0, client c1)",
        "    ✓ in-work: fired",
        "        → task todo 'Статус: в работе' for ivanov",
        "  deal.updated (e1/deal.updated:qualify:1, client c1, deal d1)",
        "    ✓ discount: fired",
        "        → notify ivanov@example.ru via log: 'Скидка 7.5%'",
    ]


def test_set_field_with_a_value_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: count
            on: counted
            then: [{set_field: {field: client.employees, value: "{{ event.status }}"}}]
        """,
    )
    add_client(engine, fields={"employees": 10})
    result = engine.handle(event("counted", "e1", client="c1", data={"status": "много"}))
    assert summaries(result) == [
        "set_field refused: client.employees: expected a whole number, got 'много'"
    ]
    assert client_of(engine).fields == {"employees": 10}


def test_set_field_on_a_deal_field_without_a_deal_is_refused(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: discount
            on: lead.qualified
            then:
              - set_field: {field: deal.discount, value: 10}
              - set_field: {field: client.status, value: со скидкой}
        """,
    )
    add_client(engine)
    result = engine.handle(event("lead.qualified", "e1", client="c1"))
    assert [(e.kind, e.summary) for e in result.effects] == [
        ("refused", "set_field refused: the event has no deal to set deal.discount on"),
        ("field_set", "client.status = со скидкой"),
    ]


def test_set_field_cannot_make_an_unknown_manager_responsible(tmp_path: Path) -> None:
    """set_field on client.responsible obeys the same check as update_client."""
    engine = make(
        tmp_path,
        """
        rules:
          - id: hand-over
            on: hand.over
            then: [{set_field: {field: client.responsible, value: "{{ event.status }}"}}]
        """,
    )
    add_client(engine)
    handed = engine.handle(event("hand.over", "e1", client="c1", data={"status": "petrova"}))
    assert summaries(handed) == ["client.responsible = petrova"]
    assert client_of(engine).responsible == "petrova"
    result = engine.handle(event("hand.over", "e2", client="c1", data={"status": "kuznetsov"}))
    assert [(e.kind, e.summary) for e in result.effects] == [
        ("refused", "set_field refused: unknown manager 'kuznetsov' cannot be responsible")
    ]
    assert [e.type for e in result.events] == ["hand.over"]
    assert client_of(engine).responsible == "petrova"


def test_set_field_with_a_literal_unknown_manager_is_rejected_when_loading(
    tmp_path: Path,
) -> None:
    with pytest.raises(RegulationError, match="kuznetsov"):
        make(
            tmp_path,
            """
            rules:
              - id: hand-over
                on: hand.over
                then: [{set_field: {field: client.responsible, value: kuznetsov}}]
            """,
        )


# --- add_to_territory / remove_from_territory -------------------------------------------------


def test_territory_overrides_raise_events_and_survive_later_updates(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - {id: pin, on: pin, then: [{add_to_territory: spb}, {remove_from_territory: msk}]}
          - id: entered
            on: territory.entered
            then: [{create_task: {title: "Вход в {{ event.territory }}"}}]
          - id: left
            on: territory.left
            then: [{create_task: {title: "Выход из {{ event.territory }}"}}]
        """,
    )
    add_client(engine)
    assert [t.title for t in engine.tasks()] == ["Вход в msk"]
    result = engine.handle(event("pin", "e1", client="c1"))
    assert client_of(engine).territories == frozenset({"spb"})
    assert [(e.kind, e.summary, e.data) for e in result.effects_of("territory_override")] == [
        (
            "territory_override",
            "client c1 added to spb (manual, until cleared)",
            {"client": "c1", "territory": "spb", "source": "manual_add"},
        ),
        (
            "territory_override",
            "client c1 removed from msk (manual, until cleared)",
            {"client": "c1", "territory": "msk", "source": "manual_remove"},
        ),
    ]
    assert [(e.id, e.type) for e in result.events] == [
        ("e1", "pin"),
        ("e1/territory.entered:pin:0:spb", "territory.entered"),
        ("e1/territory.left:pin:1:msk", "territory.left"),
    ]
    assert sorted(t.title for t in engine.tasks()) == ["Вход в msk", "Вход в spb", "Выход из msk"]
    # The overrides win over the territories' conditions until cleared.
    engine.update_client("c1", {"name": "ООО Ромашка-М", "region": "Москва"})
    assert client_of(engine).territories == frozenset({"spb"})
    engine.update_client("c1", {"region": "Казань"})
    assert client_of(engine).territories == frozenset({"spb"})
    assert len(engine.tasks()) == 3


def test_clearing_an_override_lets_the_territory_rule_decide_again(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - {id: pin, on: pin, then: [{add_to_territory: spb}, {remove_from_territory: msk}]}
          - {id: unpin, on: unpin, then: [{clear_territory_override: spb}]}
          - id: left
            on: territory.left
            then: [{create_task: {title: "Выход из {{ event.territory }}"}}]
          - id: entered
            on: territory.entered
            then: [{create_task: {title: "Вход в {{ event.territory }}"}}]
        """,
    )
    add_client(engine)
    engine.handle(event("pin", "e1", client="c1"))
    assert client_of(engine).territories == frozenset({"spb"})
    # The action: the client is not in Saint Petersburg by its region, so it leaves spb.
    result = engine.handle(event("unpin", "e2", client="c1"))
    assert client_of(engine).territories == frozenset()
    assert [e.summary for e in result.effects_of("territory_override")] == [
        "client c1: manual override for spb cleared (the territory's rule decides again)"
    ]
    assert [e.type for e in result.events] == ["unpin", "territory.left"]
    again = engine.handle(event("unpin", "e3", client="c1"))
    assert [e.summary for e in again.effects_of("territory_override")] == [
        "client c1 has no manual override for spb; nothing to clear"
    ]
    assert [e.type for e in again.events] == ["unpin"]
    # The host call: the manual removal from msk goes, and the region puts the client back.
    cleared = engine.clear_territory_override("c1", "msk")
    assert client_of(engine).territories == frozenset({"msk"})
    assert [e.type for e in cleared.events] == ["territory.entered"]
    assert sorted(t.title for t in engine.tasks()) == [
        "Вход в msk",
        "Вход в msk",
        "Вход в spb",
        "Выход из msk",
        "Выход из spb",
    ]
    with pytest.raises(RefusedError, match="no client 'nobody'"):
        engine.clear_territory_override("nobody", "msk")


# --- cancel_tasks -----------------------------------------------------------------------------

CANCEL = """
rules:
  - id: prepare
    on: prepare
    then:
      - create_task: {kind: call, title: Позвонить клиенту}
      - create_task: {kind: meeting, title: Встреча на объекте}
      - create_task: {kind: email, title: Отправить КП}
  - id: followup
    on: followup
    then: [{create_task: {kind: call, title: Уточнить решение}}]
  - id: stop
    on: stop
    then: [{cancel_tasks: CANCEL}]
"""


@pytest.mark.parametrize(
    ("spec", "cancelled"),
    [
        ("{kind: call}", ["Позвонить клиенту", "Уточнить решение"]),
        ("{rule: followup}", ["Уточнить решение"]),
        ("{title_contains: кп}", ["Отправить КП"]),
        ("{title_contains: ВСТРЕЧА}", ["Встреча на объекте"]),
        ("{kind: call, rule: prepare}", ["Позвонить клиенту"]),
        ("{all: true}", ["Встреча на объекте", "Отправить КП", "Уточнить решение"]),
    ],
)
def test_cancel_tasks_cancels_matching_open_tasks_of_the_deal_only(
    tmp_path: Path, spec: str, cancelled: list[str]
) -> None:
    engine = make(tmp_path, textwrap.dedent(CANCEL).replace("CANCEL", spec))
    add_client(engine)
    add_deal(engine, "d1")
    add_deal(engine, "d2")
    engine.handle(event("prepare", "p1", deal="d1"))
    engine.handle(event("followup", "f1", deal="d1"))
    engine.handle(event("prepare", "p2", deal="d2"))
    engine.handle(event("followup", "f2", deal="d2"))
    if spec == "{all: true}":  # a closed task stays closed
        done = next(t for t in engine.tasks() if (t.deal, t.title) == ("d1", "Позвонить клиенту"))
        engine.complete_task(done.id)
    advance(engine, timedelta(hours=1))
    result = engine.handle(event("stop", "s1", deal="d1"))
    assert sorted(summaries(result)) == sorted(f"task {title!r} cancelled" for title in cancelled)
    by_deal = {
        (t.deal, t.title): (t.status, t.closed_at)
        for t in engine.tasks()
        if t.status is not TaskStatus.OPEN
    }
    expected = {
        ("d1", title): (TaskStatus.CANCELLED, START + timedelta(hours=1)) for title in cancelled
    }
    if spec == "{all: true}":
        expected[("d1", "Позвонить клиенту")] = (TaskStatus.DONE, START)
    assert by_deal == expected
    assert all(t.status is TaskStatus.OPEN for t in engine.tasks() if t.deal == "d2")


def test_cancel_tasks_without_a_deal_works_on_the_clients_tasks(tmp_path: Path) -> None:
    engine = make(tmp_path, textwrap.dedent(CANCEL).replace("CANCEL", "{kind: call}"))
    add_client(engine)
    add_client(engine, "c2", name="ООО Лютик")
    engine.handle(event("prepare", "p1", client="c1"))
    engine.handle(event("prepare", "p2", client="c2"))
    result = engine.handle(event("stop", "s1", client="c1"))
    assert summaries(result) == ["task 'Позвонить клиенту' cancelled"]
    status = {(t.client, t.title): t.status for t in engine.tasks()}
    assert status[("c1", "Позвонить клиенту")] is TaskStatus.CANCELLED
    assert status[("c2", "Позвонить клиенту")] is TaskStatus.OPEN
    assert [s for s in status.values() if s is TaskStatus.CANCELLED] == [TaskStatus.CANCELLED]


# --- notify -----------------------------------------------------------------------------------


class Pager:
    """A notifier made in the test: anything with a name and send(message)."""

    def __init__(self) -> None:
        self.name = "pager"
        self.sent: list[OutboxMessage] = []

    def send(self, message: OutboxMessage) -> None:
        self.sent.append(message)


def test_notify_targets_channels_and_delivery(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: alert
            on: lead.received
            then:
              - notify: {to: petrova, message: "Новая заявка от {{ client.name }}"}
              - notify: {to: sidorov, message: "Заявка {{ event.number }}"}
              - notify: {to: responsible, message: "Ваш клиент {{ client.name }}"}
              - notify: {to: "https://hooks.example.ru/crm", message: "{{ event.number }}"}
              - notify: {to: ivanov, channel: pager, message: "Срочно: {{ event.number }}"}
        """,
    )
    add_client(engine)
    add_deal(engine)
    result = engine.handle(event("lead.received", "e1", deal="d1", data={"number": "З-17"}))
    assert summaries(result) == [
        "notify petrova@example.ru via log: 'Новая заявка от ООО Ромашка'",
        "notify sidorov via log: 'Заявка З-17'",
        "notify ivanov@example.ru via log: 'Ваш клиент ООО Ромашка'",
        "notify https://hooks.example.ru/crm via webhook: 'З-17'",
        "notify ivanov@example.ru via pager: 'Срочно: З-17'",
    ]
    messages = {m.key: m for m in outbox(engine)}
    assert {k: (m.channel, m.to, m.text) for k, m in messages.items()} == {
        "e1:alert:0": ("log", "petrova@example.ru", "Новая заявка от ООО Ромашка"),
        "e1:alert:1": ("log", "sidorov", "Заявка З-17"),
        "e1:alert:2": ("log", "ivanov@example.ru", "Ваш клиент ООО Ромашка"),
        "e1:alert:3": ("webhook", "https://hooks.example.ru/crm", "З-17"),
        "e1:alert:4": ("pager", "ivanov@example.ru", "Срочно: З-17"),
    }
    page = messages["e1:alert:4"]
    assert page.subject == "alert: lead.received"
    assert page.data == {"rule": "alert", "event": "e1", "client": "c1", "deal": "d1"}

    pager = Pager()
    report = engine.deliver({"pager": pager})
    # log is built in, pager is ours, nobody delivers webhooks here: that one waits
    assert (report.sent, report.retried, report.failed) == (4, 1, 0)
    assert report.errors == [("e1:alert:3", "no notifier for channel 'webhook'")]
    assert [(m.key, m.to, m.text) for m in pager.sent] == [
        ("e1:alert:4", "ivanov@example.ru", "Срочно: З-17")
    ]
    with engine.store.transaction() as tx:
        sent = tx.get_message("e1:alert:4")
        waiting = tx.get_message("e1:alert:3")
    assert sent is not None and sent.status is MessageStatus.SENT and sent.sent_at == START
    assert waiting is not None and waiting.status is MessageStatus.PENDING
    # delivering again sends nothing twice
    assert engine.deliver({"pager": pager}).sent == 0
    assert len(pager.sent) == 1


def test_notify_responsible_without_one_is_refused(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: alert
            on: lead.received
            then: [{notify: {to: responsible, message: "Заявка"}}]
        """,
    )
    add_client(engine, responsible=None)
    result = engine.handle(event("lead.received", "e1", client="c1"))
    assert summaries(result) == ["notify refused: the client has no responsible manager to notify"]
    assert outbox(engine) == []


# --- emit -------------------------------------------------------------------------------------


def test_emit_raises_an_event_with_templated_data_that_fires_another_rule(
    tmp_path: Path,
) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: paid
            on: invoice.paid
            then:
              - emit:
                  type: invoice.thanks
                  data: {number: "{{ event.number }}/{{ client.name }}", status: оплачен}
          - id: thanks
            on: invoice.thanks
            if: {field: event.status, eq: оплачен}
            then: [{create_task: {kind: call, title: "Поблагодарить: {{ event.number }}"}}]
        """,
    )
    add_client(engine)
    add_deal(engine)
    result = engine.handle(event("invoice.paid", "p1", deal="d1", data={"number": "СЧ-5"}))
    assert [(e.id, e.type, e.depth, e.client, e.deal) for e in result.events] == [
        ("p1", "invoice.paid", 0, None, "d1"),
        ("p1/invoice.thanks:paid:0", "invoice.thanks", 1, "c1", "d1"),
    ]
    assert result.fired == ["paid", "thanks"]
    assert summaries(result) == [
        "event invoice.thanks raised",
        "task call 'Поблагодарить: СЧ-5/ООО Ромашка' for ivanov",
    ]
    assert result.effects[0].data == {"type": "invoice.thanks"}
    (task,) = engine.tasks()
    assert (task.deal, task.idempotency_key) == ("d1", "p1/invoice.thanks:paid:0:thanks:0")


def test_emitted_data_gets_the_declared_field_types(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: paid
            on: invoice.paid
            then: [{emit: {type: invoice.big, data: {amount: "{{ event.amount }}"}}}]
          - id: big
            on: invoice.big
            if: {field: event.amount, gte: 100000}
            then: [{create_task: {title: "Крупная оплата {{ event.amount }}"}}]
        """,
    )
    add_client(engine)
    result = engine.handle(event("invoice.paid", "p1", client="c1", data={"amount": 150000}))
    assert result.fired == ["paid", "big"]
    assert [t.title for t in engine.tasks()] == ["Крупная оплата 150000"]


def test_emitted_data_that_does_not_fit_its_field_is_refused(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: paid
            on: invoice.paid
            then:
              - emit: {type: invoice.big, data: {amount: "{{ client.name }}"}}
              - create_task: {title: Проверить оплату}
          - {id: big, on: invoice.big, then: [{create_task: {title: Крупная оплата}}]}
        """,
    )
    add_client(engine)
    result = engine.handle(event("invoice.paid", "p1", client="c1", data={"amount": 5}))
    assert [(e.kind, e.summary) for e in result.effects] == [
        (
            "refused",
            "emit refused: emit invoice.big: amount: expected a whole number, got 'ООО Ромашка'",
        ),
        ("task_created", "task todo 'Проверить оплату' for ivanov"),
    ]
    assert [e.type for e in result.events] == ["invoice.paid"]
    assert [t.title for t in engine.tasks()] == ["Проверить оплату"]


# --- host operations --------------------------------------------------------------------------


def test_complete_task_raises_task_completed_and_twice_is_refused(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - {id: call, on: lead.received, then: [{create_task: {kind: call, title: Позвонить}}]}
          - id: after-call
            on: task.completed
            if: {field: event.kind, eq: call}
            then: [{create_task: {kind: email, title: "Итоги звонка {{ event.task }}"}}]
        """,
    )
    add_client(engine)
    engine.handle(event("lead.received", "e1", client="c1"))
    task = only_task(engine)
    advance(engine, timedelta(hours=1))
    result = engine.complete_task(task.id, event_id="done-1")
    assert [(e.id, e.type, e.client) for e in result.events] == [
        ("done-1/task.completed", "task.completed", "c1")
    ]
    assert result.fired == ["after-call"]
    stored = {t.kind: t for t in engine.tasks()}
    assert (stored["call"].status, stored["call"].closed_at) == (
        TaskStatus.DONE,
        START + timedelta(hours=1),
    )
    assert stored["email"].title == f"Итоги звонка {task.id}"
    with pytest.raises(RefusedError) as caught:
        engine.complete_task(task.id)
    assert caught.value.reason == f"task {task.id} is already done"
    assert len(engine.tasks()) == 2
    with pytest.raises(RefusedError, match="no task 'task-nope'"):
        engine.complete_task("task-nope")


def test_log_interaction_moves_last_contact_forward_and_raises_an_event(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        """
        rules:
          - id: logged
            on: interaction.logged
            if: {field: event.kind, eq: meeting}
            then: [{create_task: {title: "Протокол встречи с {{ client.name }}"}}]
        """,
    )
    add_client(engine)
    met = START - timedelta(hours=2)
    result = engine.log_interaction(
        Interaction(id="i1", kind="meeting", client="c1", manager="ivanov", occurred_at=met),
        event_id="i1",
    )
    # The interaction first, then the client update it implies (last_contact_at moved).
    assert [(e.id, e.type) for e in result.events] == [
        ("i1/interaction.logged", "interaction.logged"),
        ("i1/client.updated", "client.updated"),
    ]
    assert result.fired == ["logged"]
    assert client_of(engine).last_contact_at == met
    # an older interaction does not move it back
    engine.log_interaction(
        Interaction(id="i0", kind="call", client="c1", occurred_at=met - timedelta(days=3))
    )
    assert client_of(engine).last_contact_at == met
    assert [t.title for t in engine.tasks()] == ["Протокол встречи с ООО Ромашка"]
    with pytest.raises(RefusedError, match="no client 'c9'"):
        engine.log_interaction(Interaction(id="i9", kind="call", client="c9", occurred_at=met))


def test_update_client_refuses_unknown_fields_and_managers_and_changes_nothing(
    tmp_path: Path,
) -> None:
    engine = make(
        tmp_path,
        "rules:\n  - {id: watch, on: client.updated, then: [{create_task: {title: t}}]}\n",
    )
    add_client(engine)
    before = client_of(engine)
    with pytest.raises(RecordError) as unknown:
        engine.update_client("c1", {"name": "ООО Василёк", "inn": "7701234567"})
    assert (unknown.value.record, unknown.value.field) == ("client c1", "inn")
    assert str(unknown.value) == (
        "client c1: field 'inn': no such field; declare it under `fields:` as client.inn"
    )
    with pytest.raises(RefusedError) as refused:
        engine.update_client("c1", {"name": "ООО Василёк", "responsible": "kuznetsov"})
    assert refused.value.reason == "unknown manager 'kuznetsov'"
    with pytest.raises(RecordError) as typed:
        engine.update_client("c1", {"employees": "много"})
    assert (typed.value.record, typed.value.field) == ("client c1", "employees")
    assert client_of(engine) == before
    assert engine.tasks() == []
    # a good update goes through
    result = engine.update_client("c1", {"responsible": "petrova", "employees": "250"})
    assert result.fired == ["watch"]
    assert client_of(engine).responsible == "petrova"
    assert client_of(engine).fields == {"employees": 250}


def test_create_deal_with_an_unknown_pipeline_or_stage_is_refused(tmp_path: Path) -> None:
    engine = make(
        tmp_path,
        "rules:\n  - {id: watch, on: deal.created, then: [{create_task: {title: t}}]}\n",
    )
    add_client(engine)
    with pytest.raises(RefusedError) as pipeline:
        add_deal(engine, "d9", pipeline="rent")
    assert pipeline.value.reason == ("deal d9: unknown pipeline 'rent'; the regulation has sales")
    with pytest.raises(RefusedError) as stage:
        add_deal(engine, "d9", stage="draft")
    assert stage.value.reason == "deal d9: pipeline sales has no stage 'draft'"
    with pytest.raises(RefusedError, match="no client 'c9'"):
        add_deal(engine, "d9", "c9")
    assert engine.get_deal("d9") is None
    assert engine.tasks() == []
    add_deal(engine, "d9")
    assert deal_of(engine, "d9").stage == "new"
    assert len(engine.tasks()) == 1


def test_host_move_stage_outside_the_transitions_is_refused(tmp_path: Path) -> None:
    engine = make(tmp_path, "")
    add_client(engine)
    add_deal(engine, stage="offer")
    with pytest.raises(RefusedError) as caught:
        engine.move_stage("d1", "won")
    assert caught.value.reason == (
        "deal d1: cannot move from offer to won in pipeline sales "
        "(allowed from offer: invoice, new, lost)"
    )
    assert deal_of(engine).stage == "offer"
