"""``crmrules import`` and ``crmrules duplicates``: the client base in from files, and its doubles.

Both print one line per listed row or pair, then a summary; a progress bar
goes to a terminal's stderr. Problems in the mapping file are printed as
``file:line:col: message`` lines, as for a regulation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TextIO

from crmrules.plugins import PluginManager
from crmrules.rules.regulation import load_regulation

COMMANDS = ("import", "duplicates")


def add_commands(commands: Any) -> None:
    """The two sub-commands on the ``crmrules`` parser."""
    imports = commands.add_parser(
        "import",
        help="import clients from a CSV or XLSX file, finding duplicates",
        description="Import the rows of a CSV or XLSX file as clients, by a mapping file "
        "(column -> client field). Each row is created (raising client.created with the "
        "import's id and source), a duplicate of a stored client, ambiguous (listed for a "
        "person to decide) or refused with its row and column; one bad row never stops the "
        "others. A chunk of rows per transaction; run the same command again to continue an "
        "interrupted import. URL defaults to $CRMRULES_DATABASE_URL, else the SQLite file.",
    )
    imports.add_argument("file", metavar="FILE", help="a .csv or .xlsx file")
    imports.add_argument("--regulation", required=True, metavar="PATH", help="the regulation")
    imports.add_argument("--mapping", required=True, metavar="MAPPING.yaml")
    imports.add_argument("--store", metavar="URL", help="the database, e.g. postgresql://...")
    imports.add_argument("--import-id", metavar="ID", help="default: from the file and mapping")
    imports.add_argument("--dry-run", action="store_true", help="store nothing; report")
    imports.add_argument("--chunk", type=int, default=500, help="rows per transaction")
    imports.add_argument("--json", action="store_true", help="print the report as JSON")
    duplicates = commands.add_parser(
        "duplicates",
        help="list the pairs of stored clients the regulation's duplicates: rules match",
        description="Find duplicate clients in the store by the regulation's duplicates: "
        "section: candidate pairs come from SQL (clients sharing a normalised phone, e-mail, "
        "tax id or name), never from all pairs. Merge them with engine.merge_clients. URL "
        "defaults to $CRMRULES_DATABASE_URL, else the SQLite file.",
    )
    duplicates.add_argument("--regulation", required=True, metavar="PATH", help="the regulation")
    duplicates.add_argument("--store", metavar="URL", help="the database, e.g. postgresql://...")
    duplicates.add_argument("--json", action="store_true", help="print JSON lines")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from crmrules.adapters.sqlalchemy import DEFAULT_URL
    from crmrules.engine import Engine

    plugins = PluginManager()
    regulation = load_regulation(
        args.regulation, actions=plugins.action_models(), operators=plugins.operators()
    )
    url = args.store or os.environ.get("CRMRULES_DATABASE_URL") or DEFAULT_URL
    engine = Engine(regulation, url, plugin_manager=plugins)
    try:
        if args.command == "import":
            return _import(engine, args, out)
        return _duplicates(engine, args, out)
    finally:
        engine.store.close()


def _bar(args: argparse.Namespace, desc: str, unit: str) -> AbstractContextManager[Any]:
    if sys.stderr.isatty() and not args.json:
        from tqdm import tqdm  # type: ignore[import-untyped]

        return tqdm(desc=desc, unit=unit, file=sys.stderr)  # type: ignore[no-any-return]
    return nullcontext()


def _import(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from crmrules import importing

    mapping = engine.import_mapping(args.mapping)
    import_id = args.import_id or importing.import_id_for(
        args.file, Path(args.mapping).read_text(encoding="utf-8")
    )
    with _bar(args, "import", " rows") as bar:
        report = importing.import_file(
            engine,
            args.file,
            mapping,
            import_id=import_id,
            dry_run=args.dry_run,
            chunk=args.chunk,
            progress=bar.update if bar is not None else None,
        )
    if args.json:
        json.dump(report.to_dict(), out, ensure_ascii=False, indent=2)
        out.write("\n")
        return 0
    rows = report.listed if args.dry_run else importing.listed_rows(engine, report.import_id)
    for row in rows:
        print(describe_row(row), file=out)
    print(("dry run: " if args.dry_run else "") + report.summary(), file=out)
    return 1 if report.counts["invalid"] else 0


def describe_row(row: dict[str, Any]) -> str:
    """One listed row as a line a person reads."""
    number, outcome = row["row"], row["outcome"]
    if outcome == "invalid":
        return "\n".join(p["text"] for p in row["problems"])
    candidates = "; ".join(
        f"{c['client']} ({', '.join(c['reasons'])})" for c in row.get("candidates", [])
    )
    if outcome == "duplicate":
        return f"row {number}: duplicate of client {row['client']}: {candidates}"
    return f"row {number}: ambiguous, decide between: {candidates}"


def _duplicates(engine: Any, args: argparse.Namespace, out: TextIO) -> int:
    count = 0
    with _bar(args, "duplicates", " clients") as bar:
        for pair in engine.find_duplicates(progress=bar.update if bar is not None else None):
            count += 1
            if args.json:
                print(json.dumps(pair.to_dict(), ensure_ascii=False), file=out)
            else:
                print(
                    f"{pair.first} ~ {pair.second}: {pair.verdict} ({', '.join(pair.reasons)})",
                    file=out,
                )
    if not args.json:
        print(f"{count} pair(s)", file=out)
    return 0


__all__ = ["COMMANDS", "add_commands", "describe_row", "run"]
