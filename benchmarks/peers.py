"""crmrules against its peers on the research workload, side by side in one process.

Run: python benchmarks/peers.py [--clients 100000] [--rules 50] [--rounds 5] [--events 1000]
     [--stored 10000]

The workload (benchmarks/workload.py, seeded): synthetic clients with eight
variables of every type, 50 rules of nested all/any (about 410 leaves).
The same rules run in each evaluator's own format:

- one hand-written function for all rules: each variable read once into a
  local, then every rule's test inline (written out by the benchmark, since
  the rules are random; the pure-Python ceiling and the baseline);
- one generated lambda per rule, reading the client's attributes itself;
- crmrules compiled rule set (``crmrules.rules.ruleset.RuleSet``: all 50
  conditions as one generated function), facts prebuilt;
- the same with the records as the memory store lends them
  (``crmrules.rules.floats.LentRecord``: read-only, with the float of each
  ``Decimal`` value, made once per stored version), so the rule set
  compares floats first;
- the same rule set recording what it saw (``crmrules.rules.why.Seen``: the
  values the rules read, from which a miss is explained when asked), as
  the engine does once per view of an event;
- crmrules compiled conditions, ``rule.condition(facts)``, facts prebuilt;
- crmrules coercing each stored record (``coerce_record``) then evaluating
  the rule set;
- crmrules per event from the stored client: what ``Engine.handle`` does
  to decide which rules match (the subject read from the store, the facts
  built, the event type's compiled rule set evaluated), on ``--stored``
  stored clients a round;
- crmrules ``Engine.handle`` on the memory store: the full per-event path
  from a stored client (transaction, idempotency, outcomes, audit, the
  matched rules' actions), on ``--events`` clients a round;
- the business-rules package's ``run_all``.

Every evaluator's matches (rule indices per client) are checked equal on
a sample first and again in every round. Rounds are interleaved (the order
rotates from round to round) and timed in CPU time (``time.process_time``,
less swayed than the wall clock by the other processes of a shared
machine); the figures are medians over rounds, with the spread, and ratios
to the hand-written function measured in the same round.
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import business_rules.engine as package
import workload
from workload import ClientActions, ClientVariables, SyntheticClient

from crmrules import Client, Engine, Event, SimulatedClock
from crmrules.adapters import MemoryStore
from crmrules.business_rules import DEFAULT_EVENT, fields_from_variables, import_rules, plugin
from crmrules.business_rules.command import check
from crmrules.result import Result
from crmrules.rules.conditions import Facts
from crmrules.rules.regulation import Regulation
from crmrules.rules.ruleset import RuleSet
from crmrules.rules.why import Seen
from crmrules.run import Run

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
SETS = ("channels", "labels")
Matches = list[list[int]]
#: an evaluator takes the round's items and returns each one's matches
Evaluator = Callable[[Sequence[Any]], Any]


@dataclass(frozen=True)
class Entry:
    """An evaluator, the items it takes, how many of a round's it runs, its answers as matches."""

    evaluate: Evaluator
    items: Sequence[Any]
    limit: int | None = None
    #: turns what ``evaluate`` returned into rule numbers, outside the timing
    translate: Callable[[Any], Matches] = lambda found: found


# --- Python written out from the rules -------------------------------------------------------


def python_leaf(leaf: dict[str, Any], ref: Callable[[str], str], constants: dict[str, Any]) -> str:
    """The test of one leaf as a Python expression, with the package's meaning."""
    name, op, value = leaf["name"], leaf["operator"], leaf["value"]
    here = ref(name)
    numeric = {
        "less_than": "<",
        "greater_than": ">",
        "equal_to": "==",
        "greater_than_or_equal_to": ">=",
        "less_than_or_equal_to": "<=",
    }
    if name in ("open_deals", "revenue", "days_to_renewal"):
        return f"{here} {numeric[op]} {value!r}"
    if name == "key_account":
        return here if op == "is_true" else f"not {here}"
    if name in SETS:
        lowered = value.lower() if isinstance(value, str) else frozenset(v.lower() for v in value)
        key = f"k{len(constants)}"
        constants[key] = lowered
        return {
            "contains": f"{key} in {here}",
            "does_not_contain": f"{key} not in {here}",
            "contains_all": f"{key} <= {here}",
            "shares_at_least_one_element_with": f"not {here}.isdisjoint({key})",
            "shares_no_elements_with": f"{here}.isdisjoint({key})",
        }[op]
    if op == "matches_regex":
        key = f"k{len(constants)}"
        constants[key] = re.compile(value)
        return f"{key}.search({here}) is not None"
    return {
        "equal_to": f"{here} == {value!r}",
        "equal_to_case_insensitive": f"{here}.lower() == {value.lower()!r}",
        "starts_with": f"{here}.startswith({value!r})",
        "ends_with": f"{here}.endswith({value!r})",
        "contains": f"{value!r} in {here}",
        "non_empty": f"bool({here})",
    }[op]


