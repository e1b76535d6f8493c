"""The reports' SQL against a plain-Python oracle (tests/report_oracle.py), SQLite and PostgreSQL.

Hypothesis draws worlds with empty periods, campaigns without requests,
deals reopened after a win, tasks done after their due moment, moments on
and around local midnights, microsecond fractions, and time zones whose day
boundary is another UTC day (Asia/Tokyo, America/New_York across DST).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.campaigns import Campaign, Request, RequestStatus, StageMove
from crmrules.model import Client, Interaction, Manager, Task, TaskStatus
from crmrules.reports import (
    ReportError,
    Span,
    compliance,
    demand,
    funnel,
    lead_conversion,
    manager_load,
)
from crmrules.reports.periods import epoch_seconds, seconds, transitions
from crmrules.rules.sql_host import NaiveUTC
from databases import Database, open_database
from report_oracle import Window, World
from report_oracle import compliance as oracle_compliance
from report_oracle import conversion as oracle_conversion
from report_oracle import demand as oracle_demand
from report_oracle import funnel as oracle_funnel
from report_oracle import manager_load as oracle_load

ZONES = ["UTC", "Europe/Moscow", "Asia/Tokyo", "America/New_York", "Europe/Berlin"]
START, END = date(2026, 3, 1), date(2026, 4, 12)
BASE = datetime(2026, 2, 20, tzinfo=UTC)
SPREAD = 60 * 86_400
#: (stage, position, final, won) of the pipeline the worlds use
STAGES = [("new", 0, False, False), ("offer", 1, False, False), ("won", 2, True, True),
          ("lost", 3, True, False)]  # fmt: skip
ITEMS = ["kitchen", "wardrobe", "repair"]
CLIENTS = [f"c{n}" for n in range(6)]


# -- drawing worlds


@st.composite
def moments(draw: st.DrawFn, zone: ZoneInfo) -> datetime:
    """A moment, often right on, just before or just after a local midnight."""
    if draw(st.booleans()):
        day = draw(st.integers(-3, 55))
        local = datetime.combine(START + timedelta(days=day), datetime.min.time(), tzinfo=zone)
        nudge = draw(st.sampled_from([0, -1, 1, 3_600, -3_600]))
        return local.astimezone(UTC) + timedelta(seconds=nudge)
    second = draw(st.integers(0, SPREAD))
    micro = draw(st.sampled_from([0, 0, 1, 999_999, 500_000]))
    return BASE + timedelta(seconds=second, microseconds=micro)


@st.composite
def worlds(draw: st.DrawFn, zone: ZoneInfo) -> World:
    w = World(clients=list(CLIENTS))
    w.managers = [Manager(id="m1", capacity=3), Manager(id="m2"), Manager(id="m4", capacity=0)]
    for n in range(draw(st.integers(0, 3))):
        start = START + timedelta(days=draw(st.integers(-20, 40)))
        w.campaigns.append(
            Campaign(
                id=f"camp{n}",
                channel=draw(st.sampled_from(["exhibition", "ads", "mail"])),
                budget=Decimal(draw(st.integers(0, 100_000))) / 100,
                start=start,
                end=start + timedelta(days=draw(st.integers(0, 30))),
            )
        )
    deal_count = draw(st.integers(0, 5))
    for d in range(deal_count):
        client = draw(st.sampled_from(CLIENTS))
        at = draw(moments(zone))
        for seq in range(draw(st.integers(1, 5))):
            stage, position, final, won = draw(st.sampled_from(STAGES))
            w.moves.append(
                StageMove(
                    deal=f"d{d}",
                    seq=seq,
                    client=client,
                    pipeline="works",
                    stage=stage,
                    position=position,
                    final=final,
                    won=won,
                    entered_at=at,
                )
            )
            at += timedelta(seconds=draw(st.integers(0, 10 * 86_400)), microseconds=7)
    deal_clients = {m.deal: m.client for m in w.moves}
    for n in range(draw(st.integers(0, 12))):
        campaign = draw(st.sampled_from([None, *[c.id for c in w.campaigns]]))
        status = draw(st.sampled_from(list(RequestStatus)))
        deal = draw(st.sampled_from(sorted(deal_clients))) if deal_clients else None
        if status is RequestStatus.CONVERTED and deal is None:
            status = RequestStatus.OPEN
        client = (
            deal_clients[deal]
            if status is RequestStatus.CONVERTED and deal
            else draw(st.sampled_from([None, *CLIENTS]))
        )
        w.requests.append(
            Request(
                id=f"r{n}",
                channel=draw(st.sampled_from(["phone", "site", "exhibition"])),
                campaign=campaign,
                client=client,
                items=tuple(draw(st.lists(st.sampled_from(ITEMS), max_size=3, unique=True))),
                created_at=draw(moments(zone)),
                status=status,
                deal=deal if status is RequestStatus.CONVERTED else None,
            )
        )
    for n in range(draw(st.integers(0, 15))):
        created = draw(moments(zone))
        status = draw(st.sampled_from(list(TaskStatus)))
        due = draw(st.one_of(st.none(), st.integers(0, 5 * 86_400)))
        w.tasks.append(
            Task(
                id=f"t{n}",
                kind=draw(st.sampled_from(["call", "meeting", "email"])),
                title="t",
                assignee=draw(st.sampled_from([None, "m1", "m2", "m3"])),
                client=draw(st.sampled_from([None, *CLIENTS])),
                rule=draw(st.sampled_from([None, "r-call", "r-meet"])),
                created_at=created,
                due=None if due is None else created + timedelta(seconds=due),
                status=status,
                closed_at=(
                    None
                    if status is TaskStatus.OPEN
                    else created + timedelta(seconds=draw(st.integers(0, 8 * 86_400)))
                ),
            )
        )
    for n in range(draw(st.integers(0, 12))):
        w.interactions.append(
            Interaction(
                id=f"i{n}",
                kind=draw(st.sampled_from(["call", "meeting", "email"])),
                client=draw(st.sampled_from(CLIENTS)),
                manager=draw(st.sampled_from([None, "m1", "m2", "m5"])),
                occurred_at=draw(moments(zone)),
            )
        )
    return w


def load(store: SQLAlchemyStore, world: World) -> None:
    """Put the world in the store, through the store's own methods, after emptying it."""
    with store.transaction() as tx:
        c = tx.connection
        for table in ("campaigns", "requests", "request_items", "stage_moves"):
            c.execute(sa.delete(getattr(tx._campaign_tables, table)))
        for table in ("clients", "client_values", "managers", "tasks", "interactions"):
            c.execute(sa.delete(getattr(tx.tables, table)))
        for client in world.clients:
            tx.put_client(Client(id=client))
        for manager in world.managers:
            tx.put_manager(manager)
        for campaign in world.campaigns:
            tx.put_campaign(campaign)
        for request in world.requests:
            tx.put_request(request)
        for move in world.moves:
            tx.add_stage_move(move)
        for task in world.tasks:
            tx.put_task(task)
        for interaction in world.interactions:
            tx.add_interaction(interaction)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SQLAlchemyStore]:
    path: Path = tmp_path_factory.mktemp(request.param)
    with open_database(request.param, path) as database:
        db: Database = database
        with SQLAlchemyStore(db.url, schema=db.schema) as opened:
            yield opened


SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[World, Window, Span, set[str] | None]:
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    by = draw(st.sampled_from(["day", "week", "month"]))
    start = START + timedelta(days=draw(st.integers(0, 10)))
    end = start + timedelta(days=draw(st.integers(0, 30)))
    only = draw(st.one_of(st.none(), st.sets(st.sampled_from(CLIENTS))))
    return (
        draw(worlds(zone)),
        Window(start, end, by, zone),
        Span(start, end, by, zone),  # type: ignore[arg-type]
        only,
    )


def _filter(only: set[str] | None) -> sa.ColumnElement[bool] | None:
    from crmrules.adapters.sqlalchemy import metadata

    return None if only is None else metadata.tables["crmrules_clients"].c.id.in_(sorted(only))


def _filter_for(store: SQLAlchemyStore, only: set[str] | None) -> sa.ColumnElement[bool] | None:
    if only is None:
        return None
    with store.transaction() as tx:
        return tx.tables.clients.c.id.in_(sorted(only))


@SETTINGS
@given(case=cases())
def test_every_report_equals_the_oracle(
    store: SQLAlchemyStore, case: tuple[World, Window, Span, set[str] | None]
) -> None:
    world, window, span, only = case
    load(store, world)
    clients = _filter_for(store, only)
    assert lead_conversion(store, span, clients=clients) == oracle_conversion(world, window, only)
    assert demand(store, span, catalogue=ITEMS[:2], clients=clients) == oracle_demand(
        world, window, ITEMS[:2], only
    )
    found = funnel(store, span, clients=clients)
    rows, stalls = oracle_funnel(world, window, only)
    assert found.rows == rows
    assert found.stalls == stalls
    load_found = manager_load(store, span, clients=clients)
    activity, loads = oracle_load(world, window, only)
    assert load_found.activity == activity
    assert load_found.load == loads
    assert compliance(store, span, clients=clients) == oracle_compliance(world, window, only)


