"""The impact of a regulation change: time and peak memory from 100,000 to a million clients.

Run: python benchmarks/bench_impact.py [--clients 1000000] [--small 100000] [--rounds 1]

For each size (``--small`` and ``--clients``) a fresh SQLite file is
bulk-loaded by bench_base.py's loader (its clients, ten territories by
region) plus, for each client, the pending timer of a rule ``renewal``
(``{before: 30 days, of: client.contract_end}``) as the store's own
functions write it, copied under each client's id as the loader copies the
clients. The load runs in a child process under ``nice``; the runs do not.

Then ``engine.impact(new)`` runs in a child process of its own, so its peak
resident memory (``VmHWM``) is its own. NEW re-plans every client's timer
(``before: 45 days``) and redraws the ten territories (each loses its
clients with over 380 employees: 5% of the base moves), so the dry timer
sync re-plans a timer per client and walks every client, and the dry
realignment moves a client in twenty. Rounds interleave the sizes; medians
with the spread, and the ratios of the large size to the small one: time
grows with the base, peak memory should not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_base import (
    LOADED,
    NOW,
    TEMPLATES,
    Loader,
    load,
    make_client,
    mark_synced,
    peak_rss_mb,
    regulation_text,
)

from crmrules import timers
from crmrules.adapters import migrate
from crmrules.adapters.memory import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyTransaction, make_engine
from crmrules.adapters.tables import tables_in
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.rules.regulation import load_regulation
from crmrules.store import Timer

RENEWAL = {
    "id": "renewal",
    "on": {"before": "30 days", "of": "client.contract_end"},
    "then": [{"create_task": {"kind": "call", "title": "Продление: {{ client.name }}"}}],
}


def regulation(new: bool) -> str:
    """bench_base's regulation with the renewal rule; NEW: 45 days, the territories redrawn."""
    data: dict[str, Any] = json.loads(regulation_text(redrawn=new))
    rule = json.loads(json.dumps(RENEWAL))
    if new:
        rule["on"]["before"] = "45 days"
    data["rules"].append(rule)
    return json.dumps(data, ensure_ascii=False)


def template_timers(folder: Path, n: int) -> list[Timer]:
    """The renewal timer of each template client, planned by the store's own function."""
    old = load_regulation(folder / "regulation.json")
    rng = random.Random(11)  # as bench_base.load makes its templates
    made: list[Timer] = []
    for i in range(min(n, TEMPLATES)):
        client, _ = make_client(i, rng)
        with MemoryStore().transaction() as tx:  # one each: its timers are listed by a scan
            timers.plan_for_record(tx, old, LOADED, client=client)
            made.extend(tx.find_timers())
    return made


def load_timers(url: str, folder: Path, n: int) -> None:
    """A pending renewal timer for each client: template ``i % TEMPLATES`` under client i's id."""
    t = tables_in(None)
    made = sorted(template_timers(folder, n), key=lambda timer: timer.client or "")
    assert [m.client for m in made] == [f"c{i:07}" for i in range(min(n, TEMPLATES))]
    engine = make_engine(url)
    with engine.begin() as connection:
        loader = Loader(connection, None)
        rows = [{"key": timer.key, **SQLAlchemyTransaction._timer_values(timer)} for timer in made]
        names, prepared = list(rows[0]), loader.tuples(t.timers, rows)
        for first in range(0, n, 20_000):
            batch = []
            for i in range(first, min(n, first + 20_000)):
                template, client_id = f"c{i % TEMPLATES:07}", f"c{i:07}"
                batch.append(
                    tuple(
                        v.replace(template, client_id) if isinstance(v, str) else v
                        for v in prepared[i % TEMPLATES]
                    )
                )
            loader.send(t.timers, names, batch)
        connection.exec_driver_sql("ANALYZE crmrules_timers")
    engine.dispose()


def prepare(folder: Path, n: int) -> None:
    """The base of ``n`` clients and their timers, in ``folder`` (run under nice)."""
    url = f"sqlite:///{folder / 'bench.sqlite3'}"
    migrate.upgrade(url)
    load(url, None, n)
    load_timers(url, folder, n)
    mark_synced(url, None, folder)


def child(folder: Path) -> None:
    """Run the impact once and print its time, peak memory and counts as JSON."""
    url = f"sqlite:///{folder / 'bench.sqlite3'}"
    old = load_regulation(folder / "regulation.json")
    new = load_regulation(folder / "new.json")
    engine = Engine(old, url, SimulatedClock(NOW), entry_points=False)
    started = time.perf_counter()
    report = engine.impact(new)
    seconds = time.perf_counter() - started
    engine.store.close()  # type: ignore[attr-defined]
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "summary": report.summary()}))


def run(*args: str, niced: bool = False) -> str:
    def lower() -> None:
        os.nice(10)

    done = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=lower if niced else None,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=None, help="default: a tenth of --clients")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("-n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    if args.prepare:
        prepare(args.prepare, args.n)
        return 0
    sizes = [args.small or args.clients // 10, args.clients]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as name:
        folders = {n: Path(name) / str(n) for n in sizes}
        for n, folder in folders.items():
            folder.mkdir()
            (folder / "regulation.json").write_text(regulation(False), encoding="utf-8")
            (folder / "new.json").write_text(regulation(True), encoding="utf-8")
            started = time.perf_counter()
            run("--prepare", str(folder), "-n", str(n), niced=True)
            print(f"{n:>8} clients and timers bulk-loaded in {time.perf_counter() - started:.0f} s")
            sys.stdout.flush()
        runs: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
        for _ in range(args.rounds):
            for n in sizes:
                result = json.loads(run("--child", str(folders[n])).splitlines()[-1])
                summary = result["summary"]
                assert summary["timers_replanned"] == n, summary  # every client's timer
                runs[n].append(result)
                print(f"  {n:>8} clients: {result['seconds']:.1f} s, {result['peak_mb']:.0f} MB")
                sys.stdout.flush()
    medians = {}
    for n in sizes:
        seconds = [r["seconds"] for r in runs[n]]
        peaks = [r["peak_mb"] for r in runs[n]]
        medians[n] = (statistics.median(seconds), statistics.median(peaks))
        summary = runs[n][-1]["summary"]
        print(
            f"{n:>8} clients: impact {medians[n][0]:8.1f} s "
            f"(spread {min(seconds):.1f}-{max(seconds):.1f}), "
            f"peak RSS {medians[n][1]:6.1f} MB (spread {min(peaks):.1f}-{max(peaks):.1f}); "
            f"{summary['timers_replanned']} timers re-planned, "
            f"{summary['clients_moved']} clients would move"
        )
    small, large = sizes
    print(
        f"{large / small:g}x the clients: {medians[large][0] / medians[small][0]:.2f}x the time, "
        f"{medians[large][1] / medians[small][1]:.2f}x the peak memory"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
