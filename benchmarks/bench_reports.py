"""Each report against the bare SQL aggregate behind it, on SQLite and PostgreSQL.

Run: python benchmarks/bench_reports.py [--clients 1000000] [--work 5000000] [--rounds 3]
     [--postgres URL] [--no-sqlite]

Bulk-loads a synthetic CRM (``--clients`` clients, half as many requests with
catalogue items, a deal per five clients with about three stage moves each,
and ``--work`` tasks and interactions, 60/40) into a fresh SQLite file
(executemany, 20,000 rows per statement) and, with ``--postgres``, a fresh
schema (COPY). Then, for each report, in interleaved rounds: the report's
API call (its queries, the Python that shapes the rows), and the floor: the
same figures as one hand-written SQL aggregate per query, bucketed by
month in Moscow time with a fixed offset. Prints medians, the spread, and
the ratio report / floor.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from crmrules.adapters import campaign_tables, migrate
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, _dump, make_engine
from crmrules.adapters.tables import tables_in
from crmrules.campaigns import Campaign
from crmrules.model import Manager
from crmrules.reports import Span, compliance, demand, funnel, lead_conversion, manager_load

MSK = ZoneInfo("Europe/Moscow")
SEASON = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 180
SPAN = Span(date(2026, 1, 1), date(2026, 6, 29), "month", MSK)
CHUNK = 20_000
ITEMS = ["kitchen", "wardrobe", "measurement", "assembly", "repair"]
STAGES = [
    ("new", 0, False, False),
    ("offer", 1, False, False),
    ("contract", 2, False, False),
    ("won", 3, True, True),
    ("lost", 4, True, False),
]


def moment(rng: random.Random) -> datetime:
    return SEASON + timedelta(seconds=rng.randrange(DAYS * 86_400))


# -- the data, as rows of the store's tables


def clients(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"id": f"c{i:07}", "data": {"id": f"c{i:07}"}}


def requests(n: int, campaigns: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(2)
    for i in range(n // 2):
        converted = rng.random() < 0.3
        yield {
            "id": f"r{i:07}",
            "client_id": f"c{rng.randrange(n):07}" if converted or rng.random() < 0.5 else None,
            "campaign_id": f"k{rng.randrange(campaigns)}" if rng.random() < 0.7 else None,
            "channel": rng.choice(["phone", "site"]),
            "status": "converted" if converted else rng.choice(["open", "refused"]),
            "deal_id": f"d{rng.randrange(n // 5):07}" if converted else None,
            "created_at": moment(rng),
            "data": {},
        }


def request_items(n: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(3)
    for i in range(n // 2):
        for item in rng.sample(ITEMS, rng.randint(0, 2)):
            yield {"request_id": f"r{i:07}", "item": item}


def moves(n: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(4)
    for d in range(n // 5):
        at = moment(rng)
        for seq in range(rng.randint(1, 5)):
            stage, position, final, won = STAGES[min(seq, 4)] if seq < 3 else rng.choice(STAGES)
            yield {
                "deal_id": f"d{d:07}",
                "seq": seq,
                "client_id": f"c{d * 5:07}",
                "pipeline": "sales",
                "stage": stage,
                "position": position,
                "final": final,
                "won": won,
                "entered_at": at,
            }
            at += timedelta(seconds=rng.randrange(10 * 86_400))


def tasks(n: int, clients_n: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(5)
    for i in range(n):
        created = moment(rng)
        status = rng.choice(["open", "done", "done", "done", "cancelled"])
        closed = (
            None if status == "open" else created + timedelta(seconds=rng.randrange(5 * 86_400))
        )
        yield {
            "id": f"t{i:08}",
            "idempotency_key": None,
            "client_id": f"c{rng.randrange(clients_n):07}",
            "deal_id": None,
            "assignee": f"m{rng.randrange(50)}",
            "status": status,
            "created_at": created,
            "kind": rng.choice(["call", "meeting", "email"]),
            "rule": rng.choice([None, "call-back", "offer-followup", "thanks", "measurement"]),
            "due_at": created + timedelta(seconds=rng.randrange(3 * 86_400)),
            "closed_at": closed,
            "data": {},
        }


def interactions(n: int, clients_n: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(6)
    for i in range(n):
        yield {
            "id": f"i{i:08}",
            "client_id": f"c{rng.randrange(clients_n):07}",
            "occurred_at": moment(rng),
            "kind": rng.choice(["call", "meeting", "email"]),
            "manager_id": f"m{rng.randrange(50)}",
            "data": {},
        }


def chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def load(url: str, schema: str | None, n: int, work: int) -> int:
    """Fill the tables; returns the rows written. PostgreSQL by COPY, SQLite by executemany."""
    t, c = tables_in(schema), campaign_tables.tables(schema)
    parts: list[tuple[sa.Table, Iterator[dict[str, Any]]]] = [
        (t.clients, clients(n)),
        (c.requests, requests(n, 12)),
        (c.request_items, request_items(n)),
        (c.stage_moves, moves(n)),
        (t.tasks, tasks(work * 6 // 10, n)),
        (t.interactions, interactions(work * 4 // 10, n)),
    ]
    engine = make_engine(url)
    written = 0
    with engine.begin() as connection:
        for k in range(12):
            start = date(2026, 1, 1) + timedelta(days=15 * k)
            campaign = Campaign(
                id=f"k{k}",
                channel=["ads", "exhibition", "mail"][k % 3],
                budget=Decimal(10_000 * (k + 1)),
                start=start,
                end=start + timedelta(days=20),
            )
            connection.execute(
                sa.insert(c.campaigns).values(
                    id=campaign.id,
                    channel=campaign.channel,
                    start_day=campaign.start,
                    end_day=campaign.end,
                    data=_dump(campaign),
                )
            )
        for m in range(50):
            connection.execute(
                sa.insert(t.managers).values(
                    id=f"m{m}", data=_dump(Manager(id=f"m{m}", capacity=40))
                )
            )
        for table, rows in parts:
            for batch in chunks(rows):
                if connection.dialect.name == "postgresql":
                    _copy(connection, table, batch)
                else:
                    _executemany(connection, table, batch)
                written += len(batch)
    engine.dispose()
    return written


def _sqlite_value(value: Any) -> Any:
    """A value as the store writes it to SQLite: UTC moments as text, JSON as text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _executemany(connection: sa.Connection, table: sa.Table, batch: list[dict[str, Any]]) -> None:
    """One prepared INSERT for the batch through the driver, without per-row type processing."""
    names = list(batch[0])
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    rows = [tuple(_sqlite_value(v) for v in row.values()) for row in batch]
    connection.exec_driver_sql(sql, rows)


