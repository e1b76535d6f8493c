"""The season of examples/campaigns: every report equals the oracle over the records it made.

The records are read back through the store's Python API (by id, no SQL of
the reports'), then counted by tests/report_oracle.py; the season covers
campaigns without requests, requests from people not yet clients, lost and
reopened deals, tasks done late or never, and a month boundary in Moscow
time (three hours before UTC's).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from examples.campaigns.season import ITEMS, Season, generate

from crmrules.adapters.sqlalchemy import SQLAlchemyStore
from crmrules.reports import Span, compliance, demand, funnel, lead_conversion, manager_load
from databases import open_database
from report_oracle import Window, World
from report_oracle import compliance as oracle_compliance
from report_oracle import conversion as oracle_conversion
from report_oracle import demand as oracle_demand
from report_oracle import funnel as oracle_funnel
from report_oracle import manager_load as oracle_load

MSK = ZoneInfo("Europe/Moscow")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def season(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Season]:
    path: Path = tmp_path_factory.mktemp(f"season-{request.param}")
    with open_database(request.param, path) as db, SQLAlchemyStore(db.url, schema=db.schema) as s:
        yield generate(s, seed=11)


def read_back(season: Season) -> World:
    world = World()
    with season.engine.store.transaction() as tx:
        world.clients = tx.client_ids()
        world.managers = tx.list_managers()
        world.campaigns = tx.list_campaigns()
        world.requests = [r for r in map(tx.get_request, season.requests) if r is not None]
        world.tasks = tx.find_tasks()
        for client in world.clients:
            world.interactions += tx.interactions_of(client)
            for deal in tx.deals_of(client):
                world.moves += tx.stage_moves(deal.id)
    return world


@pytest.mark.parametrize("by", ["week", "month"])
def test_the_season_reports_equal_the_oracle(season: Season, by: str) -> None:
    world = read_back(season)
    assert len(world.requests) > 50 and world.moves and world.tasks and world.interactions
    assert any(m.seq > 0 and m.stage == "offer" and m.position == 1 for m in world.moves)
    span = Span(date(2026, 3, 1), date(2026, 5, 31), by, MSK)  # type: ignore[arg-type]
    window = Window(span.start, span.end, by, MSK)
    store = season.engine.store
    conversion = lead_conversion(store, span)
    assert conversion == oracle_conversion(world, window)
    assert any(r.campaign == "may-fair" and r.budget and not r.requests for r in conversion)
    assert demand(store, span, catalogue=ITEMS) == oracle_demand(world, window, list(ITEMS))
    found = funnel(store, span)
    assert (found.rows, found.stalls) == oracle_funnel(world, window)
    load = manager_load(store, span)
    assert (load.activity, load.load) == oracle_load(world, window)
    rules = compliance(store, span)
    assert rules == oracle_compliance(world, window)
    assert all(r.late and r.median_delay_seconds for r in rules)


def test_reopened_deals_are_not_won_until_won_again(season: Season) -> None:
    world = read_back(season)
    by_deal: dict[str, list[str]] = {}
    for move in sorted(world.moves, key=lambda m: (m.deal, m.seq)):
        by_deal.setdefault(move.deal, []).append(move.stage)
    reopened = [d for d, stages in by_deal.items() if "won" in stages and stages[-1] != "won"]
    span = Span(date(2026, 3, 1), date(2026, 6, 30), "month", MSK)
    won = sum(r.deals_won for r in lead_conversion(season.engine.store, span))
    assert won == sum(1 for stages in by_deal.values() if stages[-1] == "won")
    assert reopened or any(stages.count("won") > 1 for stages in by_deal.values())
