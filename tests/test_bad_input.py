"""Bad input from the host and the regulation is refused with a clear error (issue 10)."""

from __future__ import annotations

import os
import tempfile
import threading
import unicodedata
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from crmrules import (
    Client,
    ContactRole,
    Deal,
    Event,
    Interaction,
    Manager,
    RecordError,
    SimulatedClock,
)
from crmrules.adapters.memory import MemoryStore
from crmrules.engine import Engine, RefusedError
from crmrules.errors import RegulationError
from crmrules.rules.regulation import load_regulation
from crmrules.rules.source import Limits, load_document
from crmrules.testing import load_scenario_file


def test_a_pipe_larger_than_the_limit_is_refused_while_reading(tmp_path: Path) -> None:
    # stat() says 0 bytes for a pipe (or /dev/zero): the size must be checked while reading.
    fifo = tmp_path / "regulation.yaml"
    os.mkfifo(fifo)

    def write() -> None:
        try:
            with fifo.open("wb") as out:
                out.write(b"# " + b"x" * 5000 + b"\nversion: 1\n")
        except BrokenPipeError:
            pass  # the reader stopped at the limit, as it should

    writer = threading.Thread(target=write)
    writer.start()
    try:
        with pytest.raises(RegulationError, match="file is too large"):
            load_document([fifo], Limits(max_file_bytes=1000))
    finally:
        writer.join()


def test_dev_zero_is_refused_after_the_limit() -> None:
    with pytest.raises(RegulationError, match=r"too large \(more than 1000 bytes\)"):
        load_document(["/dev/zero"], Limits(max_file_bytes=1000))


# --------------------------------------------------------------------------- the host's records

MSK = ZoneInfo("Europe/Moscow")
START = datetime(2026, 3, 2, 10, 0, tzinfo=MSK)

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow, working_hours: "09:00-18:00"}
fields:
  client.revenue: {type: decimal}
  client.segment: {type: enum, values: [A, B]}
  deal.discount: {type: decimal}
  event.invoice_number: {type: string}
  event.total: {type: decimal}
pipelines:
  - id: sales
    stages: [{id: new}, {id: offer}, {id: won, final: true}]
rules:
  - id: invoice
    on: invoice.sent
    then: [{create_task: {title: "Счёт {{ event.invoice_number }}"}}]
