"""The domain model: records a host stores, and how rules see them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from crmrules import BusinessCalendar, Client, Contact, ContactRole, Deal, Pipeline, RecordError
from crmrules.model import Event, Stage
from crmrules.rules.fields import FieldRegistry, FieldSpec, FieldType

MSK = ZoneInfo("Europe/Moscow")


def test_client_record_flattens_custom_fields_under_built_in_ones() -> None:
    client = Client(
        id="c1",
        name="ООО Ромашка",
        region="Москва",
        tags=frozenset({"vip"}),
        fields={"segment": "A", "name": "shadowed"},
    )
    record = client.record()
    assert record["segment"] == "A"
    assert record["name"] == "ООО Ромашка"  # a built-in field wins over a custom one
    assert record["tags"] == frozenset({"vip"})
    assert "fields" not in record


def test_a_contact_can_work_in_several_organisations() -> None:
    contact = Contact(
        id="p1",
        name="Анна",
        roles=[ContactRole(client="c1", role="director"), ContactRole(client="c2", role="buyer")],
    )
    assert contact.role_in("c2") == "buyer"
    assert contact.role_in("c3") is None


def test_bad_host_records_are_refused_by_field() -> None:
    with pytest.raises(ValidationError) as caught:
        Deal(id="d1", client="c1", pipeline="p", stage="new", created_at=datetime(2026, 3, 2))
    assert caught.value.errors()[0]["loc"] == ("created_at",)
    with pytest.raises(ValidationError):
        Client(id="c1", kind="robot")  # type: ignore[arg-type]


def test_custom_fields_are_coerced_with_record_and_field_named() -> None:
    registry = FieldRegistry(
        [
            FieldSpec("client.employees", FieldType.INTEGER),
            FieldSpec("client.subscribed", FieldType.BOOLEAN, default=True),
            FieldSpec("client.revenue", FieldType.DECIMAL),
        ]
    )
    calendar = BusinessCalendar("Europe/Moscow")
    record = registry.coerce_record(
        "client", "c1", {"employees": "250", "revenue": "1000.50", "other": 1}, calendar
    )
    assert record == {
        "employees": 250,
        "revenue": Decimal("1000.50"),
        "other": 1,
        "subscribed": True,
    }
    with pytest.raises(RecordError) as caught:
        registry.coerce_record("client", "c7", {"employees": "many"}, calendar)
    assert str(caught.value) == "client c7: field 'employees': expected a whole number, got 'many'"


def test_pipeline_moves() -> None:
    pipeline = Pipeline(
        id="sales",
        stages=(
            Stage(id="new"),
            Stage(id="offer"),
            Stage(id="invoice"),
            Stage(id="won", final=True),
            Stage(id="lost", final=True),
        ),
        transitions={"offer": ("invoice", "offer", "lost")},
    )
    assert pipeline.allowed_moves("new") == ("offer", "won", "lost")
    assert pipeline.allowed_moves("offer") == ("invoice", "offer", "lost")
    assert pipeline.allowed_moves("invoice") == ("won", "lost")
    assert pipeline.allowed_moves("won") == ()
    assert pipeline.can_move("new", "offer") and not pipeline.can_move("new", "invoice")
    assert pipeline.next_stage("invoice") == "won"
    assert pipeline.next_stage("lost") is None


def test_event_record_exposes_data_and_identity() -> None:
    event = Event(
        id="e1",
        type="invoice.issued",
        occurred_at=datetime(2026, 3, 2, 10, tzinfo=MSK),
        deal="d1",
        data={"invoice_number": "INV-17", "id": "spoofed"},
    )
    record = event.record()
    assert record["invoice_number"] == "INV-17"
    assert record["id"] == "e1"
    assert record["type"] == "invoice.issued"
