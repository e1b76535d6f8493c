"""The client base as a set: a million clients, each operation against a floor.

Run: python benchmarks/bench_base.py [--clients 1000000] [--postgres URL]
     [--sections select,schedule,realign,start]

Bulk-loads the clients into a fresh SQLite file and, with ``--postgres``, a
fresh PostgreSQL schema: the rows the store writes (the JSON record, the
typed ``crmrules_client_values`` rows, the territory and segment
memberships), made by the store's own functions for 10,000 clients and
copied under new ids for the rest, sent with the driver's bulk path
(``executemany`` on SQLite, ``COPY`` on PostgreSQL), the value indexes
dropped during the load and built after it. Each client has eleven
built-in and custom fields, one of ten territories and maybe a segment.
The load is recorded as synced with the regulation (which plans nothing
per client), as an import straight into the tables would.

Then, measured in the same run, each against its floor:

- a segment's members (1.5% of the clients) by ``engine.select`` vs the
  same condition hand-written as SQL (floor) and vs loading every client and
  filtering in Python (rounds interleaved, medians, spread);
- a daily schedule whose condition takes 1.5% of the clients, fired through
  ``engine.run_due`` at its due time, vs the bare SQL that selects those
  clients plus one bulk insert of their tasks (rolled back);
- realignment after the ten territories are redrawn (5% of the clients
  move): dry run, then applied, each in a child process that reports its
  peak RSS (``ru_maxrss``);
- engine start: ``Engine(...)`` and ``sync_timers()`` with every client in
  the store (in a child process, with its peak RSS); up to 100,000 clients
  also ``sync_timers(full=True)``, the walk a changed regulation makes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from crmrules import sync
from crmrules.adapters import client_values, migrate
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, _dump, make_engine
from crmrules.adapters.tables import tables_in
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.model import Client, MembershipSource, Task, TerritoryMembership
from crmrules.rules.conditions import Facts
from crmrules.rules.regulation import Regulation, load_regulation

NOW = datetime(2026, 6, 1, 5, 0, tzinfo=UTC)  # 08:00 in Moscow: the schedule is due at 09:00
LOADED = NOW - timedelta(days=1)
DUE = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
REGIONS = [
    "Москва",
    "Санкт-Петербург",
    "Казань",
    "Новосибирск",
    "Екатеринбург",
    "Самара",
    "Омск",
    "Пермь",
    "Уфа",
    "Воронеж",
]
SEGMENT_WHEN = [  # 0.3 x 0.5 x 0.1 = 1.5%
    {"field": "client.segment", "eq": "A"},
    {"field": "client.employees", "gte": 201},
    {"field": "client.region", "eq": REGIONS[0]},
]
SCHEDULE_IF = [  # 0.4 x 0.1 x 0.375 = 1.5%
    {"field": "client.segment", "eq": "B"},
    {"territory": "t1"},
    {"field": "client.subscribed", "eq": True},
]


def regulation_text(redrawn: bool) -> str:
    """The regulation; ``redrawn``: each territory loses its clients with over 380 employees."""
    territories = []
    for index, region in enumerate(REGIONS):
        when: dict[str, Any] = {"field": "client.region", "eq": region}
        if redrawn:
            when = {"all": [when, {"field": "client.employees", "lte": 380}]}
        territories.append({"id": f"t{index}", "when": when})
    regulation = {
        "version": 1,
        "calendar": {"timezone": "Europe/Moscow"},
        "fields": {
            "client.segment": {"type": "enum", "values": ["A", "B", "C"]},
            "client.employees": {"type": "integer"},
            "client.revenue": {"type": "decimal"},
            "client.subscribed": {"type": "boolean"},
            "client.contract_end": {"type": "date"},
        },
        "territories": territories,
        "segments": [{"id": "key-accounts", "when": {"all": SEGMENT_WHEN}}],
        "rules": [
            {
                "id": "daily-call",
                "on": {"every": "1 day", "at": "09:00"},
                "if": {"all": SCHEDULE_IF},
                "then": [{"create_task": {"kind": "call", "title": "Позвонить {{ client.name }}"}}],
            }
        ],
    }
    return json.dumps(regulation, ensure_ascii=False)


def make_client(i: int, rng: random.Random) -> tuple[Client, list[TerritoryMembership]]:
    """Client ``i`` as the store would keep it under the first regulation."""
    region = rng.randrange(10)
    segment = rng.choice("AAABBBBCCC")
    employees = rng.randint(1, 400)
    client_id = f"c{i:07}"
    territory = f"t{region}"
    in_segment = segment == "A" and employees >= 201 and region == 0
    memberships = [
        TerritoryMembership(client=client_id, territory=territory, source="rule", since=LOADED)
    ]
    if in_segment:
        memberships.append(
            TerritoryMembership(
                client=client_id,
                territory="segment:key-accounts",
                source=MembershipSource.RULE,
                since=LOADED,
            )
        )
    client = Client(
        id=client_id,
        name=f"ООО Клиент {i}",
        region=REGIONS[region],
        email=f"client{i}@example.com",
        tags=frozenset(rng.sample(["vip", "new", "b2b", "retail"], 2)),
        territories=frozenset({territory}),
        segments=frozenset({"key-accounts"}) if in_segment else frozenset(),
        created_at=NOW - timedelta(days=rng.randint(0, 900), minutes=rng.randint(0, 1439)),
        last_contact_at=NOW - timedelta(days=rng.randint(0, 40)),
        fields={
            "segment": segment,
            "employees": employees,
            "revenue": Decimal(rng.randint(0, 10**9)) / 100,
            "subscribed": rng.random() < 0.375,
            "contract_end": date(2026, 1, 1) + timedelta(days=rng.randint(0, 730)),
        },
    )
    return client, memberships


# -- loading


class Loader:
    """Rows in bulk through the driver: ``executemany`` on SQLite, ``COPY`` on PostgreSQL."""

    def __init__(self, connection: sa.Connection, schema: str | None) -> None:
        self.connection = connection
        self.dialect = connection.dialect
        self.schema = schema
        self.raw = connection.connection.driver_connection
        self.postgres = self.dialect.name == "postgresql"

    def tuples(self, table: sa.Table, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """The rows as the driver takes them: each value through its column type."""
        names = list(rows[0])
        process = [
            json.dumps  # JSON as text: COPY takes it so, and the copies edit it
            if isinstance(table.c[n].type, sa.JSON)
            else table.c[n].type._cached_bind_processor(self.dialect)
            for n in names
        ]
        return [
            tuple(p(row[n]) if p else row[n] for n, p in zip(names, process, strict=True))
            for row in rows
        ]

    def send(self, table: sa.Table, names: list[str], tuples: list[tuple[Any, ...]]) -> None:
        columns = ", ".join(f'"{n}"' for n in names)
        name = f'"{self.schema}"."{table.name}"' if self.schema else f'"{table.name}"'
        assert self.raw is not None
        cursor = self.raw.cursor()
        if self.postgres:
            with cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
                for row in tuples:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in names)
            cursor.executemany(f"INSERT INTO {name} ({columns}) VALUES ({marks})", tuples)
        cursor.close()

    def put(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        self.send(table, list(rows[0]), self.tuples(table, rows))


#: Distinct clients made; the others are copies of them under their own ids.
TEMPLATES = 10_000


def load(url: str, schema: str | None, n: int) -> float:
    """Insert ``n`` clients; the seconds it took.

    ``TEMPLATES`` clients are made as the store keeps them (its own functions
    write their JSON, typed values and memberships); client ``i`` is a copy of
    template ``i % TEMPLATES`` under the id ``c{i:07}`` (in the JSON, the
    values and the memberships alike), so a million rows cost no million
    pydantic validations.
    """
    t = tables_in(schema)
    engine = make_engine(url)
    started = time.perf_counter()
    rng = random.Random(11)
    dialect = engine.dialect.name
    indexes = list(t.client_values.indexes)
    with engine.begin() as connection:
        for index in indexes:
            index.drop(connection)
        loader = Loader(connection, schema)
        prepared = []
        for c, ms in (make_client(i, rng) for i in range(min(n, TEMPLATES))):
            data = loader.tuples(t.clients, [{"id": c.id, "data": _dump(c)}])[0][1]
            values = [
                {name: row.get(name) for name in client_values.COLUMNS}
                for row in client_values.rows(c.id, c.record(), dialect)
            ]
            member = [{"client_id": c.id, "data": [_dump(m) for m in ms]}]
            prepared.append(
                (
                    c.id,
                    data,
                    loader.tuples(t.client_values, values),
                    loader.tuples(t.memberships, member)[0][1],
                )
            )
        for first in range(0, n, 20_000):
            clients, values, members = [], [], []
            for i in range(first, min(n, first + 20_000)):
                template, data, rows, member = prepared[i % TEMPLATES]
                client_id = f"c{i:07}"
                quoted, new = f'"{template}"', f'"{client_id}"'
                clients.append((client_id, data.replace(quoted, new)))
                members.append((client_id, member.replace(quoted, new)))
                for row in rows:
                    if row[1] == "id":
                        values.append((client_id, "id", row[2], *([client_id] * 4), *row[7:]))
                    else:
                        values.append((client_id, *row[1:]))
            loader.send(t.clients, ["id", "data"], clients)
            loader.send(t.client_values, list(client_values.COLUMNS), values)
            loader.send(t.memberships, ["client_id", "data"], members)
        for index in indexes:
            index.create(connection)
        for table in (t.clients, t.client_values, t.memberships):  # these alone: others run too
            name = f'"{schema}".{table.name}' if schema else table.name
            connection.exec_driver_sql(f"ANALYZE {name}")
    engine.dispose()
    return time.perf_counter() - started


# -- floors


def _prefix(schema: str | None) -> str:
    return f'"{schema}".' if schema else ""


def _exists(prefix: str, key: str, test: str, *, element: bool = False) -> str:
    seq = "v.seq > 0" if element else "v.seq = 0"
    return (
        f"EXISTS (SELECT 1 FROM {prefix}crmrules_client_values v WHERE v.client_id = c.id "
        f"AND v.key = '{key}' AND {seq} AND {test})"
    )


def segment_sql(schema: str | None) -> str:
    """The floor of the segment: ``client.segments`` contains key-accounts, by hand."""
    prefix = _prefix(schema)
    test = "v.text_key = 'key-accounts' AND v.text = 'key-accounts'"
    order = ' COLLATE "C"' if schema is not None else ""
    return (
        f"SELECT c.id FROM {prefix}crmrules_clients c WHERE "
        f"{_exists(prefix, 'segments', test, element=True)} ORDER BY c.id{order}"
    )


def schedule_sql(schema: str | None) -> str:
    prefix = _prefix(schema)
    where = " AND ".join(
        [
            _exists(prefix, "segment", "v.text_key = 'B' AND v.text = 'B'"),
            _exists(prefix, "territories", "v.text_key = 't1' AND v.text = 't1'", element=True),
            _exists(prefix, "subscribed", "v.flag"),
        ]
    )
    return f"SELECT c.id FROM {prefix}crmrules_clients c WHERE {where}"


def ids_by_sql(url: str, sql: str) -> list[str]:
    engine = make_engine(url)
    with engine.connect() as connection:
        ids = list(connection.exec_driver_sql(sql).scalars())
    engine.dispose()
    return ids


def schedule_floor(url: str, schema: str | None) -> int:
    """Select the schedule's clients and insert a task for each, in one transaction rolled back."""
    t = tables_in(schema)
    engine = make_engine(url)
    with engine.connect() as connection, connection.begin() as transaction:
        ids = list(connection.exec_driver_sql(schedule_sql(schema)).scalars())
        tasks = [
            Task(
                id=f"floor-{i}",
                kind="call",
                title=f"Позвонить {i}",
                client=i,
                rule="daily-call",
                idempotency_key=f"floor:{i}",
                created_at=DUE,
            )
            for i in ids
        ]
        rows = [
            {
                "id": task.id,
                "idempotency_key": task.idempotency_key,
                "client_id": task.client,
                "deal_id": None,
                "assignee": None,
                "status": task.status.value,
                "created_at": task.created_at,
                "data": _dump(task),
            }
            for task in tasks
        ]
        Loader(connection, schema).put(t.tasks, rows)
        transaction.rollback()
    engine.dispose()
    return len(ids)


