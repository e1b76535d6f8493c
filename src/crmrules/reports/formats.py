"""A report as text (aligned tables for a terminal), CSV (for a spreadsheet) or JSON.

CSV is UTF-8 with a byte-order mark, so Excel opens Cyrillic names as
text rather than mojibake; a report with several tables writes them one
after another, each with its header row, separated by an empty line. Ratios
are fractions (0.25) in CSV and JSON and percentages in text; durations are
whole seconds in CSV and JSON and days/hours in text; money is exact.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import date
from decimal import Decimal
from typing import Any

from crmrules.reports import Report

#: Columns shown as percentages in text.
RATIOS = frozenset({"conversion", "win_rate", "share", "of_first", "load", "on_time_rate"})
#: Excel's cue that a CSV file is UTF-8.
BOM = "\ufeff"


def columns(rows: list[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(rows[0])] if rows else []


def _plain(value: Any) -> Any:
    """A value as JSON has it: dates ISO, money as exact text, the rest as is."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def duration_text(seconds: int) -> str:
    """``2d 03:15`` for 2 days, 3 hours and 15 minutes (seconds dropped)."""
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    clock = f"{hours:02d}:{rest // 60:02d}"
    return f"{days}d {clock}" if days else clock


def cell_text(name: str, value: Any) -> str:
    """A value as a person reads it in a table."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if name in RATIOS and isinstance(value, float):
        return f"{value * 100:.1f}%"
    if name.endswith("_seconds") and isinstance(value, int):
        return duration_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def heading(name: str) -> str:
    return name.removesuffix("_seconds").replace("_", " ")


def _table(rows: list[Any]) -> list[str]:
    names = columns(rows)
    cells = [[cell_text(n, getattr(row, n)) for n in names] for row in rows]
    header = [heading(n) for n in names]
    widths = [max(len(x) for x in column) for column in zip(header, *cells, strict=False)]
    numeric = [
        all(isinstance(getattr(row, n), int | float | Decimal) or getattr(row, n) is None
            for row in rows) and not isinstance(getattr(rows[0], n), bool)
        for n in names
    ]  # fmt: skip

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(c) for c in cells)]


def _span_line(report: Report) -> str:
    span = report.span
    return f"{span.start} .. {span.end}, by {span.by}, {span.zone}"


def text(report: Report) -> str:
    lines = [report.title, _span_line(report), ""]
    for name, rows in report.tables.items():
        if len(report.tables) > 1:
            lines += [name, ""]
        lines += _table(rows) if rows else ["(no rows)"]
        lines.append("")
    lines += [f"{key}: {value}" for key, value in report.notes.items()]
    return "\n".join(lines).rstrip() + "\n"


def csv_text(report: Report) -> str:
    """CSV with a BOM first (see the module's note); write it with ``newline=""``."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    for index, rows in enumerate(report.tables.values()):
        if index:
            writer.writerow([])
        names = columns(rows)
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if v is None else _plain(v) for v in _values(row, names)])
    return out.getvalue()


def _values(row: Any, names: list[str]) -> list[Any]:
    return [getattr(row, n) for n in names]


def as_data(report: Report) -> dict[str, Any]:
    span = report.span
    return {
        "report": report.name,
        "title": report.title,
        "from": span.start.isoformat(),
        "to": span.end.isoformat(),
        "by": span.by,
        "zone": str(span.zone),
        "tables": {
            name: [{k: _plain(v) for k, v in dataclasses.asdict(row).items()} for row in rows]
            for name, rows in report.tables.items()
        },
        "notes": dict(report.notes),
    }


def json_text(report: Report) -> str:
    return json.dumps(as_data(report), ensure_ascii=False, indent=2) + "\n"


__all__ = [
    "BOM",
    "as_data",
    "cell_text",
    "columns",
    "csv_text",
    "duration_text",
    "json_text",
    "text",
]
