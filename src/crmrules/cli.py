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
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TextIO

from crmrules import __version__, cli_changes, cli_import
from crmrules.cli_reports import add_parser as add_report_parser
from crmrules.cli_reports import run as run_report
from crmrules.errors import CrmRulesError, RegulationError
from crmrules.leases import DEFAULT_LEASE
from crmrules.plugins import PluginManager
from crmrules.rules.regulation import Regulation, load_regulation
from crmrules.rules.schema import json_schema
from crmrules.testing.schema import scenario_json_schema


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


def _schema(out: TextIO, *, part: bool, scenario: bool) -> int:
    plugins = PluginManager()
    if scenario:
        schema = scenario_json_schema()
    else:
        schema = json_schema(plugins.action_models(), plugins.operator_schemas(), part=part)
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
    from crmrules.worker import AppError, Worker, load_app, sqlite_single_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if (args.app is None) == (args.path is None):
        print(
            "error: give the regulation PATH, or --app module:function, not both", file=sys.stderr
        )
        return 2
    if args.app is not None and args.database is not None:
        print(
            "error: --database goes with PATH; with --app the factory opens the store",
            file=sys.stderr,
        )
        return 2
    load: Callable[[], Regulation]
    try:
        if args.app is not None:
            build = load_app(args.app)
            engine = build()

            def load() -> Regulation:
                fresh = build()
                if fresh.store is not engine.store:
                    fresh.store.close()
                return fresh.regulation

        else:
            plugins = PluginManager()
            url = args.database or os.environ.get("CRMRULES_DATABASE_URL") or DEFAULT_URL
            engine = Engine(_load(args.path, plugins), SQLAlchemyStore(url), plugin_manager=plugins)

            def load() -> Regulation:
                return _load(args.path, plugins)

    except AppError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bind = getattr(engine.store, "engine", None)
    url_of = bind.url if bind is not None else None
    database = sqlite_file(parse_url(str(url_of))) if url_of is not None else None
    try:
        with sqlite_single_worker(database):
            worker = Worker(
                engine,
                interval=args.interval,
                batch=args.batch,
                name=args.name,
                load=load,
                lease=timedelta(seconds=args.lease),
            )
            if args.once:
                worker.start()
                worker.run_once()
            else:
                worker.install_signals()
                worker.run()
    finally:
        engine.store.close()
    return 0


def _failures(args: argparse.Namespace, out: TextIO) -> int:
    """List failed rule runs, oldest first: when, rule, event, attempts, reason."""
    from crmrules.adapters.sqlalchemy import DEFAULT_URL, SQLAlchemyStore
    from crmrules.store import FailureStatus

    url = args.store or os.environ.get("CRMRULES_DATABASE_URL") or DEFAULT_URL
    status = None if args.all else FailureStatus.FAILED
    with SQLAlchemyStore(url, schema=args.schema) as store, store.transaction() as tx:
        found = tx.find_failures(status=status)
    for failure in found:
        state = "" if failure.status is FailureStatus.FAILED else f" [{failure.status.value}]"
        print(
            f"{failure.failed_at.isoformat()}  rule {failure.rule}  event {failure.event_id}  "
            f"attempts {failure.attempts}{state}: {failure.reason}",
            file=out,
        )
        if failure.note:
            print(f"    {failure.note}", file=out)
    word = "rule run(s)" if args.all else "failed rule run(s)"
    print(f"{len(found)} {word}", file=out)
    return 0


def _status(args: argparse.Namespace, out: TextIO) -> int:
    """Counts of pending, due, late, leased and failed timers and messages; who holds leases."""
    from crmrules.adapters.sqlalchemy import DEFAULT_URL, SQLAlchemyStore
    from crmrules.status import work_status

    url = args.store or os.environ.get("CRMRULES_DATABASE_URL") or DEFAULT_URL
    with SQLAlchemyStore(url, schema=args.schema) as store:
        found = work_status(store)
    if args.json:
        print(json.dumps(found.to_dict(), indent=2), file=out)
    else:
        print("\n".join(found.lines()), file=out)
    return 0


def _select(args: argparse.Namespace, out: TextIO) -> int:
    """Print the ids of the clients a territory or a rule's condition takes (by SQL)."""
    from crmrules.adapters.sqlalchemy import DEFAULT_URL
    from crmrules.engine import Engine

    plugins = PluginManager()
    url = args.store or os.environ.get("CRMRULES_DATABASE_URL") or DEFAULT_URL
    engine = Engine(_load(args.path, plugins), url, plugin_manager=plugins)
    try:
        ids = engine.select(segment=args.segment, territory=args.territory, rule=args.rule)
        if args.count:
            print(sum(1 for _ in ids), file=out)
        elif args.json:
            json.dump(list(ids), out, ensure_ascii=False)
            out.write("\n")
        else:
            for client_id in ids:
                print(client_id, file=out)
    finally:
        engine.store.close()
    return 0


