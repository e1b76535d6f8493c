"""Campaigns and requests as host calls, the catalogue, won stages, and the deals' stage history,
on the memory store, SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from crmrules import (
    Campaign,
    Client,
    Deal,
    Engine,
    MemoryStore,
    RecordError,
    RefusedError,
    Request,
    RequestStatus,
    SimulatedClock,
    SQLAlchemyStore,
    load_regulation,
)
from crmrules.errors import RegulationError
from databases import open_database

MSK = ZoneInfo("Europe/Moscow")
START = datetime(2026, 3, 12, 15, 0, tzinfo=MSK)
EXAMPLE = Path(__file__).parent.parent / "examples" / "campaigns"
EXHIBITION = Campaign(
    id="exhibition",
    name="Выставка",
    channel="exhibition",
    budget=Decimal("150000"),
    start=date(2026, 3, 10),
    end=date(2026, 3, 15),
)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    regulation = load_regulation(EXAMPLE)
    if request.param == "memory":
        yield Engine(regulation, MemoryStore(), clock=SimulatedClock(START), entry_points=False)
        return
    with open_database(request.param, tmp_path) as db:
        store = SQLAlchemyStore(db.url, schema=db.schema)
        yield Engine(regulation, store, clock=SimulatedClock(START), entry_points=False)
        store.close()


def test_a_request_from_the_exhibition_makes_a_call_within_a_business_day(engine: Engine) -> None:
    engine.create_campaign(EXHIBITION)
    result = engine.create_request(Request(id="r1", campaign="exhibition", items=("kitchen",)))
    assert sorted(result.fired) == ["exhibition-call", "request-meeting"]
    stored = engine.get_request("r1")
    assert stored is not None
    assert (stored.channel, stored.created_at, stored.status) == ("exhibition", START, "open")
    with engine.store.transaction() as tx:
        calls = [t for t in tx.find_tasks() if t.kind == "call"]
    assert [(t.rule, t.due) for t in calls] == [("exhibition-call", START + timedelta(days=1))]


def test_converting_a_request_links_the_deal_and_the_client(engine: Engine) -> None:
    engine.create_campaign(EXHIBITION)
    engine.create_request(Request(id="r1", campaign="exhibition", name="Анна"))
    engine.create_client(Client(id="c1", name="Анна"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    result = engine.convert_request("r1", "d1")
    assert "converted-thanks" in result.fired
    assert "request.converted" in [e.type for e in result.events]
    request, deal, client = engine.get_request("r1"), engine.get_deal("d1"), engine.get_client("c1")
    assert request is not None and deal is not None and client is not None
    assert (request.status, request.deal, request.client) == (RequestStatus.CONVERTED, "d1", "c1")
    assert (deal.campaign, deal.request) == ("exhibition", "r1")
    assert (client.campaign, client.request) == ("exhibition", "r1")
    with pytest.raises(RefusedError, match="request r1 is already converted"):
        engine.refuse_request("r1", "передумал")


def test_a_refused_request_keeps_its_reason(engine: Engine) -> None:
    engine.create_request(Request(id="r2", channel="phone"))
    engine.refuse_request("r2", "нет в наличии")
    refused = engine.get_request("r2")
    assert refused is not None
    assert (refused.status, refused.reason) == (RequestStatus.REFUSED, "нет в наличии")
    with pytest.raises(RecordError, match="request r3: field 'reason': say why"):
        engine.refuse_request("r3", " ")


def test_bad_requests_name_the_record_and_field_and_change_nothing(engine: Engine) -> None:
    engine.create_campaign(EXHIBITION)
    with pytest.raises(RecordError, match=r"request r1: field 'items\[1\]': unknown catalogue item "
                       r"'kitchn' \(did you mean kitchen\?\)"):  # fmt: skip
        engine.create_request(Request(id="r1", channel="phone", items=("wardrobe", "kitchn")))
    with pytest.raises(RecordError, match="field 'campaign': unknown campaign 'exhibitoin' "
                       r"\(did you mean exhibition\?\)"):  # fmt: skip
        engine.create_request(Request(id="r1", campaign="exhibitoin"))
    with pytest.raises(RecordError, match="field 'channel': give the channel"):
        engine.create_request(Request(id="r1"))
    with pytest.raises(RefusedError, match="request r1: no client 'c9'"):
        engine.create_request(Request(id="r1", channel="phone", client="c9"))
    assert engine.get_request("r1") is None
    engine.create_request(Request(id="r1", channel="phone"))
    with pytest.raises(RefusedError, match="request r1 already exists"):
        engine.create_request(Request(id="r1", channel="site"))
    with pytest.raises(RefusedError, match="request r1: no deal 'd9'"):
        engine.convert_request("r1", "d9")


def test_campaign_input_is_checked() -> None:
    with pytest.raises(ValidationError, match="end 2026-03-01 is before start 2026-03-10"):
        Campaign(id="x", channel="ads", start=date(2026, 3, 10), end=date(2026, 3, 1))
    with pytest.raises(ValidationError, match="budget"):
        Campaign(id="x", channel="ads", budget=Decimal(-1), start=date(2026, 3, 1),
                 end=date(2026, 3, 1))  # fmt: skip


def test_every_stage_a_deal_enters_is_kept_in_order(engine: Engine) -> None:
    engine.create_client(Client(id="c1"))
    engine.create_deal(Deal(id="d1", client="c1", pipeline="sales", stage="new"))
    clock = engine.clock
    assert isinstance(clock, SimulatedClock)
    for stage in ("offer", "lost", "offer", "contract", "won", "contract"):
        clock.advance(timedelta(hours=5))
        engine.move_stage("d1", stage)
    with engine.store.transaction() as tx:
        moves = tx.stage_moves("d1")
    assert [(m.seq, m.stage, m.position, m.final, m.won) for m in moves] == [
        (0, "new", 0, False, False),
        (1, "offer", 1, False, False),
        (2, "lost", 4, True, False),
        (3, "offer", 1, False, False),
        (4, "contract", 2, False, False),
        (5, "won", 3, True, True),
        (6, "contract", 2, False, False),
    ]
    assert [m.entered_at - START for m in moves] == [timedelta(hours=5 * n) for n in range(7)]


def test_the_catalogue_section_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "regulation.yaml"
    path.write_text(
        "version: 1\n"
        "catalogue:\n"
        "  - {id: kitchen}\n"
        "  - {id: kitchen, kind: service}\n"
        "  - {id: repair, kind: work}\n"
        "pipelines:\n"
        "  - id: p\n"
        "    stages: [{id: a}, {id: b, won: true}]\n",
        encoding="utf-8",
    )
    with pytest.raises(RegulationError) as raised:
        load_regulation(path)
    text = str(raised.value)
    assert "regulation.yaml:4:10: catalogue item id 'kitchen' is defined twice" in text
    assert "regulation.yaml:5:" in text and "product" in text
    assert "regulation.yaml:8:" in text and "a won stage must be final" in text


def test_the_example_catalogue_is_loaded() -> None:
    regulation = load_regulation(EXAMPLE)
    assert list(regulation.catalogue.items) == ["kitchen", "wardrobe", "measurement", "assembly"]
    assert regulation.catalogue.items["measurement"].kind == "service"
    won = [s.id for s in regulation.pipelines["sales"].stages if s.won]
    assert won == ["won"]


def test_the_migration_fills_the_report_columns_from_stored_rows(tmp_path: Path) -> None:
    """Tasks, interactions and deals written before 0007_campaigns are read by the reports."""
    import sqlalchemy as sa

    from crmrules import Interaction, Task, TaskStatus
    from crmrules.adapters import migrate
    from crmrules.adapters.sqlalchemy import _dump

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    migrate.upgrade(url, revision="0004")
    due = START + timedelta(days=1)
    tasks = [
        Task(id=f"t{i}", kind="call", title="t", rule="exhibition-call", created_at=START,
             due=due, status=TaskStatus.DONE, closed_at=due + timedelta(hours=i))
        for i in range(1_500)  # more than one chunk of the upgrade
    ]  # fmt: skip
    call = Interaction(id="i1", kind="meeting", client="c1", manager="petrova", occurred_at=START)
    deal = Deal(id="d1", client="c1", pipeline="sales", stage="offer", stage_entered_at=START)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        columns = "id, status, created_at, data"
        connection.execute(
            sa.text(f"INSERT INTO crmrules_tasks ({columns}) VALUES (:id, 'done', NULL, :data)"),
            [{"id": t.id, "data": json.dumps(_dump(t))} for t in tasks],
        )
        connection.execute(
            sa.text("INSERT INTO crmrules_interactions (id, client_id, occurred_at, data) "
                    "VALUES ('i1', 'c1', '2026-03-12 12:00:00.000000', :data)"),
            {"data": json.dumps(_dump(call))},
        )  # fmt: skip
        connection.execute(
            sa.text("INSERT INTO crmrules_deals (id, client_id, data) VALUES ('d1', 'c1', :d)"),
            {"d": json.dumps(_dump(deal))},
        )
    engine.dispose()
    migrate.upgrade(url)
    with SQLAlchemyStore(url) as store:
        with store.transaction() as tx:
            moves = tx.stage_moves("d1")
            row = tx.connection.execute(
                sa.select(
                    tx.tables.tasks.c.kind, tx.tables.tasks.c.rule, tx.tables.tasks.c.due_at
                ).where(tx.tables.tasks.c.id == "t1499")
            ).one()
            held = tx.connection.execute(
                sa.select(tx.tables.interactions.c.kind, tx.tables.interactions.c.manager_id)
            ).one()
        assert (row.kind, row.rule, row.due_at) == ("call", "exhibition-call", due)
        assert tuple(held) == ("meeting", "petrova")
        assert [(m.seq, m.stage, m.entered_at) for m in moves] == [(0, "offer", START)]


def test_campaigns_are_listed_by_id_and_replaced_whole(engine: Engine) -> None:
    later = EXHIBITION.model_copy(update={"id": "autumn", "budget": Decimal("10")})
    engine.create_campaign(EXHIBITION)
    engine.create_campaign(later)
    engine.create_campaign(EXHIBITION.model_copy(update={"budget": Decimal("99.50")}))
    with engine.store.transaction() as tx:
        listed = tx.list_campaigns()
        missing = tx.get_campaign("nope")
    assert [(c.id, c.budget) for c in listed] == [
        ("autumn", Decimal("10")),
        ("exhibition", Decimal("99.50")),
    ]
    assert missing is None