def python_condition(
    node: dict[str, Any], ref: Callable[[str], str], constants: dict[str, Any]
) -> str:
    for key, joiner in (("all", " and "), ("any", " or ")):
        if key in node:
            return "(" + joiner.join(python_condition(p, ref, constants) for p in node[key]) + ")"
    return python_leaf(node, ref, constants)


def lowered_set(attribute: str) -> str:
    return f"{{x.lower() for x in {attribute}}}"


def per_rule_lambdas(rules: list[dict[str, Any]]) -> Evaluator:
    """One lambda per rule, each reading the client's attributes itself."""
    constants: dict[str, Any] = {}

    def ref(name: str) -> str:
        return lowered_set(f"c.{name}") if name in SETS else f"c.{name}"

    tests = [
        eval(f"lambda c: {python_condition(r['conditions'], ref, constants)}", constants)
        for r in rules
    ]
    numbered = list(enumerate(tests))
    return lambda items: [[i for i, test in numbered if test(c)] for c in items]


def hand_written(rules: list[dict[str, Any]]) -> Evaluator:
    """One function for all rules: the variables read once, every rule's test inline."""
    constants: dict[str, Any] = {}
    lines = ["def evaluate(items):", "    out = []", "    for c in items:"]
    for name in ("open_deals", "revenue", "days_to_renewal", "sector", "company", "key_account"):
        lines.append(f"        {name} = c.{name}")
    for name in SETS:
        lines.append(f"        {name} = {lowered_set(f'c.{name}')}")
    lines.append("        matched = []")
    for index, rule in enumerate(rules):
        test = python_condition(rule["conditions"], lambda name: name, constants)
        lines.append(f"        if {test}:")
        lines.append(f"            matched.append({index})")
    lines.append("        out.append(matched)")
    lines.append("    return out")
    exec("\n".join(lines), constants)
    evaluate: Evaluator = constants["evaluate"]
    return evaluate


# --- the packages ------------------------------------------------------------------------------


def business_rules_run_all(rules: list[dict[str, Any]]) -> Evaluator:
    def evaluate(items: Sequence[SyntheticClient]) -> Matches:
        out = []
        for client in items:
            log: list[int] = []
            package.run_all(rules, ClientVariables(client), ClientActions(log))
            out.append(log)
        return out

    return evaluate


def stored_record(client: SyntheticClient) -> dict[str, Any]:
    """The client's custom fields as the application stores them for crmrules."""
    fields = fields_from_variables(ClientVariables(client))
    return {path.split(".", 1)[1]: value for path, value in fields.items()}


def crmrules_rule_set_seen(regulation: Regulation) -> Evaluator:
    """The rule set, and what explains its misses later recorded (``Seen``), as the engine does."""
    rule_set = RuleSet([rule.condition for rule in regulation.rules])
    matched, reads, version = rule_set.matched, rule_set.reads, regulation.release.id
    take = Seen.take

    def evaluate(items: Sequence[Facts]) -> Matches:
        out = []
        for facts in items:
            out.append(matched(facts))
            take(reads, facts, version)
        return out

    return evaluate


def crmrules_conditions(regulation: Regulation) -> Evaluator:
    """``rule.condition(facts)`` for every rule; the items are prebuilt Facts."""
    numbered = [(i, rule.condition) for i, rule in enumerate(regulation.rules)]
    return lambda items: [[i for i, test in numbered if test(facts)] for facts in items]


def crmrules_rule_set(regulation: Regulation) -> Evaluator:
    """All the rules' conditions as one compiled rule set; the items are prebuilt Facts."""
    matched = RuleSet([rule.condition for rule in regulation.rules]).matched
    return lambda items: [matched(facts) for facts in items]