def test_a_tokyo_midnight_is_the_previous_utc_day(store: SQLAlchemyStore) -> None:
    """A request at 00:30 in Tokyo on 1 April is 15:30 UTC on 31 March: April's, in Tokyo."""
    tokyo = ZoneInfo("Asia/Tokyo")
    at = datetime(2026, 4, 1, 0, 30, tzinfo=tokyo)
    world = World(clients=["c0"])
    world.requests = [Request(id="r", channel="site", client="c0", created_at=at)]
    load(store, world)
    rows = lead_conversion(store, Span(START, END, "month", tokyo))
    assert [(r.period, r.requests) for r in rows] == [(date(2026, 3, 1), 0), (date(2026, 4, 1), 1)]
    rows = lead_conversion(store, Span(START, END, "month", ZoneInfo("UTC")))
    assert [(r.period, r.requests) for r in rows] == [(date(2026, 3, 1), 1), (date(2026, 4, 1), 0)]


def test_transitions_of_a_dst_zone_are_found_to_the_second() -> None:
    span = Span(date(2026, 3, 1), date(2026, 11, 30), "month", ZoneInfo("Europe/Berlin"))
    steps = transitions(span)
    assert [offset for _, offset in steps] == [3600, 7200, 3600]
    spring = datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp()
    autumn = datetime(2026, 10, 25, 1, 0, tzinfo=UTC).timestamp()
    assert [at for at, _ in steps[1:]] == [spring, autumn]


def test_reports_refuse_a_store_without_sql() -> None:
    from crmrules.adapters.memory import MemoryStore

    with pytest.raises(ReportError, match="SQLite or PostgreSQL store, not on MemoryStore"):
        lead_conversion(MemoryStore(), Span(START, END))


def test_a_span_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="ends"):
        Span(END, START)


def test_epoch_seconds_drop_the_fraction_on_every_database(store: SQLAlchemyStore) -> None:
    """A moment just before a whole second stays in it (SQLite's strftime rounds to the ms)."""
    table = sa.Table("moments", sa.MetaData(), sa.Column("at", NaiveUTC()))
    moments = [
        datetime(2026, 3, 1, 0, 0, 0, 999_999, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 0, 1, 6, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 0, 59, 999_600, tzinfo=UTC),
    ]
    with store.transaction() as tx:
        connection = tx.connection  # type: ignore[attr-defined]
        table.create(connection)
        connection.execute(sa.insert(table), [{"at": m} for m in moments])
        found = connection.execute(sa.select(epoch_seconds(table.c.at))).scalars().all()
        table.drop(connection)
    assert sorted(found) == sorted(seconds(m) for m in moments)