# -- measuring


def timed(what: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = what()
    return time.perf_counter() - start, result


def rounds(named: dict[str, Callable[[], Any]], count: int) -> dict[str, list[float]]:
    """Each function ``count`` times, interleaved; the seconds of each round."""
    times: dict[str, list[float]] = {name: [] for name in named}
    for _ in range(count):
        for name, what in named.items():
            times[name].append(timed(what)[0])
    return times


def line(name: str, seconds: list[float], floor: float | None = None) -> str:
    median = statistics.median(seconds)
    spread = f"{min(seconds):.2f}-{max(seconds):.2f}" if len(seconds) > 1 else "one round"
    ratio = f"{median / floor:7.2f}x floor" if floor else "   1.00x"
    return f"  {name:34} {median:8.2f} s  ({spread})  {ratio}"


def child(section: str, url: str, schema: str | None, folder: Path) -> dict[str, Any]:
    """Run ``section`` in a fresh interpreter; its time and peak RSS."""
    command = [sys.executable, __file__, "--child", section, "--url", url, "--folder", str(folder)]
    if schema is not None:
        command += ["--schema", schema]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def open_engine(url: str, schema: str | None, folder: Path, *, redrawn: bool) -> Engine:
    path = folder / ("redrawn.json" if redrawn else "regulation.json")
    regulation: Regulation = load_regulation(path)
    store = SQLAlchemyStore(url, schema=schema)
    return Engine(regulation, store, SimulatedClock(NOW), entry_points=False)


def peak_rss_mb() -> float:
    """This process's peak RSS since it started its interpreter.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` survives ``exec``, so it would
    count the parent's pages at the fork; elsewhere ``ru_maxrss``.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for entry in status.read_text().splitlines():
            if entry.startswith("VmHWM:"):
                return int(entry.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(section: str, url: str, schema: str | None, folder: Path) -> None:
    started = time.perf_counter()
    result: dict[str, Any] = {}
    if section == "start":
        engine = Engine(
            load_regulation(folder / "regulation.json"),
            SQLAlchemyStore(url, schema=schema),
            SimulatedClock(NOW),
            entry_points=False,
        )
        engine.sync_timers()
    else:
        engine = open_engine(url, schema, folder, redrawn=True)
        report = engine.realign(dry_run=section == "realign-dry")
        result["changed"] = report.changed
    result["seconds"] = time.perf_counter() - started
    result["rss_mb"] = peak_rss_mb()
    engine.store.close()  # type: ignore[attr-defined]
    print(json.dumps(result))


# -- the sections


def section_select(url: str, schema: str | None, folder: Path, n: int) -> None:
    engine = open_engine(url, schema, folder, redrawn=False)
    condition = engine.regulation.segments["key-accounts"].condition

    def by_loop() -> int:
        with engine.store.transaction() as tx:
            return sum(
                1 for c in tx.iter_clients() if condition(Facts({"client": c.record()}, NOW))
            )

    expected = ids_by_sql(url, segment_sql(schema))
    got = list(engine.select(segment="key-accounts"))
    assert got == expected, (len(got), len(expected))
    times = rounds(
        {
            "floor": lambda: ids_by_sql(url, segment_sql(schema)),
            "select": lambda: list(engine.select(segment="key-accounts")),
        },
        5,
    )
    looped, count = timed(by_loop)
    assert count == len(expected), (count, len(expected))
    engine.store.close()  # type: ignore[attr-defined]
    floor = statistics.median(times["floor"])
    select = statistics.median(times["select"])
    print(f"  segment key-accounts: {len(expected)} of {n} clients")
    print(line("hand-written SQL (floor)", times["floor"]))
    print(line("engine.select(segment=...)", times["select"], floor))
    print(line("load every client and filter", [looped], floor))
    print(f"  load-and-filter / engine.select: {looped / select:.1f}x")


def section_schedule(url: str, schema: str | None, folder: Path) -> None:
    floor, count = timed(lambda: schedule_floor(url, schema))
    engine = open_engine(url, schema, folder, redrawn=False)
    engine.sync_timers(NOW)  # plans the schedule's occurrence
    fired, report = timed(lambda: engine.run_due(DUE))
    with engine.store.transaction() as tx:
        tasks = len(tx.find_tasks())
    engine.store.close()  # type: ignore[attr-defined]
    assert tasks == count, (tasks, count)
    print(f"  daily schedule: {count} tasks ({report})")
    print(line("select + bulk insert of tasks (floor)", [floor]))
    print(line("engine.run_due at the due time", [fired], floor))


def section_realign(url: str, schema: str | None, folder: Path) -> None:
    for section in ("realign-dry", "realign"):
        result = child(section, url, schema, folder)
        print(
            f"  {section:16} {result['seconds']:8.1f} s, {result['changed']} clients changed, "
            f"peak RSS {result['rss_mb']:.0f} MB"
        )


def mark_synced(url: str, schema: str | None, folder: Path) -> None:
    """Record the load as synced with the first regulation, as a sync after it would.

    That regulation plans nothing per client (no time triggers, contact
    plans or deadlines), so the walk of a first sync would add no timer:
    an import that loads the base straight into the tables does the same.
    """
    regulation = load_regulation(folder / "regulation.json")
    with SQLAlchemyStore(url, schema=schema) as store, store.transaction() as tx:
        sync._mark(tx, sync.fingerprint(regulation))


def section_start(url: str, schema: str | None, folder: Path, n: int) -> None:
    if n <= 100_000:  # the walk of a changed regulation: minutes at a million
        engine = open_engine(url, schema, folder, redrawn=False)
        walked, _ = timed(lambda: engine.sync_timers(NOW, full=True))
        engine.store.close()  # type: ignore[attr-defined]
        print(f"  sync_timers(full=True), which walks every client: {walked:.1f} s")
    result = child("start", url, schema, folder)
    print(
        f"  engine start (Engine + sync_timers) {result['seconds']:6.2f} s, "
        f"peak RSS {result['rss_mb']:.0f} MB"
    )


SECTIONS: dict[str, Callable[..., None]] = {
    "select": lambda url, schema, folder, n: section_select(url, schema, folder, n),
    "schedule": lambda url, schema, folder, n: section_schedule(url, schema, folder),
    "start": lambda url, schema, folder, n: section_start(url, schema, folder, n),
    "realign": lambda url, schema, folder, n: section_realign(url, schema, folder),
}


def run(name: str, url: str, schema: str | None, n: int, folder: Path, sections: list[str]) -> None:
    migrate.upgrade(url, schema=schema)
    loaded = load(url, schema, n)
    mark_synced(url, schema, folder)
    print(f"{name}: {n} clients bulk-loaded in {loaded:.1f} s", flush=True)
    for section in sections:
        print(f" {section}:", flush=True)
        SECTIONS[section](url, schema, folder, n)
        sys.stdout.flush()


def databases(postgres: str | None, folder: Path) -> Iterator[tuple[str, str, str | None]]:
    yield "sqlite", f"sqlite:///{folder / 'bench.sqlite3'}", None
    if postgres:
        yield "postgresql", postgres, f"bench_{uuid.uuid4().hex[:8]}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL (a schema is made)")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Stopped with SIGTERM, clean up all the same: the temporary file, the schema.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(1))
    if args.child:
        run_child(args.child, args.url, args.schema, Path(args.folder))
        return 0
    sections = [s for s in args.sections.split(",") if s]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "regulation.json").write_text(regulation_text(False), encoding="utf-8")
        (folder / "redrawn.json").write_text(regulation_text(True), encoding="utf-8")
        for db, url, schema in databases(args.postgres, folder):
            if args.only and db != args.only:
                continue
            try:
                run(db, url, schema, args.clients, folder, sections)
            finally:
                if schema is not None:
                    engine = make_engine(url)
                    with engine.begin() as connection:
                        connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
