"""The drop-in ``run_all`` against the business-rules package's, on the same objects.

Run: python benchmarks/bench_business_rules.py [--objects 100000] [--rules 50] [--rounds 5]

The seeded peer workload of the speed work (``benchmarks/workload.py``):
clients with eight variables (int and float numbers, text, a boolean, a
select and a select-multiple), 50 rules of 6 to 10 conditions each in nested
``all``/``any`` (about 400 leaves, every type's operators), one action that
records which rule matched. First the
actions each implementation calls on a sample are checked equal; then the
objects are split into rounds, and each round runs the package, the
drop-in, and the drop-in with ``reuse_values=True`` over the same objects,
in an order that rotates from round to round, checking again that all three
called the same actions. Prints objects per second, the median and spread
of the ratios to the package. The workload is built first and frozen out of
the garbage collector's scans (``gc.freeze``), as a loop over a database
query would not keep 100,000 objects alive.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import business_rules.engine as package
from workload import ClientActions, ClientVariables, SyntheticClient, clients, leaves, rules

from crmrules import business_rules as dropin

Runner = Callable[[list[dict[str, Any]], Any, Any], Any]


def run(
    implementation: Runner, rule_list: list[dict[str, Any]], objects: list[SyntheticClient]
) -> list[Any]:
    log: list[Any] = []
    actions = ClientActions(log)
    for client in objects:
        implementation(rule_list, ClientVariables(client), actions)
        log.append(None)  # one mark per object, so the logs line up
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    rule_list = rules(rng, args.rules)
    products = clients(rng, args.objects)
    implementations: dict[str, Runner] = {
        "business_rules.engine.run_all": package.run_all,
        "crmrules.business_rules.run_all": dropin.run_all,
        "  ... reuse_values=True": lambda r, v, a: dropin.run_all(r, v, a, reuse_values=True),
    }
    # the workload lives for the whole run: keep the collector from rescanning it every round
    gc.collect()
    gc.freeze()
    sample = products[: min(2_000, len(products))]
    logs = {name: run(impl, rule_list, sample) for name, impl in implementations.items()}
    if len({repr(log) for log in logs.values()}) != 1:
        print("the implementations called different actions on the sample", file=sys.stderr)
        return 1
    fired = sum(entry is not None for entry in logs["business_rules.engine.run_all"])
    print(
        f"objects: {len(products)}, rules: {len(rule_list)} ({leaves(rule_list)} leaves), "
        f"rounds: {args.rounds}"
    )
    print(f"actions called on the first {len(sample)} objects: {fired} (equal in all three)")
    size = -(-len(products) // args.rounds)
    seconds: dict[str, list[float]] = {name: [] for name in implementations}
    names = list(implementations)
    for index in range(args.rounds):
        chunk = products[index * size : (index + 1) * size]
        order = names[index % len(names) :] + names[: index % len(names)]
        round_logs = {}
        for name in order:
            started = time.perf_counter()
            round_logs[name] = run(implementations[name], rule_list, chunk)
            seconds[name].append((time.perf_counter() - started) / len(chunk))
        if len({repr(log) for log in round_logs.values()}) != 1:
            print(f"round {index + 1}: the implementations differ", file=sys.stderr)
            return 1
    baseline = seconds[names[0]]
    for name in names:
        per_object = statistics.median(seconds[name])
        line = f"{name:34} {1 / per_object:>10,.0f} objects/s ({per_object * 1e6:7.1f} µs each)"
        if name != names[0]:
            ratios = [base / own for base, own in zip(baseline, seconds[name], strict=True)]
            line += (
                f"  ratio {statistics.median(ratios):5.1f}x"
                f" (rounds {min(ratios):.1f}x-{max(ratios):.1f}x)"
            )
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