def _copy(connection: sa.Connection, table: sa.Table, batch: list[dict[str, Any]]) -> None:
    names = list(batch[0])
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    target = f'"{table.schema}"."{table.name}"' if table.schema else table.name
    with cursor.copy(f"COPY {target} ({', '.join(names)}) FROM STDIN") as copy:
        for row in batch:
            copy.write_row([json.dumps(v) if isinstance(v, dict) else v for v in row.values()])


# -- the floor: hand-written SQL


def floor_queries(dialect: str, schema: str | None) -> dict[str, list[str]]:
    """Per report, the hand-written aggregates that give its figures."""
    p = f'"{schema}".' if schema else ""
    if dialect == "sqlite":

        def month(x: str) -> str:
            return f"strftime('%Y-%m', {x}, '+3 hours')"

        def epoch(x: str) -> str:
            return f"CAST(strftime('%s', {x}) AS INTEGER)"
    else:

        def month(x: str) -> str:
            return f"to_char({x} AT TIME ZONE 'Europe/Moscow', 'YYYY-MM')"

        def epoch(x: str) -> str:
            return f"CAST(floor(EXTRACT(EPOCH FROM {x})) AS BIGINT)"

    def within(x: str) -> str:
        return f"{x} >= :a AND {x} < :b"

    won = (
        f"EXISTS (SELECT 1 FROM {p}crmrules_stage_moves m WHERE m.deal_id = r.deal_id "
        f"AND m.won AND NOT EXISTS (SELECT 1 FROM {p}crmrules_stage_moves l "
        "WHERE l.deal_id = m.deal_id AND l.seq > m.seq))"
    )
    stays = (
        f"SELECT * FROM (SELECT m.*, lead(entered_at) OVER (PARTITION BY deal_id "
        f"ORDER BY seq) AS left_at FROM {p}crmrules_stage_moves m) s "
        f"WHERE {within('entered_at')}"
    )

    def percentiles(source: str, value: str, group: str) -> str:
        return (
            f"SELECT {group}, max(CASE WHEN rk = (50 * n + 99) / 100 THEN v END), "
            f"max(CASE WHEN rk = (90 * n + 99) / 100 THEN v END) FROM (SELECT {group}, "
            f"{value} AS v, row_number() OVER (PARTITION BY {group} ORDER BY {value}) rk, "
            f"count(*) OVER (PARTITION BY {group}) n FROM ({source}) x) y GROUP BY {group}"
        )

    late = "status = 'done' AND closed_at < :b AND closed_at > due_at"
    return {
        "conversion": [
            f"SELECT period, campaign_id, channel, count(*), count(DISTINCT person), "
            "sum(CASE WHEN status = 'converted' THEN 1 ELSE 0 END), "
            "count(DISTINCT CASE WHEN won THEN deal_id END), "
            "count(DISTINCT CASE WHEN won THEN client_id END) "
            f"FROM (SELECT {month('r.created_at')} AS period, r.campaign_id, "
            "coalesce(c.channel, r.channel) AS channel, r.status, r.deal_id, r.client_id, "
            "coalesce(r.client_id, 'request:' || r.id) AS person, "
            f"r.deal_id IS NOT NULL AND {won} AS won FROM {p}crmrules_requests r "
            f"LEFT JOIN {p}crmrules_campaigns c ON c.id = r.campaign_id "
            f"WHERE {within('r.created_at')}) x GROUP BY 1, 2, 3"
        ],
        "demand": [
            f"SELECT {month('r.created_at')}, i.item, count(*), count(DISTINCT "
            "coalesce(r.client_id, 'request:' || r.id)), "
            "sum(CASE WHEN r.status = 'converted' THEN 1 ELSE 0 END) "
            f"FROM {p}crmrules_request_items i JOIN {p}crmrules_requests r "
            f"ON r.id = i.request_id WHERE {within('r.created_at')} GROUP BY 1, 2",
            f"SELECT {month('r.created_at')}, count(*) FROM {p}crmrules_requests r "
            f"WHERE {within('r.created_at')} AND EXISTS (SELECT 1 FROM "
            f"{p}crmrules_request_items i WHERE i.request_id = r.id) GROUP BY 1",
        ],
        "funnel": [
            "SELECT pipeline, stage, min(position), count(DISTINCT deal_id), count(*), "
            f"count(left_at) FROM ({stays}) st GROUP BY pipeline, stage",
            percentiles(
                f"SELECT * FROM ({stays}) st WHERE left_at IS NOT NULL",
                f"{epoch('left_at')} - {epoch('entered_at')}",
                "pipeline, stage",
            ),
        ],
        "load": [
            f"SELECT {month('coalesce(due_at, created_at)')}, assignee, kind, count(*) "
            f"FROM {p}crmrules_tasks WHERE kind IN ('call', 'meeting') AND status <> "
            f"'cancelled' AND {within('coalesce(due_at, created_at)')} GROUP BY 1, 2, 3",
            f"SELECT {month('occurred_at')}, manager_id, kind, count(*) "
            f"FROM {p}crmrules_interactions WHERE kind IN ('call', 'meeting') "
            f"AND {within('occurred_at')} GROUP BY 1, 2, 3",
            "SELECT assignee, count(*), sum(CASE WHEN due_at < :b THEN 1 ELSE 0 END) "
            f"FROM {p}crmrules_tasks WHERE created_at < :b AND (status = 'open' "
            "OR closed_at >= :b) GROUP BY assignee",
        ],
        "compliance": [
            f"SELECT rule, count(*), sum(CASE WHEN {late} THEN 1 ELSE 0 END), "
            "sum(CASE WHEN status = 'done' AND closed_at < :b AND closed_at <= due_at "
            "THEN 1 ELSE 0 END) "
            f"FROM {p}crmrules_tasks WHERE rule IS NOT NULL AND {within('created_at')} "
            "GROUP BY rule",
            percentiles(
                f"SELECT * FROM {p}crmrules_tasks WHERE rule IS NOT NULL AND "
                f"{within('created_at')} AND {late}",
                f"{epoch('closed_at')} - {epoch('due_at')}",
                "rule",
            ),
        ],
    }


