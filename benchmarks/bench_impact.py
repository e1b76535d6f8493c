"""The impact of a regulation change: time and peak memory as the base grows.

Run: python benchmarks/bench_impact.py [--clients 20000] [--rounds 3]

For each size (the given number and a quarter of it) a fresh SQLite file is
bulk-loaded (as in bench_select.py) and ``engine.impact(new)`` run in a
child process of its own, so its peak resident memory is its own: NEW
redraws a territory (a quarter of the clients move) and changes a rule.
Rounds interleave the sizes; medians are printed with the spread, and the
ratios of the large size to the small one: time should grow with the base,
peak memory should not (realignment and selection read a chunk at a time).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_select import NOW, REGULATION, load, make_clients

from crmrules.adapters import migrate
from crmrules.clock import SimulatedClock
from crmrules.engine import Engine
from crmrules.rules.regulation import load_regulation

NEW = REGULATION.replace(
    "when: {field: client.region, eq: Москва}", "when: {field: client.region, in: [Москва, Казань]}"
).replace("gte: 50}", "gte: 60}")


def child(folder: Path) -> None:
    """Run the impact once and print its time, peak memory and counts as JSON."""
    url = f"sqlite:///{folder / 'bench.sqlite3'}"
    old = load_regulation(folder / "old.yaml")
    new = load_regulation(folder / "new.yaml")
    engine = Engine(old, url, SimulatedClock(NOW), entry_points=False)
    started = time.perf_counter()
    report = engine.impact(new)
    seconds = time.perf_counter() - started
    engine.store.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "summary": report.summary()}))


def prepare(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'bench.sqlite3'}"
    migrate.upgrade(url)
    clients = [
        c.model_copy(update={"territories": frozenset({"msk"})}) if c.region == "Москва" else c
        for c in make_clients(n)
    ]
    load(url, None, clients)
    (folder / "old.yaml").write_text(REGULATION, encoding="utf-8")
    (folder / "new.yaml").write_text(NEW, encoding="utf-8")


def measure(folder: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return data


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    sizes = [args.clients // 4, args.clients]
    with tempfile.TemporaryDirectory() as name:
        folders = {n: Path(name) / str(n) for n in sizes}
        for n, folder in folders.items():
            prepare(folder, n)
        runs: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
        for _ in range(args.rounds):
            for n in sizes:
                runs[n].append(measure(folders[n]))
    medians = {}
    for n in sizes:
        seconds = [r["seconds"] for r in runs[n]]
        peaks = [r["peak_mb"] for r in runs[n]]
        medians[n] = (statistics.median(seconds), statistics.median(peaks))
        print(
            f"{n:>8} clients: impact {medians[n][0]:7.2f} s "
            f"(spread {min(seconds):.2f}-{max(seconds):.2f}), "
            f"peak {medians[n][1]:6.1f} MB (spread {min(peaks):.1f}-{max(peaks):.1f}); "
            f"{runs[n][-1]['summary']['clients_moved']} clients would move"
        )
    small, large = sizes
    print(
        f"{large // small}x the clients: {medians[large][0] / medians[small][0]:.2f}x the time, "
        f"{medians[large][1] / medians[small][1]:.2f}x the peak memory"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
