"""Soak: one ``crmrules worker`` process, 10,000 due timers, 1% failing, two database cuts.

Run: python benchmarks/bench_soak.py [--timers 10000] [--failing 100] [--cuts 2]
     [--postgres URL]

A fresh PostgreSQL schema gets ``--timers`` clients created two days ago
under a rule that fires a day after creation and creates a task whose title
computes with a custom field; ``--failing`` of the clients lack that field,
so their rule fails at run time. ``crmrules worker`` (a real process)
connects through a TCP proxy started here, which cuts every connection for
0.3 s ``--cuts`` times while the timers fire. At the end every must-hold is
checked, and the run exits 1 if one broke:

- every healthy timer fired exactly once (one task per healthy client);
- every failing timer is FAILED with the reason, and listed as a failure;
- the worker logged each outage and the reconnect, and is still running
  (it then stops cleanly on SIGTERM).

The tests run the same thing with 400 timers (tests/test_worker_outage.py).
The URL comes from --postgres or CRMRULES_TEST_POSTGRES_URL; the schema is
dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from outage import check, run_outage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=10_000)
    parser.add_argument("--failing", type=int, default=None, help="default: 1%% of --timers")
    parser.add_argument("--cuts", type=int, default=2)
    parser.add_argument("--cut-seconds", type=float, default=0.3)
    parser.add_argument("--postgres", default=os.environ.get("CRMRULES_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    if not args.postgres:
        parser.error("give --postgres URL or set CRMRULES_TEST_POSTGRES_URL")
    failing = args.timers // 100 if args.failing is None else args.failing
    with tempfile.TemporaryDirectory() as folder:
        report = run_outage(
            args.postgres,
            Path(folder),
            timers=args.timers,
            failing=failing,
            cuts=args.cuts,
            cut_seconds=args.cut_seconds,
            timeout=3600,
        )
    problems = check(report)
    outages = report.log.count("the database is unavailable")
    cuts = f"{report.cuts} cut(s) of {args.cut_seconds} s"
    print(f"{report.timers} timers, {report.failing} failing, {cuts}")
    print(f"fired in {report.seconds:.1f} s: {report.timers / report.seconds:.0f} timers/s")
    print(
        f"worker: {outages} store error(s) logged, still running at the end: {report.worker_alive}"
    )
    fired = sum(1 for state in report.timer_status.values() if state == "fired")
    failed = sum(1 for state in report.timer_status.values() if state == "failed")
    print(
        f"timers fired: {fired}, failed with a reason: {failed}, failure records: {report.failures}"
    )
    once = sum(1 for n in report.tasks_per_client.values() if n == 1)
    print(f"clients with exactly one task: {once}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("all must-holds held" if not problems else f"{len(problems)} must-hold(s) broke")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
