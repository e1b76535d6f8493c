"""The ``crmrules`` command: what admins and CI run against regulations.

Admins read its output, so every failure is a list of ``file:line:col:
message`` lines and an exit code, never a Python traceback. Set
``CRMRULES_DEBUG=1`` to get the traceback of an internal error. Plugins
installed through the ``crmrules`` entry point group add their actions and
operators to ``validate`` and ``schema``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from crmrules.errors import CrmRulesError, RegulationError
from crmrules.plugins import PluginManager
from crmrules.rules.regulation import Regulation, load_regulation
from crmrules.rules.schema import json_schema


def _validate(
    paths: Sequence[str], out: TextIO, err: TextIO, allow_destinations: Sequence[str] = ()
) -> int:
    plugins = PluginManager()
    actions, operators = plugins.action_models(), plugins.operators()
    failed = 0
    for path in paths:
        try:
            regulation = load_regulation(
                path,
                actions=actions,
                operators=operators,
                allow_destinations=allow_destinations,
            )
        except RegulationError as error:
            failed += 1
            for problem in error.problems:
                print(problem, file=err)
            count = len(error.problems)
            print(f"{path}: {count} problem{'s' if count != 1 else ''}", file=err)
        else:
            print(f"{path}: ok, {regulation.summary()}", file=out)
    return 1 if failed else 0


def _schema(out: TextIO) -> int:
    plugins = PluginManager()
    schema = json_schema(plugins.action_models(), plugins.operator_schemas())
    json.dump(schema, out, ensure_ascii=False, indent=2)
    out.write("\n")
    return 0


def _db(args: argparse.Namespace, out: TextIO) -> int:
    from crmrules.adapters import migrate

    url = args.url or os.environ.get("CRMRULES_DATABASE_URL") or migrate.DEFAULT_URL
    if args.db_command == "upgrade":
        before = migrate.current(url, schema=args.schema)
        migrate.upgrade(url, schema=args.schema)
        after = migrate.current(url, schema=args.schema)
        shown = migrate.display_url(url)
        if before == after:
            print(f"{shown}: already at {after} (head)", file=out)
        else:
            print(f"{shown}: upgraded from {before or 'empty'} to {after}", file=out)
        return 0
    revision = migrate.current(url, schema=args.schema)
    head = migrate.head()
    state = "up to date" if revision == head else f"behind: head is {head}"
    print(f"{migrate.display_url(url)}: {revision or 'no crmrules tables'} ({state})", file=out)
    return 0 if revision == head else 1


def _worker(args: argparse.Namespace) -> int:
    from crmrules.adapters.sqlalchemy import DEFAULT_URL, SQLAlchemyStore, parse_url, sqlite_file
    from crmrules.engine import Engine
    from crmrules.worker import Worker, sqlite_single_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    url = args.database or os.environ.get("CRMRULES_DATABASE_URL") or DEFAULT_URL
    parsed = parse_url(url)
    database = sqlite_file(parsed) if parsed.get_backend_name() == "sqlite" else None
    plugins = PluginManager()
    with sqlite_single_worker(database):
        engine = Engine(_load(args.path, plugins), SQLAlchemyStore(url), plugin_manager=plugins)
        worker = Worker(
            engine,
            interval=args.interval,
            batch=args.batch,
            name=args.name,
            load=lambda: _load(args.path, plugins),
        )
        try:
            if args.once:
                engine.sync_timers()
                worker.run_once()
            else:
                worker.install_signals()
                worker.run()
        finally:
            engine.store.close()
    return 0


def _scenario_files(paths: Sequence[str]) -> list[str] | str:
    """Every ``*.regulation.yaml`` below ``paths`` in name order, or why there are none."""
    from pathlib import Path

    from crmrules.testing.scenario import is_scenario_file

    found: list[str] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            return f"{given}: no such file or folder"
        if path.is_file():
            found.append(str(path))
            continue
        found += sorted(
            str(p)
            for p in path.rglob("*")
            if p.is_file()
            and is_scenario_file(p)
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    return found or f"no *.regulation.yaml files under {', '.join(paths)}"


def _test(paths: Sequence[str], out: TextIO, err: TextIO) -> int:
    from crmrules.testing.runner import run_file

    files = _scenario_files(paths)
    if isinstance(files, str):
        print(f"error: {files}", file=err)
        return 1
    passed = failed = 0
    for file in files:
        for result in run_file(file):
            name = result.id if result.name else result.file
            print(f"{'PASS' if result.passed else 'FAIL'} {name}", file=out)
            if result.passed:
                passed += 1
                continue
            failed += 1
            for line in result.report().splitlines():
                print(f"    {line}", file=out)
    print(f"{passed} passed, {failed} failed", file=out)
    return 1 if failed else 0


def _simulate(file: str, scenario: str | None, out: TextIO) -> int:
    from crmrules.testing.runner import run_file

    failed = 0
    for result in run_file(file, only=scenario):
        name = result.id if result.name else result.file
        print(f"== {name}", file=out)
        for line in result.timeline:
            print(f"  {line}", file=out)
        print(f"{'PASS' if result.passed else 'FAIL'} {name}", file=out)
        for line in result.report().splitlines():
            print(f"    {line}", file=out)
        print(file=out)
        failed += not result.passed
    return 1 if failed else 0


def _load(path: str, plugins: PluginManager) -> Regulation:
    return load_regulation(path, actions=plugins.action_models(), operators=plugins.operators())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crmrules",
        description="Check and run crmrules sales regulations.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    validate = commands.add_parser(
        "validate",
        help="check regulations and report every problem with its location",
        description="Check each PATH (a regulation file, or a folder whose files are merged) "
        "and print every problem as file:line:col: message. Exits 1 if any is invalid.",
    )
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.add_argument(
        "--allow-destination",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="an internal webhook address, network (CIDR) or host name the regulation may "
        "write literally (the application's WebhookNotifier must allow it too); repeatable",
    )
    commands.add_parser(
        "schema",
        help="print the JSON Schema of the rule language (for editors)",
        description="Print the JSON Schema of the rule language. Save it and point your "
        "editor at it, e.g. with '# yaml-language-server: $schema=crmrules.schema.json' "
        "on the first line of a YAML regulation.",
    )
    test = commands.add_parser(
        "test",
        help="run the regulation scenarios (*.regulation.yaml) below each PATH",
        description="Run every scenario of every *.regulation.yaml file below each PATH on a "
        "simulated clock. Prints PASS/FAIL file::scenario with a readable report for each "
        "failure, then 'N passed, N failed'. Exits 1 if any failed.",
    )
    test.add_argument("paths", nargs="+", metavar="PATH")
    simulate = commands.add_parser(
        "simulate",
        help="run a scenario file and print its timeline",
        description="Run the scenarios of FILE (or only --scenario NAME) and print every event, "
        "timer, rule outcome and effect with its simulated time.",
    )
    simulate.add_argument("file", metavar="FILE", help="a *.regulation.yaml scenario file")
    simulate.add_argument("--scenario", metavar="NAME", help="run only this scenario")
    worker = commands.add_parser(
        "worker",
        help="fire due timers in a loop (time triggers, deadlines, schedules)",
        description="Fire due timers every few seconds until SIGTERM or SIGINT (the timer in "
        "hand is finished first); SIGHUP reloads the regulation. Several workers can share a "
        "PostgreSQL database; SQLite allows one at a time.",
    )
    worker.add_argument("path", metavar="PATH", help="the regulation (a file or a folder)")
    worker.add_argument(
        "--database", metavar="URL", help="default: $CRMRULES_DATABASE_URL, else the SQLite file"
    )
    worker.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    worker.add_argument("--batch", type=int, default=100, help="timers per batch")
    worker.add_argument("--name", help="this worker's name in leases and logs")
    worker.add_argument("--once", action="store_true", help="one batch, then exit")
    db = commands.add_parser(
        "db",
        help="create or upgrade the crmrules tables in a database",
        description="Manage the crmrules tables (all prefixed crmrules_, with their own "
        "Alembic version table crmrules_alembic_version). URL defaults to "
        "$CRMRULES_DATABASE_URL, else the embedded SQLite file.",
    )
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    for name, text in (
        ("upgrade", "create the tables or bring them to the current version"),
        ("current", "print the version of the tables; exit 1 if they are behind"),
    ):
        sub = db_commands.add_parser(name, help=text, description=text)
        sub.add_argument("url", nargs="?", metavar="URL", help="e.g. postgresql+psycopg://...")
        sub.add_argument("--schema", help="the PostgreSQL schema that holds the tables")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args.paths, sys.stdout, sys.stderr, args.allow_destination)
        if args.command == "db":
            return _db(args, sys.stdout)
        if args.command == "worker":
            return _worker(args)
        if args.command == "test":
            return _test(args.paths, sys.stdout, sys.stderr)
        if args.command == "simulate":
            return _simulate(args.file, args.scenario, sys.stdout)
        return _schema(sys.stdout)
    except CrmRulesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # a bug: say so in one line rather than dump a traceback
        if os.environ.get("CRMRULES_DEBUG"):
            raise
        print(
            f"internal error: {type(error).__name__}: {error}\n"
            "This is a bug in crmrules; run again with CRMRULES_DEBUG=1 and report the output.",
            file=sys.stderr,
        )
        return 2


__all__ = ["main"]