def median_spread(times: list[float]) -> str:
    return f"{statistics.median(times):7.2f} s ({min(times):.2f}-{max(times):.2f})"


def run(name: str, url: str, schema: str | None, args: argparse.Namespace) -> None:
    migrate.upgrade(url, schema=schema)
    started = time.perf_counter()
    rows = load(url, schema, args.clients, args.work)
    print(
        f"{name}: {rows:,} rows loaded in {time.perf_counter() - started:.0f} s "
        f"({args.clients:,} clients, {args.work:,} tasks and interactions)"
    )
    store = SQLAlchemyStore(url, schema=schema)
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    else:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f'ANALYZE "{schema}".crmrules_tasks' if schema else "ANALYZE"
            )
    reports: dict[str, Callable[[], object]] = {
        "conversion": lambda: lead_conversion(store, SPAN),
        "demand": lambda: demand(store, SPAN, catalogue=ITEMS),
        "funnel": lambda: funnel(store, SPAN),
        "load": lambda: manager_load(store, SPAN),
        "compliance": lambda: compliance(store, SPAN),
    }
    floors = floor_queries(engine.dialect.name, schema)
    moment_type = tables_in(None).timers.c.due_at.type
    binds = [
        sa.bindparam("a", SPAN.begins, type_=moment_type),
        sa.bindparam("b", SPAN.ends, type_=moment_type),
    ]

    def floor(report: str) -> None:
        with engine.connect() as connection:
            for sql in floors[report]:
                statement = sa.text(sql).bindparams(*(b for b in binds if f":{b.key}" in sql))
                connection.execute(statement).all()

    for report, call in reports.items():
        mine, bare = [], []
        for _ in range(args.rounds):  # interleaved: the same machine load for both
            start = time.perf_counter()
            floor(report)
            bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            call()
            mine.append(time.perf_counter() - start)
        ratio = statistics.median(mine) / statistics.median(bare)
        print(
            f"  {report:<11} report {median_spread(mine)}  floor {median_spread(bare)}  "
            f"{ratio:5.2f}x floor"
        )
    store.close()
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--work", type=int, default=5_000_000, help="tasks + interactions")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("CRMRULES_TEST_POSTGRES_URL"))
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if not args.no_sqlite:
            run("sqlite", f"sqlite:///{Path(folder) / 'bench.sqlite3'}", None, args)
        if args.postgres:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            try:
                run("postgresql", args.postgres, schema, args)
            finally:
                engine = make_engine(args.postgres)
                with engine.begin() as connection:
                    connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
