"""The seed processes, end to end in memory: the client service regulation at work.

The regulation is examples/client-service (Russian calendar, Moscow time):
an invoice makes a call task 2 business days later, payment cancels it and
moves the deal to production, accepted measurements move the deal to design
with a task to prepare the offer.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crmrules import Client, Deal, Event, SimulatedClock
from crmrules.adapters import MemoryStore, SmtpNotifier
from crmrules.engine import Engine, RefusedError
from crmrules.model import MailingStatus, TaskStatus
from localservers import MailHandler

EXAMPLE = Path(__file__).parent.parent / "examples" / "client-service"
MSK = ZoneInfo("Europe/Moscow")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=MSK)  # type: ignore[misc]


@pytest.fixture
def clock() -> SimulatedClock:
    # Thursday 11 June 2026; Friday 12 June is Russia Day, then a weekend.
    return SimulatedClock(at(2026, 6, 11, 10, 0))


@pytest.fixture
def engine(clock: SimulatedClock) -> Engine:
    engine = Engine.from_path(EXAMPLE, store=MemoryStore(), clock=clock, entry_points=False)
    engine.create_client(
        Client(
            id="c1",
            name="ООО Ромашка",
            email="info@romashka.ru",
            region="Москва",
            responsible="petrova",
            fields={"segment": "A", "employees": 40, "contact_name": "Анна Сергеевна"},
        ),
        event_id="seed-client",
    )
    engine.create_deal(
        Deal(id="d1", client="c1", pipeline="works", stage="consultation"), event_id="seed-deal"
    )
    return engine


def open_tasks(engine: Engine) -> list[tuple[str, str, str | None, datetime | None]]:
    return [
        (t.kind, t.title, t.assignee, t.due)
        for t in engine.tasks(client="c1", status=TaskStatus.OPEN)
    ]


def move_to(engine: Engine, *stages: str) -> None:
    for stage in stages:
        engine.move_stage("d1", stage)


def test_invoice_makes_a_call_task_two_business_days_later_across_holiday_and_weekend(
    engine: Engine,
) -> None:
    result = engine.handle(
        Event(
            id="inv-17",
            type="invoice.issued",
            occurred_at=at(2026, 6, 11, 10, 0),
            deal="d1",
            data={"invoice_number": "INV-17"},
        )
    )
    assert result.fired == ["invoice-followup"]
    # Friday 12 June is a holiday, 13-14 June a weekend: Monday is day 1, Tuesday day 2.
    assert open_tasks(engine) == [
        ("call", "Уточнить оплату счёта INV-17", "petrova", at(2026, 6, 16, 10, 0))
    ]
    (mailing,) = result.effects_of("mailing_queued")
    assert mailing.summary == (
        "mailing payment_reminder to info@romashka.ru: 'Счёт INV-17 ожидает оплаты'"
    )


def test_payment_cancels_the_call_and_moves_the_deal_to_production(
    engine: Engine, clock: SimulatedClock
) -> None:
    move_to(engine, "measurement", "design", "offer", "invoice")
    engine.handle(
        Event(
            id="inv-1",
            type="invoice.issued",
            occurred_at=clock.now(),
            deal="d1",
            data={"invoice_number": "INV-1"},
        )
    )
    assert [t[0] for t in open_tasks(engine)] == ["call"]
    result = engine.handle(
        Event(id="pay-1", type="payment.received", occurred_at=clock.now(), deal="d1")
    )
    assert result.fired == ["payment-received"]
    assert open_tasks(engine) == []
    cancelled = engine.tasks(client="c1", status=TaskStatus.CANCELLED)
    assert [t.title for t in cancelled] == ["Уточнить оплату счёта INV-1"]
    deal = engine.get_deal("d1")
    assert deal is not None and deal.stage == "production"
    assert [e.type for e in result.events] == [
        "payment.received",
        "deal.stage_changed",
        "deal.updated",
    ]


def test_accepted_measurement_moves_to_design_and_asks_for_the_offer(
    engine: Engine, clock: SimulatedClock
) -> None:
    move_to(engine, "measurement")
    result = engine.update_deal("d1", {"measurement_result": "accepted"})
    assert "measurement-accepted" in result.fired
    deal = engine.get_deal("d1")
    assert deal is not None and deal.stage == "design"
    assert deal.stage_entered_at == clock.now()
    # Within one working day: Thursday 10:00 + 1 business day = Monday 10:00 (Friday is a holiday).
    assert open_tasks(engine) == [
        (
            "todo",
            "Подготовить коммерческое предложение для ООО Ромашка",
            "petrova",
            at(2026, 6, 15, 10, 0),
        )
    ]


def test_a_stage_move_outside_the_transitions_is_refused_and_changes_nothing(
    engine: Engine,
) -> None:
    with pytest.raises(RefusedError) as caught:
        engine.move_stage("d1", "production")
    assert caught.value.reason == (
        "deal d1: cannot move from consultation to production in pipeline works "
        "(allowed from consultation: measurement, won, refused)"
    )
    deal = engine.get_deal("d1")
    assert deal is not None and deal.stage == "consultation"


def test_a_refused_move_by_a_rule_is_explained_and_the_rest_still_happens(
    engine: Engine, clock: SimulatedClock
) -> None:
    # payment-received wants production, but the deal is still at consultation.
    result = engine.handle(
        Event(id="pay-early", type="payment.received", occurred_at=clock.now(), deal="d1")
    )
    (refusal,) = result.effects_of("refused")
    assert refusal.summary == (
        "move_stage refused: deal d1: cannot move from consultation to production in "
        "pipeline works (allowed from consultation: measurement, won, refused)"
    )
    deal = engine.get_deal("d1")
    assert deal is not None and deal.stage == "consultation"
    assert "move_stage refused" in result.explain()


def test_custom_fields_are_typed_when_stored(engine: Engine) -> None:
    engine.update_client("c1", {"annual_revenue": "1200000.50", "employees": "260"})
    client = engine.get_client("c1")
    assert client is not None
    assert client.fields["annual_revenue"] == Decimal("1200000.50")
    assert client.fields["employees"] == 260
    # 260 employees in Moscow: the client is now also in msk-enterprise.
    assert client.territories == frozenset({"msk", "msk-enterprise"})


def test_a_cyrillic_mailing_is_rendered_and_delivered_over_real_smtp(
    engine: Engine, clock: SimulatedClock, mail: tuple[MailHandler, int]
) -> None:
    handler, port = mail
    engine.handle(
        Event(
            id="inv-42",
            type="invoice.issued",
            occurred_at=clock.now(),
            deal="d1",
            data={"invoice_number": "СЧ-42"},
        )
    )
    smtp = SmtpNotifier(
        "127.0.0.1",
        port,
        sender="Отдел продаж <sales@example.ru>",
        timeout=2.0,
        local_hostname="localhost",
    )
    report = engine.deliver({"email": smtp})
    assert (report.sent, report.failed) == (1, 0)
    (received,) = handler.received
    assert received.rcpt_tos == ["info@romashka.ru"]
    message = received.parsed()
    assert message["Subject"] == "Счёт СЧ-42 ожидает оплаты"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert (
        text.get_content()
        .replace("\r\n", "\n")
        .startswith("Здравствуйте, Анна Сергеевна!\n\nНапоминаем, что счёт СЧ-42 ожидает оплаты.")
    )
    assert "<p>Здравствуйте, Анна Сергеевна!</p>" in html.get_content()
    with engine.store.transaction() as tx:
        (mailing,) = tx.find_mailings(client="c1")
    assert mailing.status is MailingStatus.SENT
    # Delivering again sends nothing more.
    assert engine.deliver({"email": smtp}).sent == 0
    assert len(handler.received) == 1
