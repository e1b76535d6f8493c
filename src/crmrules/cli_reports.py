"""``crmrules report NAME``: a report over the SQL store, as text, CSV, JSON or HTML."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmrules.errors import CrmRulesError

FORMATS = ("text", "csv", "json", "html")


def add_parser(commands: Any) -> None:
    """Register the ``report`` command on the main parser's subcommands."""
    from crmrules.reports import BY, REPORTS

    report = commands.add_parser(
        "report",
        help="print a report: conversion, demand, funnel, load or compliance",
        description="Compute a report by SQL over the store, for local days FROM..TO "
        "(inclusive) in the regulation's time zone (or --tz), in periods of a day, week "
        "(from Monday) or month. See docs/reports.md for every figure. URL defaults to "
        "$CRMRULES_DATABASE_URL, else the SQLite file.",
    )
    report.add_argument("name", choices=list(REPORTS), metavar="NAME", help=", ".join(REPORTS))
    report.add_argument("--store", metavar="URL", help="the database, e.g. postgresql://...")
    report.add_argument("--schema", help="the PostgreSQL schema that holds the tables")
    report.add_argument("--from", dest="start", required=True, metavar="DATE", type=_day)
    report.add_argument("--to", dest="end", required=True, metavar="DATE", type=_day)
    report.add_argument("--by", choices=BY, default="month", help="the period (default month)")
    report.add_argument("--format", choices=FORMATS, default="text", help="default text")
    report.add_argument("--regulation", metavar="PATH", help="its calendar's zone and catalogue")
    report.add_argument("--tz", metavar="ZONE", help="an IANA zone, e.g. Europe/Moscow")
    report.add_argument("-o", "--output", metavar="FILE", help="write there instead of stdout")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CrmRulesError(f"unknown time zone {name!r} (e.g. Europe/Moscow, UTC)") from None


def run(args: argparse.Namespace, out: TextIO) -> int:
    from crmrules.adapters.sqlalchemy import DEFAULT_URL, SQLAlchemyStore
    from crmrules.reports import Span, report
    from crmrules.reports.formats import csv_text, json_text, text
    from crmrules.reports.html import html
    from crmrules.rules.regulation import load_regulation

    zone = _zone(args.tz) if args.tz else None
    catalogue: list[str] = []
    if args.regulation:
        regulation = load_regulation(args.regulation)
        catalogue = list(regulation.catalogue.items)
        zone = zone or regulation.calendar.tz
    try:
        span = Span(args.start, args.end, args.by, zone or ZoneInfo("UTC"))
    except ValueError as error:
        raise CrmRulesError(str(error)) from None
    url = args.store or os.environ.get("CRMRULES_DATABASE_URL") or DEFAULT_URL
    with SQLAlchemyStore(url, schema=args.schema) as store:
        made = report(args.name, store, span, catalogue=catalogue)
    writers: dict[str, Callable[[Any], str]] = {
        "text": text, "csv": csv_text, "json": json_text, "html": html
    }  # fmt: skip
    written = writers[args.format](made)
    if args.output:
        Path(args.output).write_text(written, encoding="utf-8", newline="")
    else:
        out.write(written)
    return 0


__all__ = ["FORMATS", "add_parser", "run"]
