"""A scoped view's client list: the direction in the SQL vs the same select unscoped vs Python.

Run: python benchmarks/bench_scoped.py [--clients 50000] [--rounds 5] [--postgres URL]

Bulk-loads the clients as bench_select.py does, declares a direction (the
msk territory and the vip tag, about 12% of the clients) and lists the ids
of a manager's clients three ways, interleaved round by round:

- the floor: ``engine.select(condition=...)`` with the direction's condition,
  no scope (the same SQL, measured in the same run);
- ``engine.scoped(manager).client_ids()``: the scope compiled into the SQL;
- loading every client and asking ``scope.allows`` in Python.

Prints the median time of each, its spread (min-max) and the ratio to the floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench_select import NOW, load, make_clients

from crmrules.adapters import migrate
from crmrules.adapters.sqlalchemy import SQLAlchemyStore, make_engine
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.model import Manager
from crmrules.rules.regulation import load_regulation

DIRECTION = {"all": [{"territory": "msk"}, {"field": "client.tags", "contains": "vip"}]}
REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow}
fields:
  client.segment: {type: enum, values: [A, B, C]}
  client.employees: {type: integer}
  client.revenue: {type: decimal}
territories:
  - {id: msk, when: {field: client.region, eq: Москва}}
directions:
  - id: msk-vip
    when: {all: [{territory: msk}, {field: client.tags, contains: vip}]}
"""


def run(name: str, url: str, schema: str | None, rounds: int, clients: int, folder: Path) -> None:
    migrate.upgrade(url, schema=schema)
    made = [
        c.model_copy(update={"territories": frozenset({"msk"})}) if c.region == "Москва" else c
        for c in make_clients(clients)
    ]
    load(url, schema, made)
    path = folder / "regulation.yaml"
    path.write_text(REGULATION, encoding="utf-8")
    store = SQLAlchemyStore(url, schema=schema)
    engine = Engine(load_regulation(path), store, SimulatedClock(NOW), entry_points=False)
    engine.put_manager(Manager(id="anna", directions=frozenset({"msk-vip"})))
    view = engine.scoped("anna")

    def floor() -> int:
        return sum(1 for _ in engine.select(condition=DIRECTION))

    def scoped() -> int:
        return sum(1 for _ in view.client_ids())

    def in_python() -> int:
        with store.transaction() as tx:
            return sum(1 for c in tx.iter_clients() if view.scope.allows(c, NOW))

    ways: dict[str, Callable[[], int]] = {
        "engine.select, unscoped (floor)": floor,
        "scoped client_ids (SQL)": scoped,
        "load and filter in Python": in_python,
    }
    times: dict[str, list[float]] = {label: [] for label in ways}
    counts: set[int] = set()
    for _ in range(rounds):
        for label, way in ways.items():
            start = time.perf_counter()
            counts.add(way())
            times[label].append(time.perf_counter() - start)
    store.close()
    assert len(counts) == 1, counts
    base = statistics.median(times["engine.select, unscoped (floor)"])
    print(f"{name}: {clients} clients, {counts.pop()} in the direction, {rounds} rounds")
    for label, spent in times.items():
        median = statistics.median(spent)
        print(
            f"  {label:34} {median:7.3f} s (spread {min(spent):.3f}-{max(spent):.3f})"
            f"  {median / base:5.2f}x floor"
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get("CRMRULES_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        url = f"sqlite:///{folder / 'bench.sqlite3'}"
        run("sqlite", url, None, args.rounds, args.clients, folder)
        if args.postgres:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            try:
                run("postgresql", args.postgres, schema, args.rounds, args.clients, folder)
            finally:
                engine = make_engine(args.postgres)
                with engine.begin() as connection:
                    connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
