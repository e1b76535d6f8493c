"""How long a scenario spanning a simulated year takes, against loading its regulation.

Run: python benchmarks/bench_scenarios.py [--clients 3] [--repeat 5] [--target 1000]

Writes a regulation with a daily schedule (``{every: 1 day, at: "09:00"}``)
and a territory contact plan every day, plus a scenario file that advances
the simulated clock by 365 days and checks the tasks made. Prints the
median time to load the scenario file (which loads and compiles the
regulation: the baseline, measured in the same run) and to run the
year-long scenario, and their ratio. The spec's goal: a year runs "in well
under a second".

Then the CPU of the year (this process, median of the runs), per rule
firing, the part of it spent in the garbage collector's full (generation
2) collections, and the CPU of a year of ``--target`` clients (default
1,000): measured when ``--clients`` is that many (``--clients 1000
--repeat 1`` runs it), else extrapolated from this run's CPU per firing and
the firings of ``--target`` clients (about 307 a client; their count is
printed with the basis). The extrapolation is linear: it leaves out that
the full collections grow with the heap, so the measured figure is the one
to quote.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

from crmrules.testing import load_scenario_file, run_scenario

REGULATION = """\
version: 1
calendar: {timezone: Europe/Moscow, country: RU, working_hours: "09:00-18:00"}
fields:
  client.segment: {type: enum, values: [A, B, C]}
territories:
  - id: key
    when: {field: client.segment, eq: A}
    contact_plan:
      - every: 1 day
        then: [{create_task: {kind: call, title: "Звонок {{ client.name }}"}}]
rules:
  - id: daily-check
    on: {every: 1 day, at: "09:00"}
    if: {field: client.tags, contains: hot}
    then: [{create_task: {kind: todo, title: "Проверка {{ client.name }}"}}]
"""


def scenario(clients: int) -> str:
    rows = "\n".join(
        f"    - {{id: c{i}, name: Клиент {i}, segment: {'B' if i % 2 else 'A'}, "
        f"tags: [{'hot' if i % 3 == 0 else 'cold'}]}}"
        for i in range(clients)
    )
    return f"""\
regulation: year
now: 2026-01-01T10:00:00+03:00
given:
  clients:
{rows}
scenarios:
  - name: a year of daily timers
    steps:
      - advance: 365 days
      - expect: {{fired: [daily-check, key.contact_plan.0]}}
"""


def median_time(action: object, repeat: int, cpu: list[float] | None = None) -> float:
    """The median wall time of ``action``; its CPU times (this process) go in ``cpu``."""
    times = []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
        if cpu is not None:
            cpu.append(time.process_time() - start_cpu)
    return statistics.median(times)


class FullCollections:
    """The CPU the garbage collector's generation-2 collections take while it is installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.count = 0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._start = time.process_time()
        else:
            self.seconds += time.process_time() - self._start
            self.count += 1


#: Rule firings in a year per client of this scenario (10 clients 3,285, 20 clients 6,205,
#: 50 clients 15,330): a third are hot (daily check), half in segment A (daily plan).
def firings_of(clients: int) -> int:
    """The rule firings of a year of ``clients`` clients, as the scenario defines them."""
    hot = sum(1 for i in range(clients) if i % 3 == 0)
    key = sum(1 for i in range(clients) if i % 2 == 0)
    return 365 * (hot + key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--target", type=int, default=1000, help="clients of the year to state")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "year").mkdir()
        (folder / "year" / "regulation.yaml").write_text(REGULATION, encoding="utf-8")
        path = folder / "year.regulation.yaml"
        path.write_text(scenario(args.clients), encoding="utf-8")

        loaded = load_scenario_file(path)
        load = median_time(lambda: load_scenario_file(path), args.repeat)
        results = []
        cpu: list[float] = []
        collections = FullCollections()
        gc.callbacks.append(collections)
        try:
            year = median_time(
                lambda: results.append(run_scenario(loaded, loaded.scenarios[0])),
                args.repeat,
                cpu,
            )
        finally:
            gc.callbacks.remove(collections)
        if not all(result.passed for result in results):
            print(next(r for r in results if not r.passed).report(), file=sys.stderr)
            return 1
        fired = sum(": fired" in line for line in results[0].timeline)
    if fired != firings_of(args.clients):
        print(f"expected {firings_of(args.clients)} firings, counted {fired}", file=sys.stderr)
        return 1
    median_cpu = statistics.median(cpu)
    per_firing = median_cpu / fired
    print(f"clients: {args.clients}, rule firings in the year: {fired}")
    print(f"load the scenario file and its regulation (baseline): {load * 1000:8.1f} ms")
    print(f"run a simulated year of daily timers:                 {year * 1000:8.1f} ms")
    print(f"ratio: {year / load:.1f}x the baseline")
    print(
        f"CPU of the simulated year (median): {median_cpu:.2f} s "
        f"({min(cpu):.2f}-{max(cpu):.2f}), {per_firing * 1000:.3f} ms a firing; "
        f"full garbage collections {collections.seconds / len(cpu):.2f} s a run "
        f"({collections.count / len(cpu):.0f} of them)"
    )
    target = firings_of(args.target)
    if args.clients == args.target:
        print(f"a year of {args.target} clients ({fired} firings): {median_cpu:.1f} s of CPU")
    else:
        print(
            f"a year of {args.target} clients: {target} firings x {per_firing * 1000:.3f} ms "
            f"= {target * per_firing:.1f} s of CPU, extrapolated from {args.clients} clients "
            "(linear: the full collections grow with the heap; run --clients "
            f"{args.target} --repeat 1 to measure it)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
