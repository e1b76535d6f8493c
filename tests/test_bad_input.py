"""Bad input from the host and the regulation is refused with a clear error (issue 10)."""

from __future__ import annotations

import os
import tempfile
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmrules import Client, Deal, Event, RecordError, SimulatedClock
from crmrules.adapters.memory import MemoryStore
from crmrules.engine import Engine, RefusedError
from crmrules.errors import RegulationError
from crmrules.rules.source import Limits, load_document


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