"""


def make(tmp_path: Path, regulation: str = REGULATION) -> Engine:
    path = tmp_path / "regulation.yaml"
    path.write_text(regulation, encoding="utf-8")
    return Engine.from_path(
        path, store=MemoryStore(), clock=SimulatedClock(START), entry_points=False
    )


def with_clients(tmp_path: Path) -> Engine:
    engine = make(tmp_path)
    engine.create_client(Client(id="c1", name="Ромашка"))
    engine.create_client(Client(id="c2", name="Лютик"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    engine.create_deal(Deal(id="d2", client="c2", pipeline="sales", stage="new"))
    return engine


NOT_FINITE = st.sampled_from(
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        "NaN",
        "Infinity",
        "-inf",
    ]
)


@settings(max_examples=30, deadline=None)
@given(value=NOT_FINITE, where=st.sampled_from(["create", "update", "deal", "event"]))
def test_nan_and_infinity_are_refused_in_decimal_fields(value: object, where: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = with_clients(Path(folder))
        with pytest.raises(RecordError) as caught:
            if where == "create":
                engine.create_client(Client(id="c9", fields={"revenue": value}))
            elif where == "update":
                engine.update_client("c1", {"revenue": value})
            elif where == "deal":
                engine.update_deal("d1", {"discount": value})
            else:
                engine.handle(
                    Event(
                        id="e1",
                        type="invoice.sent",
                        occurred_at=START,
                        client="c1",
                        data={"total": value},
                    )
                )
        assert "number" in caught.value.message
        assert engine.get_client("c9") is None
        # Nothing was stored: the next event for the client still works.
        client = engine.get_client("c1")
        assert client is not None and client.fields.get("revenue") is None
        engine.handle(Event(id="e2", type="invoice.sent", occurred_at=START, client="c1"))
        assert len(engine.tasks()) == 1


def test_a_deal_cannot_be_moved_to_a_client_that_does_not_exist(tmp_path: Path) -> None:
    engine = with_clients(tmp_path)
    with pytest.raises(RefusedError, match="deal d1: no client 'ghost'"):
        engine.update_deal("d1", {"client": "ghost"})
    deal = engine.get_deal("d1")
    assert deal is not None and deal.client == "c1"
    engine.update_deal("d1", {"client": "c2"})  # an existing client is fine


@pytest.mark.parametrize(
    ("client", "deal", "message"),
    [
        ("ghost", None, "event e1: no client 'ghost'"),
        (None, "ghost", "event e1: no deal 'ghost'"),
        ("c1", "d2", "event e1: deal d2 belongs to client c2, not c1"),
    ],
)
def test_events_naming_unknown_or_mismatched_records_are_refused(
    tmp_path: Path, client: str | None, deal: str | None, message: str
) -> None:
    engine = with_clients(tmp_path)
    event = Event(id="e1", type="invoice.sent", occurred_at=START, client=client, deal=deal)
    with pytest.raises(RefusedError, match=message):
        engine.handle(event)
    assert engine.tasks() == []
    # Refused, not handled: the same id can be sent again once it is right.
    fixed = event.model_copy(update={"client": "c2" if deal == "d2" else "c1", "deal": deal})
    if deal == "ghost":
        fixed = fixed.model_copy(update={"deal": "d1"})
    assert not engine.handle(fixed).duplicate
    assert len(engine.tasks()) == 1


def test_an_interaction_naming_a_deal_of_another_client_is_refused(tmp_path: Path) -> None:
    engine = with_clients(tmp_path)
    call = Interaction(id="i1", kind="call", client="c1", deal="d2", occurred_at=START)
    with pytest.raises(RefusedError, match="interaction i1: deal d2 belongs to client c2"):
        engine.log_interaction(call)
    with pytest.raises(RefusedError, match="interaction i1: no deal 'ghost'"):
        engine.log_interaction(call.model_copy(update={"deal": "ghost"}))


def test_create_client_refuses_undeclared_custom_fields(tmp_path: Path) -> None:
    engine = make(tmp_path)
    with pytest.raises(RecordError) as caught:
        engine.create_client(Client(id="c9", fields={"segmnt": "A"}))
    assert caught.value.field == "segmnt"
    assert "did you mean segment?" in str(caught.value)
    assert "declare it under `fields:`" in str(caught.value)
    assert engine.get_client("c9") is None
    engine.create_client(Client(id="c9", fields={"segment": "A"}))
    with pytest.raises(RecordError, match="did you mean discount"):
        engine.create_deal(
            Deal(id="d9", client="c9", pipeline="sales", stage="new", fields={"discont": 1})
        )
    assert engine.get_deal("d9") is None
    # update_client says the same.
    with pytest.raises(RecordError, match="did you mean segment"):
        engine.update_client("c9", {"segmnt": "B"})


def test_events_with_undeclared_data_keys_are_refused(tmp_path: Path) -> None:
    engine = with_clients(tmp_path)
    typo = Event(
        id="e1",
        type="invoice.sent",
        occurred_at=START,
        client="c1",
        data={"invoice_numbr": "INV-1"},
    )
    with pytest.raises(RecordError) as caught:
        engine.handle(typo)
    assert (caught.value.record, caught.value.field) == ("event e1", "invoice_numbr")
    assert "did you mean invoice_number?" in str(caught.value)
    assert "declare it under `fields:` as event.invoice_numbr" in str(caught.value)
    assert engine.tasks() == []


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("interaction.logged", {"interaction": "i1", "kind": "call", "outcome": "reached"}),
        ("territory.entered", {"territory": "msk"}),
        ("task.completed", {"task": "t1", "kind": "call", "rule": "r"}),
    ],
)
def test_built_in_events_keep_their_built_in_data_keys(
    tmp_path: Path, event_type: str, data: dict[str, object]
) -> None:
    engine = with_clients(tmp_path)
    event = Event(id="e1", type=event_type, occurred_at=START, client="c1", data=data)
    assert not engine.handle(event).errors
    with pytest.raises(RecordError, match="no such field"):
        engine.handle(event.model_copy(update={"id": "e2", "data": {**data, "invoice_numbr": "1"}}))


def test_a_scenario_event_with_an_undeclared_data_key_names_file_line_and_column(
    tmp_path: Path,
) -> None:
    (tmp_path / "regulation.yaml").write_text(REGULATION, encoding="utf-8")
    scenario = tmp_path / "invoice.regulation.yaml"
    scenario.write_text(
        "regulation: regulation.yaml\n"
        "now: 2026-03-02T10:00:00+03:00\n"
        "given:\n"
        "  clients: [{id: c1}]\n"
        "scenarios:\n"
        "  - name: typo\n"
        "    steps:\n"
        "      - event: {type: invoice.sent, client: c1, data: {invoice_numbr: INV-1}}\n"
        "      - expect: {tasks: [{title: Счёт INV-1}]}\n",
        encoding="utf-8",
    )
    with pytest.raises(RegulationError) as caught:
        load_scenario_file(scenario)
    assert str(caught.value).startswith(f"{scenario}:8:56: unknown event field 'invoice_numbr'")
    assert "did you mean 'invoice_number'?" in str(caught.value)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_reusing_an_interaction_id_is_idempotent_or_refused(tmp_path: Path, store: str) -> None:
    engine = with_clients(tmp_path)
    if store == "sqlite":
        engine = Engine(
            engine.regulation,
            store=f"sqlite:///{tmp_path / 'crm.sqlite3'}",
            clock=SimulatedClock(START),
            entry_points=False,
        )
        engine.create_client(Client(id="c1", name="Ромашка"))
    call = Interaction(id="i1", kind="call", client="c1", outcome="reached", occurred_at=START)
    first = engine.log_interaction(call)
    assert [e.type for e in first.events] == ["interaction.logged", "client.updated"]
    # The same interaction logged again (a host retry without event_id): nothing new.
    again = engine.log_interaction(call)
    assert again.events == [] and again.effects == []
    # The same id with other content would overwrite history: refused.
    changed = call.model_copy(update={"outcome": "no_answer"})
    with pytest.raises(RefusedError, match="interaction i1 already exists with other content"):
        engine.log_interaction(changed)
    with engine.store.transaction() as tx:
        assert tx.get_interaction("i1") == call


def test_update_client_with_none_gives_a_clear_error(tmp_path: Path) -> None:
    engine = with_clients(tmp_path)
    with pytest.raises(RecordError, match="expected a mapping of field names to new values"):
        engine.update_client("c1", None)  # type: ignore[arg-type]
    with pytest.raises(RecordError, match="expected a mapping"):
        engine.update_deal("d1", ["stage", "offer"])  # type: ignore[arg-type]


CONTROL = st.characters(categories=["Cc"]) | st.sampled_from(["\u2028", "\u2029"])


@settings(max_examples=40, deadline=None)
@given(
    prefix=st.text(alphabet="abc", max_size=3),
    bad=CONTROL,
    where=st.sampled_from(["client", "deal", "event", "update"]),
)
def test_control_characters_in_ids_are_refused(prefix: str, bad: str, where: str) -> None:
    record_id = f"{prefix}{bad}x"
    with tempfile.TemporaryDirectory() as folder:
        engine = with_clients(Path(folder))
        with pytest.raises((ValidationError, RecordError), match="control character"):
            if where == "client":
                engine.create_client(Client(id=record_id))
            elif where == "deal":
                engine.create_deal(Deal(id="d9", client=record_id, pipeline="sales", stage="new"))
            elif where == "event":
                engine.handle(Event(id=record_id, type="invoice.sent", occurred_at=START))
            else:
                engine.update_client(record_id, {"name": "x"})


NFD_STAGE = unicodedata.normalize("NFD", "счёт")  # "е" + combining diaeresis


def test_ids_are_normalised_to_nfc_stage_ids_too(tmp_path: Path) -> None:
    assert NFD_STAGE != "счёт"
    regulation = REGULATION.replace(
        "stages: [{id: new}, {id: offer}, {id: won, final: true}]",
        f"stages: [{{id: new}}, {{id: {NFD_STAGE}}}, {{id: won, final: true}}]\n"
        f"    transitions: [{{from: new, to: [счёт]}}, {{from: {NFD_STAGE}, to: [won]}}]",
    )
    engine = make(tmp_path, regulation)
    assert [s.id for s in engine.regulation.pipelines["sales"].stages] == ["new", "счёт", "won"]
    nfd_client = unicodedata.normalize("NFD", "клиент-й")
    engine.create_client(Client(id=nfd_client))
    assert engine.get_client("клиент-й") is not None
    with pytest.raises(RefusedError, match="already exists"):
        engine.create_client(Client(id="клиент-й"))
    engine.create_deal(Deal(id="d1", client="клиент-й", pipeline="sales", stage="new"))
    engine.move_stage("d1", NFD_STAGE)
    deal = engine.get_deal("d1")
    assert deal is not None and deal.stage == "счёт"
    engine.move_stage("d1", "won")


# --------------------------------------------------------------------------- the regulation


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("    on: invoice.sent\n", "    on: invoice.sent\n    stop: yes\n", "15:11"),
        ("    on: invoice.sent\n", "    on: invoice.sent\n    enabled: off\n", "15:14"),
        ("    on: invoice.sent\n", "    on: invoice.sent\n    enabled: 'false'\n", "15:14"),
        ("    on: invoice.sent\n", "    on: invoice.sent\n    enabled: 0\n", "15:14"),
        ("{id: won, final: true}", "{id: won, final: 'y'}", "11:55"),
        ("{id: won, final: true}", "{id: won, final: 1}", "11:55"),
    ],
)
def test_flags_are_true_or_false_only(tmp_path: Path, old: str, new: str, where: str) -> None:
    assert old in REGULATION
    path = tmp_path / "regulation.yaml"
    path.write_text(REGULATION.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(RegulationError) as caught:
        load_regulation(path)
    assert str(caught.value).startswith(f"{path}:{where}: ")
    assert "true or false" in str(caught.value)


EDGE_REGULATION = """\
version: 1
calendar: {timezone: %s, working_hours: "09:00-18:00"}
fields:
  client.contract_end: {type: date}
  client.renewal_at: {type: datetime}
