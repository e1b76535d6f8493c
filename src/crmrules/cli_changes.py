"""The commands an admin runs around a regulation change: lint, explain, history, diff.

Registered on the ``crmrules`` parser by crmrules.cli (``add_commands``) and
run through ``COMMANDS``; like every command they print ``file:line:col``
findings or plain reports and exit 0 or 1, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from crmrules.errors import CrmRulesError
from crmrules.plugins import PluginManager
from crmrules.rules.regulation import Regulation, compile_regulation
from crmrules.rules.source import load_document


def _load(path: str, plugins: PluginManager) -> tuple[Regulation, dict[str, Any] | None]:
    """The regulation at ``path`` and its merged document (for the unused-field check)."""
    document = load_document([path])
    regulation = compile_regulation(document, plugins.action_models(), plugins.operators())
    return regulation, document.data if isinstance(document.data, dict) else None


def _store_url(args: argparse.Namespace) -> str:
    from crmrules.adapters.sqlalchemy import DEFAULT_URL

    return str(args.store or os.environ.get("CRMRULES_DATABASE_URL") or DEFAULT_URL)


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CrmRulesError(
            f"--at {text!r} is not a moment; write e.g. 2026-03-02T10:00+03:00"
        ) from None
    if moment.tzinfo is None:
        raise CrmRulesError(f"--at {text!r} has no time zone; add one, e.g. +03:00")
    return moment


def _lint(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from crmrules.lint import exit_code, lint

    plugins = PluginManager()
    worst = 0
    for path in args.paths:
        regulation, data = _load(path, plugins)
        found = lint(regulation, data)
        for finding in found:
            print(finding.describe(), file=out)
        errors = sum(f.severity == "error" for f in found)
        warnings = len(found) - errors
        print(
            f"{path}: {errors} error{'s' * (errors != 1)}, "
            f"{warnings} warning{'s' * (warnings != 1)}",
            file=out,
        )
        worst = max(worst, exit_code(found, strict=args.strict))
    return worst


def _engine(args: argparse.Namespace, regulation: Regulation, plugins: PluginManager) -> Any:
    from crmrules.engine import Engine

    return Engine(regulation, _store_url(args), plugin_manager=plugins)


def _explain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    plugins = PluginManager()
    engine = _engine(args, _load(args.path, plugins)[0], plugins)
    try:
        found = engine.explain(
            args.client, deal_id=args.deal, event_type=args.event, at=_moment(args.at)
        )
    finally:
        engine.store.close()
    if args.json:
        json.dump(found.to_dict(), out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        print(found.describe(), file=out)
    return 0


def _history(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from crmrules.adapters.sqlalchemy import SQLAlchemyStore
    from crmrules.history import history, to_dicts

    store = SQLAlchemyStore(_store_url(args))
    try:
        entries = history(store, args.client)
    finally:
        store.close()
    if args.json:
        json.dump(to_dicts(entries), out, ensure_ascii=False, indent=2)
        out.write("\n")
        return 0
    for entry in entries:
        print(entry.describe(), file=out)
    print(f"{len(entries)} rule firing(s) for client {args.client}", file=out)
    return 0


def _diff(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from crmrules.impact import impact
    from crmrules.impact.html import render

    plugins = PluginManager()
    old, _ = _load(args.old, plugins)
    new, data = _load(args.new, plugins)
    engine = _engine(args, old, plugins)
    try:
        report = impact(engine, new, data=data)
    finally:
        engine.store.close()
    if args.format == "json":
        text = json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n"
    elif args.format == "html":
        text = render(report)
    else:
        text = report.describe() + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"{args.output}: {args.format} report written", file=out)
    else:
        out.write(text)
    return 0


Handler = Callable[[argparse.Namespace, TextIO, TextIO], int]
COMMANDS: dict[str, Handler] = {
    "lint": _lint,
    "explain": _explain,
    "history": _history,
    "diff": _diff,
}


def add_commands(commands: Any) -> None:
    """Add lint, explain, history and diff to the ``crmrules`` sub-command parser."""
    store_help = "the database, e.g. postgresql://... (default: $CRMRULES_DATABASE_URL)"
    lint = commands.add_parser(
        "lint",
        help="find rules that never run, cycles, impossible conditions, unused declarations",
        description="Lint each PATH: print findings as file:line:col: severity: message. "
        "Exit 1 on an error (on any finding with --strict).",
    )
    lint.add_argument("paths", nargs="+", metavar="PATH", help="a regulation file or folder")
    lint.add_argument("--strict", action="store_true", help="warnings fail too")
    explain = commands.add_parser(
        "explain",
        help="why each rule would or would not act on a client now",
        description="For the client as stored (or as of --at): the rules listening to --event "
        "that would fire, and for each other rule the first failing condition or the policy "
        "holding it; territories, segments and pending timers. Changes nothing.",
    )
    explain.add_argument("path", metavar="PATH", help="the regulation (a file or a folder)")
    explain.add_argument("--store", metavar="URL", help=store_help)
    explain.add_argument("--client", required=True, metavar="ID")
    explain.add_argument("--deal", metavar="ID")
    explain.add_argument("--event", metavar="TYPE", help="e.g. invoice.issued")
    explain.add_argument("--at", metavar="MOMENT", help="e.g. 2026-03-02T10:00+03:00")
    explain.add_argument("--json", action="store_true", help="print JSON")
    history = commands.add_parser(
        "history",
        help="what the rules did to a client, when, under which regulation version",
        description="List the rules that fired for a client's events, oldest first, with "
        "their effects and the regulation version that decided.",
    )
    history.add_argument("--store", metavar="URL", help=store_help)
    history.add_argument("--client", required=True, metavar="ID")
    history.add_argument("--json", action="store_true", help="print JSON")
    diff = commands.add_parser(
        "diff",
        help="what switching from OLD to NEW would change in the base (changes nothing)",
        description="Evaluate both regulations over the stored clients without writing: "
        "territory and segment moves, timers planned, re-planned and cancelled, rules added, "
        "removed or changed with the clients they take, NEW's lint findings.",
    )
    diff.add_argument("old", metavar="OLD", help="the regulation in force")
    diff.add_argument("new", metavar="NEW", help="the regulation to switch to")
    diff.add_argument("--store", metavar="URL", help=store_help)
    diff.add_argument("--format", choices=("text", "json", "html"), default="text")
    diff.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")


__all__ = ["COMMANDS", "add_commands"]
