"""The client service regulation at work, on the embedded SQLite store.

Run: python examples/quickstart.py

It loads examples/client-service, opens the default store (the SQLite file
in $CRMRULES_DATABASE_URL, else ./crmrules.sqlite3), and walks one deal from
consultation to payment, printing what the regulation did and why. Event
ids are fixed, so a second run finds every event already handled and
changes nothing: that is crmrules' exactly-once guarantee, across restarts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from crmrules import Client, Deal, Engine, Event, RefusedError, SimulatedClock

HERE = Path(__file__).parent
MSK = ZoneInfo("Europe/Moscow")


HOW_TO_READ = """\
How to read what follows. Each event is a line with its type and id, then each
rule that listens to it: ✓ fired, ✗ not matched (with the condition that failed
and the actual value), ‖ held by a policy (once, cooldown); the → lines under a
rule are what it did. What a rule changes raises events of its own
(client.updated, deal.stage_changed, ...), shown after the event being handled
and indented one step per generation. Their ids say where they come from:
<cause>/<event type>:<rule>:<action number>, so
quickstart-payment/deal.stage_changed:payment-received:1 is the stage change
made by action 1 (counting from 0) of rule payment-received while handling
quickstart-payment."""


def show(title: str, text: str) -> None:
    print(f"\n== {title}")
    print(text)


def main() -> None:
    clock = SimulatedClock(datetime(2026, 6, 11, 10, 0, tzinfo=MSK))  # a Thursday
    engine = Engine.from_path(HERE / "client-service", clock=clock)
    print(f"regulation: {engine.regulation.summary()}")
    print(HOW_TO_READ)

    show(
        "a new client",
        engine.create_client(
            Client(
                id="romashka",
                name="ООО Ромашка",
                email="info@romashka.example",
                region="Москва",
                fields={"segment": "A", "employees": 40, "contact_name": "Анна Сергеевна"},
            ),
            event_id="quickstart-client",
        ).explain(),
    )
    engine.create_deal(
        Deal(id="romashka-1", client="romashka", pipeline="works", stage="consultation"),
        event_id="quickstart-deal",
    )
    for step, stage in enumerate(["measurement", "design", "offer", "invoice"]):
        engine.move_stage("romashka-1", stage, event_id=f"quickstart-move-{step}")

    show(
        "the invoice is issued (Friday 12 June is a holiday in Russia)",
        engine.handle(
            Event(
                id="quickstart-invoice",
                type="invoice.issued",
                occurred_at=clock.now(),
                deal="romashka-1",
                data={"invoice_number": "СЧ-2026-117"},
            )
        ).explain(),
    )
    try:
        engine.move_stage("romashka-1", "delivery", event_id="quickstart-too-early")
    except RefusedError as refusal:
        show("a move the pipeline does not allow", f"refused: {refusal.reason}")

    clock.advance(timedelta(days=3))
    show(
        "the payment arrives",
        engine.handle(
            Event(
                id="quickstart-payment",
                type="payment.received",
                occurred_at=clock.now(),
                deal="romashka-1",
            )
        ).explain(),
    )
    tasks = engine.tasks(client="romashka")
    show(
        "tasks",
        "\n".join(
            f"{t.id}  {t.status.value:<9} {t.kind:<5} {t.title!r} for {t.assignee}, "
            f"due {t.due:%Y-%m-%d %H:%M} (rule {t.rule})"
            for t in tasks
        ),
    )
    engine.store.close()


if __name__ == "__main__":
    main()