def crmrules_coercing(regulation: Regulation) -> Evaluator:
    """Each stored record coerced to its field types, then the compiled rule set."""
    matched = RuleSet([rule.condition for rule in regulation.rules]).matched
    coerce, calendar = regulation.fields.coerce_record, regulation.calendar

    def evaluate(items: Sequence[tuple[str, dict[str, Any]]]) -> Matches:
        out = []
        for client_id, raw in items:
            facts = Facts(records={"client": coerce("client", client_id, raw, calendar)}, now=NOW)
            out.append(matched(facts))
        return out

    return evaluate


def crmrules_per_event(
    regulation: Regulation, sample: Sequence[SyntheticClient]
) -> tuple[Evaluator, Callable[[Any], Matches]]:
    """The engine's per-event evaluation from the stored client, in one transaction a round.

    For each event: the subject read from the store, the facts built and
    the event type's compiled rule set evaluated (``Run.view`` and
    ``Run.matches``, what ``Engine.handle`` does before it records outcomes
    and runs the matched rules' actions). The events are the host's input,
    made beforehand; the clients are stored as the engine stores them (their
    custom fields in their field types), put straight into the store. The
    answers (each listening rule's, by position) are turned into rule numbers
    outside the timing, by the second function returned.
    """
    engine = Engine(regulation, store=MemoryStore(), clock=SimulatedClock(NOW), entry_points=False)
    coerce, calendar = regulation.fields.coerce_record, regulation.calendar
    with engine.store.transaction() as tx:
        for client in sample:
            fields = coerce("client", client.id, stored_record(client), calendar)
            tx.put_client(Client(id=client.id, name=client.company, fields=fields))
    events = {
        c.id: Event(id=f"p-{c.id}", type=DEFAULT_EVENT, occurred_at=NOW, client=c.id)
        for c in sample
    }
    listening = engine.rules_for(DEFAULT_EVENT)
    index = [int(rule.id.rsplit("-", 1)[1]) - 1 for rule in listening]

    def evaluate(items: Sequence[SyntheticClient]) -> Any:
        out = []
        with engine.store.transaction() as tx:
            run = Run(engine.setting, tx, NOW, Result("peers"))
            matches = run.matches
            for client in items:
                out.append(matches(events[client.id]))
        return out

    def numbers(found: list[tuple[bool, ...]]) -> Matches:
        return [sorted(index[i] for i, holds in enumerate(each) if holds) for each in found]

    return evaluate, numbers


def crmrules_engine(regulation: Regulation, sample: Sequence[SyntheticClient]) -> Evaluator:
    """``Engine.handle`` on the memory store, the sample's clients stored beforehand."""
    engine = Engine(
        regulation,
        store=MemoryStore(),
        clock=SimulatedClock(NOW),
        plugins=[plugin(ClientActions, factory=lambda context: ClientActions([]))],
        entry_points=False,
    )
    for client in sample:
        engine.create_client(
            Client(id=client.id, name=client.company, fields=stored_record(client))
        )
    count = iter(range(sys.maxsize))

    def evaluate(items: Sequence[SyntheticClient]) -> Matches:
        out = []
        for client in items:
            event = Event(
                id=f"e{next(count)}", type=DEFAULT_EVENT, occurred_at=NOW, client=client.id
            )
            result = engine.handle(event)
            out.append(
                [int(o.rule.rsplit("-", 1)[1]) - 1 for o in result.outcomes if o.status == "fired"]
            )
        return out

    return evaluate


