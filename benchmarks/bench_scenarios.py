"""How long a scenario spanning a simulated year takes, against loading its regulation.

Run: python benchmarks/bench_scenarios.py [--clients 3] [--repeat 5]

Writes a regulation with a daily schedule (``{every: 1 day, at: "09:00"}``)
and a territory contact plan every day, plus a scenario file that advances
the simulated clock by 365 days and checks the tasks made. Prints the
median time to load the scenario file (which loads and compiles the
regulation: the baseline, measured in the same run) and to run the
year-long scenario, and their ratio. The spec's goal: a year runs "in well
under a second".
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "year").mkdir()
        (folder / "year" / "regulation.yaml").write_text(REGULATION, encoding="utf-8")
        path = folder / "year.regulation.yaml"
        path.write_text(scenario(args.clients), encoding="utf-8")

        loaded = load_scenario_file(path)
        first = run_scenario(loaded, loaded.scenarios[0])
        if not first.passed:
            print(first.report(), file=sys.stderr)
            return 1
        fired = sum(": fired" in line for line in first.timeline)

        load = median_time(lambda: load_scenario_file(path), args.repeat)
        cpu: list[float] = []
        year = median_time(lambda: run_scenario(loaded, loaded.scenarios[0]), args.repeat, cpu)
    print(f"clients: {args.clients}, rule firings in the year: {fired}")
    print(f"load the scenario file and its regulation (baseline): {load * 1000:8.1f} ms")
    print(f"run a simulated year of daily timers:                 {year * 1000:8.1f} ms")
    print(f"ratio: {year / load:.1f}x the baseline")
    print(f"CPU of the simulated year (median): {statistics.median(cpu):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
