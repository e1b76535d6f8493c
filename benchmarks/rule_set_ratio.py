"""The rule set against the hand-written function in one process, and the memory store's loans.

Run: python benchmarks/rule_set_ratio.py [--clients 4000] [--rounds 9] [--stored 10000]

A steadier view of two figures of ``peers.py`` on a shared machine: the
same workload, the hand-written function and the compiled rule set's
``matched`` (facts prebuilt, and again with the records as the memory
store lends them, ``LentRecord``, where the code has it) timed in CPU time
in interleaved rounds of three passes over the same clients, the median
ratios printed; and the CPU
time of storing the workload's clients in the memory store
(``put_client``) and of the first ``lend_client`` of each after, which
together are what making a client's loan costs wherever it is made. Run
it with ``PYTHONPATH`` pointing at another ``src`` to compare versions.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable

import peers
import workload
from workload import ClientActions, ClientVariables

from crmrules import Client
from crmrules.adapters import MemoryStore
from crmrules.business_rules import import_rules
from crmrules.business_rules.command import check
from crmrules.rules.conditions import Facts
from crmrules.rules.ruleset import RuleSet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--stored", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    rules = workload.rules(rng, 50)
    clients = workload.clients(rng, max(args.clients, args.stored))
    regulation = check(import_rules(rules, ClientVariables, ClientActions), ClientActions, "x")
    coerce, calendar = regulation.fields.coerce_record, regulation.calendar
    typed = [coerce("client", c.id, peers.stored_record(c), calendar) for c in clients]
    sample = clients[: args.clients]
    facts = [Facts(records={"client": fields}, now=peers.NOW) for fields in typed]
    facts = facts[: args.clients]
    matched = RuleSet([rule.condition for rule in regulation.rules]).matched
    hand = peers.hand_written(rules)
    if [matched(f) for f in facts] != hand(sample):
        print("the rule set and the hand-written function matched different rules", file=sys.stderr)
        return 1
    made = [
        Client(id=c.id, name=c.company, fields=fields)
        for c, fields in zip(clients[: args.stored], typed, strict=False)
    ]
    gc.collect()
    gc.freeze()

    def spent(work: Callable[[], object]) -> float:
        started = time.process_time()
        for _ in range(3):
            work()
        return (time.process_time() - started) / 3 / len(sample)

    try:  # the records as the memory store lends them, with their floats (not in older code)
        from crmrules.rules.floats import LentRecord

        lent = [
            Facts(records={"client": LentRecord(f.records["client"] or {})}, now=f.now)
            for f in facts
        ]
    except ImportError:
        lent = []
    works: dict[str, Callable[[], object]] = {
        "hand-written function": lambda: hand(sample),
        "rule set": lambda: [matched(f) for f in facts],
    }
    if lent:
        works["rule set, records as lent"] = lambda: [matched(f) for f in lent]
    seconds: dict[str, list[float]] = {name: [] for name in works}
    for index in range(args.rounds):
        names = list(works)[index % len(works) :] + list(works)[: index % len(works)]
        for name in names:
            seconds[name].append(spent(works[name]))
    for name in list(works)[1:]:
        ratios = [
            a / b for a, b in zip(seconds["hand-written function"], seconds[name], strict=True)
        ]
        print(
            f"{name} / hand-written function: {statistics.median(ratios):.3f} "
            f"({min(ratios):.3f}-{max(ratios):.3f}), {args.rounds} rounds of {len(sample)} clients"
        )
    puts, reads = [], []
    for _ in range(5):
        store = MemoryStore()
        with store.transaction() as tx:
            started = time.process_time()
            for client in made:
                tx.put_client(client)
            puts.append((time.process_time() - started) / len(made))
            started = time.process_time()
            for client in made:
                tx.lend_client(client.id)
            reads.append((time.process_time() - started) / len(made))
    print(
        f"put_client {statistics.median(puts) * 1e6:.2f} µs, the first lend_client after "
        f"{statistics.median(reads) * 1e6:.2f} µs ({len(made)} clients, median of 5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