# --- the run -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=1_000, help="Engine.handle calls a round")
    parser.add_argument(
        "--stored", type=int, default=10_000, help="events a round evaluated from a stored client"
    )
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    rules = workload.rules(rng, args.rules)
    clients = workload.clients(rng, args.clients)
    regulation = check(import_rules(rules, ClientVariables, ClientActions), ClientActions, "peers")
    records = [(c.id, stored_record(c)) for c in clients]
    coerce, calendar = regulation.fields.coerce_record, regulation.calendar
    facts = [
        Facts(records={"client": coerce("client", i, raw, calendar)}, now=NOW) for i, raw in records
    ]
    from crmrules.rules.floats import LentRecord  # here: rule_set_ratio.py imports older code

    lent_facts = [Facts({"client": LentRecord(f.records["client"] or {})}, NOW) for f in facts]
    size = -(-len(clients) // args.rounds)
    chunks = [slice(r * size, (r + 1) * size) for r in range(args.rounds)]
    engine_sample = [c for chunk in chunks for c in clients[chunk][: args.events]]
    stored_sample = [c for chunk in chunks for c in clients[chunk][: args.stored]]
    per_event, numbers = crmrules_per_event(regulation, stored_sample)
    evaluators: dict[str, Entry] = {
        "hand-written function, all rules": Entry(hand_written(rules), clients),
        "generated lambda per rule": Entry(per_rule_lambdas(rules), clients),
        "crmrules rule set, facts prebuilt": Entry(crmrules_rule_set(regulation), facts),
        "crmrules rule set, records as lent": Entry(crmrules_rule_set(regulation), lent_facts),
        "crmrules rule set + what it saw (Seen)": Entry(crmrules_rule_set_seen(regulation), facts),
        "crmrules conditions, facts prebuilt": Entry(crmrules_conditions(regulation), facts),
        "crmrules coerce record + rule set": Entry(crmrules_coercing(regulation), records),
        "crmrules per event from the stored client": Entry(
            per_event, clients, args.stored, numbers
        ),
        "crmrules Engine.handle, memory store": Entry(
            crmrules_engine(regulation, engine_sample), clients, args.events
        ),
        "business-rules run_all": Entry(business_rules_run_all(rules), clients),
    }
    names = list(evaluators)
    baseline = names[0]
    gc.collect()
    gc.freeze()  # the workload lives for the whole run: keep the collector off it

    def matches(name: str, chunk: slice) -> tuple[Matches, float, int]:
        entry = evaluators[name]
        part = entry.items[chunk]
        if entry.limit is not None:
            part = part[: entry.limit]
        started = time.process_time()
        found = entry.evaluate(part)
        spent = time.process_time() - started
        return entry.translate(found), spent / len(part), len(part)

    sample = slice(0, min(2_000, len(clients)))
    first = {name: matches(name, sample)[0] for name in names}
    limit = min(n for n in (len(m) for m in first.values()))
    if len({repr(m[:limit]) for m in first.values()}) != 1:
        print("the evaluators matched different rules on the sample", file=sys.stderr)
        return 1
    matched = sum(len(m) for m in first[baseline])
    print(
        f"clients: {len(clients)}, rules: {len(rules)} ({workload.leaves(rules)} leaves), "
        f"rounds: {args.rounds}; {matched} matches on the first {len(first[baseline])} clients, "
        "equal in every evaluator"
    )
    seconds: dict[str, list[float]] = {name: [] for name in names}
    counts: dict[str, int] = {}
    for index, chunk in enumerate(chunks):
        order = names[index % len(names) :] + names[: index % len(names)]
        found: dict[str, Matches] = {}
        for name in order:
            found[name], per_item, counts[name] = matches(name, chunk)
            seconds[name].append(per_item)
        shortest = min(len(m) for m in found.values())
        if len({repr(m[:shortest]) for m in found.values()}) != 1:
            print(f"round {index + 1}: the evaluators matched different rules", file=sys.stderr)
            return 1
    print(f"{'evaluator':38} {'clients/s':>11} {'µs each':>9}  ratio to the hand-written function")
    for name in names:
        per_item = statistics.median(seconds[name])
        ratios = [base / own for base, own in zip(seconds[baseline], seconds[name], strict=True)]
        print(
            f"{name:38} {1 / per_item:>11,.0f} {per_item * 1e6:9.1f}  "
            f"{statistics.median(ratios):.4f} ({min(ratios):.4f}-{max(ratios):.4f})"
            + (f"  [{counts[name]} a round]" if evaluators[name].limit is not None else "")
        )

    def against(name: str, other: str) -> str:
        ratios = [a / b for a, b in zip(seconds[name], seconds[other], strict=True)]
        return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"

    print(
        "recording what explains the misses (Seen) costs the rule set "
        + against("crmrules rule set + what it saw (Seen)", "crmrules rule set, facts prebuilt")
    )
    peer = "business-rules run_all"
    for name in ("crmrules rule set, facts prebuilt", "crmrules per event from the stored client"):
        print(f"{name} against {peer}: {against(peer, name)} as fast")
    return 0


if __name__ == "__main__":
    sys.exit(main())
