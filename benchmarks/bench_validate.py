"""How long `crmrules validate` takes on a large regulation, against plain YAML parsing.

Run: python benchmarks/bench_validate.py [--size-mb 1.0]

Prints the time to load, check and compile a generated regulation of about
the given size, and the ratio against ``yaml.load`` with libyaml's
CSafeLoader on the same text, measured in the same run (the floor any YAML
regulation pays). The issue's goal: well under a second for 1 MB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from crmrules.rules.regulation import load_regulation

HEADER = """\
version: 1
calendar: {timezone: Europe/Moscow, country: RU, working_hours: "09:00-18:00"}
fields:
  client.segment: {type: enum, values: [A, B, C]}
  client.employees: {type: integer}
  event.invoice_number: {type: string}
pipelines:
  - id: sales
    stages: [{id: new}, {id: offer, deadline: 7 days}, {id: invoice}, {id: production},
             {id: won, final: true}, {id: lost, final: true}]
territories:
  - {id: msk, when: {field: client.region, in: [Москва, Московская область]}}
  - {id: msk-big, parent: msk, when: {field: client.employees, gte: 250}}
templates:
  reminder:
    subject: "Счёт {{ event.invoice_number }} ожидает оплаты"
    text: "Здравствуйте, {{ client.name }}! Счёт {{ event.invoice_number }} ждёт оплаты."
rules:
"""

RULE = """\
  - id: rule-{n}
    description: Через {days} рабочих дня после счёта позвонить клиенту номер {n}
    on: invoice.issued
    if:
      all:
        - {{field: client.segment, in: [A, B]}}
        - {{territory: msk}}
        - any:
            - {{field: client.employees, gte: {n}}}
            - {{field: client.name, contains: ООО, ignore_case: true}}
            - not: {{field: client.tags, contains_any: [vip, blocked]}}
        - {{field: client.created_at, older_than: {days} days}}
    then:
      - create_task:
          kind: call
          title: "Уточнить оплату счёта {{{{ event.invoice_number }}}} ({n})"
          due: {days} business days
          assignee: responsible
      - send_mailing: {{template: reminder, to: client}}
    priority: {n}
"""


def make_regulation(size_bytes: int) -> str:
    parts = [HEADER]
    total, n = len(HEADER.encode()), 0
    while total < size_bytes:
        rule = RULE.format(n=n, days=n % 5 + 1)
        parts.append(rule)
        total += len(rule.encode())
        n += 1
    return "".join(parts)


def best_of(repeat: int, action: object) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    text = make_regulation(int(args.size_mb * 1024 * 1024))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.yaml"
        path.write_text(text, encoding="utf-8")
        regulation = load_regulation(path)
        baseline, _ = best_of(args.repeat, lambda: yaml.load(text, Loader=yaml.CSafeLoader))
        ours, median = best_of(args.repeat, lambda: load_regulation(path))
    print(f"regulation: {len(text.encode()) / 1024 / 1024:.2f} MB, {len(regulation.rules)} rules")
    print(f"baseline yaml.load(CSafeLoader): {baseline * 1000:.0f} ms")
    print(f"crmrules load+check+compile:     {ours * 1000:.0f} ms (median {median * 1000:.0f} ms)")
    print(f"ratio crmrules / baseline:       {ours / baseline:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