pipelines:
  - id: sales
    stages: [{id: new, deadline: 3 business days}, {id: won, final: true}]
rules:
  - id: before-end
    on: {before: 30 days, of: client.contract_end}
    then: [{create_task: {title: продлить}}]
  - id: after-renewal
    on: {after: 1 month, since: client.renewal_at}
    then: [{create_task: {title: продлён?}}]
"""

EDGE_DAYS = st.dates(max_value=date(1, 2, 1)) | st.dates(min_value=date(9999, 11, 1))


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(["America/New_York", "Asia/Tokyo", "UTC"]),
    day=EDGE_DAYS,
    hour=st.integers(0, 23),
    field=st.sampled_from(["contract_end", "renewal_at", "renewal_at_utc", "stage_entered_at"]),
)
def test_dates_at_the_calendars_edge_give_a_record_error(
    zone: str, day: date, hour: int, field: str
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = make(Path(folder), EDGE_REGULATION % zone)
        moment = datetime.combine(day, time(hour))
        try:
            if field == "stage_entered_at":
                engine.create_client(Client(id="c1"))
                deal = Deal(
                    id="d1",
                    client="c1",
                    pipeline="sales",
                    stage="new",
                    stage_entered_at=moment.replace(tzinfo=ZoneInfo("UTC")),
                )
                engine.create_deal(deal)
            else:
                value: object = {
                    "contract_end": day.isoformat(),
                    "renewal_at": moment.isoformat(),
                    "renewal_at_utc": moment.replace(tzinfo=ZoneInfo("UTC")),
                }[field]
                engine.create_client(Client(id="c1", fields={field.removesuffix("_utc"): value}))
        except RecordError as error:
            assert "out of" in error.message and "range" in error.message
            assert error.field == field.removesuffix("_utc")
            assert engine.get_deal("d1") is None


def test_a_task_due_past_the_calendars_edge_is_made_without_a_due_date(tmp_path: Path) -> None:
    regulation = EDGE_REGULATION % "Europe/Moscow" + (
        "  - id: ping\n"
        "    on: ping\n"
        "    then: [{create_task: {title: t, due: {field: client.contract_end, after: 2 days}}}]\n"
    )
    engine = make(tmp_path, regulation)
    engine.create_client(Client(id="c1", fields={"contract_end": "9999-12-31"}))
    result = engine.handle(Event(id="p", type="ping", occurred_at=START, client="c1"))
    assert [t.due for t in engine.tasks()] == [None]
    assert "no due date: client.contract_end 9999-12-31 + 2 days is out of" in str(
        [e.summary for e in result.effects]
    )


@pytest.mark.parametrize("value", ["yes", "off", "false", 0, 1, "y"])
def test_host_record_flags_are_true_or_false_only(value: object) -> None:
    with pytest.raises(ValidationError, match="valid boolean"):
        Manager(id="m1", active=value)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="valid boolean"):
        ContactRole(client="c1", role="buyer", primary=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("zone", "day"), [("America/New_York", "9999-12-31"), ("Asia/Tokyo", "0001-01-01")]
)
def test_a_day_at_the_calendars_edge_in_a_condition_is_a_located_problem(
    tmp_path: Path, zone: str, day: str
) -> None:
    path = tmp_path / "regulation.yaml"
    path.write_text(
        f"version: 1\ncalendar: {{timezone: {zone}}}\nrules:\n  - id: r\n    on: ping\n"
        f"    if: {{field: client.created_at, eq: {day}}}\n"
        "    then: [{create_task: {title: t}}]\n",
        encoding="utf-8",
    )
    with pytest.raises(RegulationError, match=r"regulation.yaml:6:40: .*out of range"):
        load_regulation(path)