def _client(args: argparse.Namespace, out: TextIO) -> int:
    """Print one client's summary: fields, contacts, deals, tasks, history, timers."""
    from crmrules.adapters.sqlalchemy import DEFAULT_URL, SQLAlchemyStore
    from crmrules.summary import client_summary

    regulation = _load(args.regulation, PluginManager()) if args.regulation else None
    url = args.store or os.environ.get("CRMRULES_DATABASE_URL") or DEFAULT_URL
    with SQLAlchemyStore(url, schema=args.schema) as store, store.transaction() as tx:
        summary = client_summary(tx, regulation, args.id)
    if args.json:
        json.dump(summary.to_dict(), out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        print("\n".join(summary.lines()), file=out)
    return 0


def _realign(args: argparse.Namespace, out: TextIO) -> int:
    """Recompute every client's territories and segments; a progress bar on a terminal."""
    from crmrules.adapters.sqlalchemy import DEFAULT_URL
    from crmrules.engine import Engine

    plugins = PluginManager()
    url = args.store or os.environ.get("CRMRULES_DATABASE_URL") or DEFAULT_URL
    engine = Engine(_load(args.path, plugins), url, plugin_manager=plugins)
    bar: Any = None
    if sys.stderr.isatty() and not args.json:
        from tqdm import tqdm  # type: ignore[import-untyped]

        bar = tqdm(desc="realign", unit=" clients", file=sys.stderr)
    try:
        report = engine.realign(dry_run=args.dry_run, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
        engine.store.close()
    if args.json:
        json.dump(report.to_dict(), out, ensure_ascii=False, indent=2)
        out.write("\n")
        return 0
    for name, moves in sorted({**report.territories, **report.segments}.items()):
        kind = "segment" if name in report.segments else "territory"
        examples = ", ".join([*moves.entering, *moves.leaving])
        print(f"{kind} {name}: +{moves.entered} -{moves.left} (e.g. {examples})", file=out)
    for client_id, reason in sorted(report.failed.items()):
        print(f"client {client_id}: {reason}", file=out)
    print(("dry run: " if report.dry_run else "") + report.summary(), file=out)
    return 1 if report.failed else 0


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
    parser.add_argument("--version", action="version", version=f"crmrules {__version__}")
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
    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of the rule language (for editors)",
        description="Print the JSON Schema of the rule language. Save it and point your "
        "editor at it, e.g. with '# yaml-language-server: $schema=crmrules.schema.json' "
        "on the first line of a YAML regulation.",
    )
    which = schema.add_mutually_exclusive_group()
    which.add_argument(
        "--part",
        action="store_true",
        help="the schema of one file of a folder regulation (no section is required)",
    )
    which.add_argument(
        "--scenario", action="store_true", help="the schema of scenario files (*.regulation.yaml)"
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
    worker.add_argument(
        "path", metavar="PATH", nargs="?", help="the regulation (a file or a folder)"
    )
    worker.add_argument(
        "--app",
        metavar="MODULE:FUNCTION",
        help="run the host's own engine: a function that returns it (its store, host tables "
        "and plugins), e.g. myapp.crm:make_engine; instead of PATH and --database",
    )
    worker.add_argument(
        "--database", metavar="URL", help="default: $CRMRULES_DATABASE_URL, else the SQLite file"
    )
    worker.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    worker.add_argument("--batch", type=int, default=100, help="timers per batch")
    worker.add_argument("--name", help="this worker's name in leases and logs")
    worker.add_argument(
        "--lease",
        type=float,
        default=DEFAULT_LEASE.total_seconds(),
        metavar="SECONDS",
        help="how long a claim on timers lasts without this worker's heartbeat (renewed every "
        "third of it): a dead worker's timers are taken over that soon (default 60)",
    )
    worker.add_argument("--once", action="store_true", help="one batch, then exit")
    imports = commands.add_parser(
        "import-rules",
        help="turn business-rules JSON into a crmrules regulation",
        description="Import a business-rules rule list (a JSON list of {conditions, actions}) "
        "using the application's variables and actions classes, check the result, and write "
        "it as YAML to -o (or print it).",
    )
    imports.add_argument("file", metavar="FILE.json")
    imports.add_argument("--variables", required=True, metavar="module:Class")
    imports.add_argument("--actions", required=True, metavar="module:Class")
    imports.add_argument("-o", "--output", metavar="regulation.yaml")
    imports.add_argument("--on", metavar="EVENT", help="the event the rules run on")
    failures = commands.add_parser(
        "failures",
        help="list rule runs that failed at run time (and were rolled back alone)",
        description="List the rule runs that failed at run time, oldest first, with the "
        "reason; fix the regulation or the data, then run them again with "
        "engine.retry_failed(). URL defaults to $CRMRULES_DATABASE_URL, else the SQLite file.",
    )
    failures.add_argument("--store", metavar="URL", help="the database, e.g. postgresql://...")
    failures.add_argument("--schema", help="the PostgreSQL schema that holds the tables")
    failures.add_argument("--all", action="store_true", help="include resolved ones")
    state = commands.add_parser(
        "status",
        help="count pending, due, late, leased and failed timers and messages",
        description="Print how the timers and the outbox stand: pending (due now, late by more "
        "than a minute, leased by a worker) and failed, and which workers hold leases until "
        "when. URL defaults to $CRMRULES_DATABASE_URL, else the SQLite file.",
    )
    state.add_argument("--store", metavar="URL", help="the database, e.g. postgresql://...")
    state.add_argument("--schema", help="the PostgreSQL schema that holds the tables")
    state.add_argument("--json", action="store_true", help="print the counts as JSON")
    select = commands.add_parser(
        "select",
        help="print the ids of the clients a segment, a territory or a rule's condition takes",
        description="Print, one per line in id order, the ids of the clients that a segment, a "
        "territory or a rule's condition takes now, by SQL on the SQL store. URL defaults to "
        "$CRMRULES_DATABASE_URL, else the SQLite file.",
    )
    select.add_argument("path", metavar="PATH", help="the regulation (a file or a folder)")
    select.add_argument("--store", metavar="URL", help="the database, e.g. postgresql://...")
    what = select.add_mutually_exclusive_group(required=True)
    what.add_argument("--segment", metavar="ID", help="the clients in this segment")
    what.add_argument("--territory", metavar="ID", help="the clients in this territory")
    what.add_argument("--rule", metavar="ID", help="the clients this rule's condition takes")
    shape = select.add_mutually_exclusive_group()
    shape.add_argument("--count", action="store_true", help="print only how many")
    shape.add_argument("--json", action="store_true", help="print a JSON list of ids")
    client = commands.add_parser(
        "client",
        help="print everything about one client: fields, contacts, deals, tasks, history",
        description="Print one client's summary: its fields, contacts with their roles in each "
        "organisation, deals and stages, open tasks, the last interactions, mailings, "
        "territories, segments and pending timers. URL defaults to $CRMRULES_DATABASE_URL, else "
        "the SQLite file.",
    )
    client.add_argument("id", metavar="ID", help="the client's id")
    client.add_argument("--store", metavar="URL", help="the database, e.g. postgresql://...")
    client.add_argument("--schema", help="the PostgreSQL schema that holds the tables")
    client.add_argument("--regulation", metavar="PATH", help="the regulation, for stage names")
    client.add_argument("--json", action="store_true", help="print the summary as JSON")
    realign = commands.add_parser(
        "realign",
        help="recompute every client's territories and segments (after a reorganisation)",
        description="Recompute the territories and segments of every client, a chunk per "
        "transaction; changes raise territory.entered / territory.left with their rules, once "
        "each even if a killed run is started again. --dry-run changes nothing and prints what "
        "would change, per territory and segment. URL defaults to $CRMRULES_DATABASE_URL, else "
        "the SQLite file.",
    )
    realign.add_argument("path", metavar="PATH", help="the regulation (a file or a folder)")
    realign.add_argument("--store", metavar="URL", help="the database, e.g. postgresql://...")
    realign.add_argument("--dry-run", action="store_true", help="change nothing; report")
    realign.add_argument("--json", action="store_true", help="print the report as JSON")
    add_report_parser(commands)
    cli_import.add_commands(commands)
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
    cli_changes.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command in cli_changes.COMMANDS:
            return cli_changes.COMMANDS[args.command](args, sys.stdout, sys.stderr)
        if args.command == "validate":
            return _validate(args.paths, sys.stdout, sys.stderr, args.allow_destination)
        if args.command == "db":
            return _db(args, sys.stdout)
        if args.command == "worker":
            return _worker(args)
        if args.command == "test":
            return _test(args.paths, sys.stdout, sys.stderr)
        if args.command == "import-rules":
            from crmrules.business_rules.command import import_rules_command

            return import_rules_command(
                args.file,
                args.variables,
                args.actions,
                args.output,
                args.on,
                sys.stdout,
                sys.stderr,
            )
        if args.command == "failures":
            return _failures(args, sys.stdout)
        if args.command == "realign":
            return _realign(args, sys.stdout)
        if args.command == "client":
            return _client(args, sys.stdout)
        if args.command in cli_import.COMMANDS:
            return cli_import.run(args, sys.stdout)
        if args.command == "select":
            return _select(args, sys.stdout)
        if args.command == "report":
            return run_report(args, sys.stdout)
        if args.command == "status":
            return _status(args, sys.stdout)
        if args.command == "simulate":
            return _simulate(args.file, args.scenario, sys.stdout)
        return _schema(sys.stdout, part=args.part, scenario=args.scenario)
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
