"""The profile of ``Engine.handle`` on bench_engine.py's workload, on one store.

Run: python benchmarks/profile_engine.py [--store memory|sqlite] [--events 1000] [--top 25]

Only the time inside ``Engine.handle`` is profiled (not the setup of the
100 clients and deals). Prints the top functions by cumulative and by own
time, the figures docs/benchmarks.md quotes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

import bench_engine

from crmrules import Engine, Store
from crmrules.adapters import MemoryStore
from crmrules.adapters.sqlalchemy import SQLAlchemyStore


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    profile = cProfile.Profile()
    handle = Engine.handle

    def profiled(self: Engine, event: Any) -> Any:
        profile.enable()
        try:
            return handle(self, event)
        finally:
            profile.disable()

    Engine.handle = profiled  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as folder:
        regulation = bench_engine.make_regulation(Path(folder))
        store: Store = (
            MemoryStore()
            if args.store == "memory"
            else SQLAlchemyStore(f"sqlite:///{folder}/profile.sqlite3")
        )
        rate = bench_engine.run(regulation, store, args.events)
        store.close()
    print(f"{args.store}: {args.events} events, {rate:.0f} events/s under the profiler")
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
