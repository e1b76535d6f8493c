"""A report as one self-contained HTML file: charts drawn as inline SVG, then the tables.

Nothing is fetched (no script, font or stylesheet from elsewhere), so the
file opens offline and can be mailed as it is. The charts: conversion by
campaign, demand per item, the funnel (the stall stage marked), load per
manager against capacity and calls/meetings planned vs held, compliance per
rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from crmrules.reports import Report
from crmrules.reports.formats import _span_line, cell_text, columns, heading

COLOURS = ("#2f6fb0", "#3c9a5f", "#d08c2c", "#c0504d", "#7f7f7f")
BAR, GAP, LABEL_WIDTH, CHART_WIDTH = 16, 10, 200, 420

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0; } .span { color: #666; margin-top: .2em; }
table { border-collapse: collapse; margin: 1em 0 2em; }
th, td { padding: .25em .6em; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f4f4f4; } td.n { text-align: right; }
figure { margin: 1em 0 2em; } figcaption { font-weight: 600; margin-bottom: .4em; }
.legend span { display: inline-block; margin-right: 1.2em; }
.legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em; }
.notes { background: #fff7e0; padding: .5em 1em; border-left: 4px solid #d08c2c; }
"""


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def bar_chart(
    caption: str, labels: Sequence[str], series: Sequence[Series], *, stacked: bool = False
) -> str:
    """Horizontal bars per label: grouped, or stacked into one bar; each bar keeps its number."""
    per_label = 1 if stacked else len(series)
    row = per_label * BAR + GAP
    height = max(1, len(labels)) * row + GAP
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    largest = max([*(totals if stacked else [v for s in series for v in s.values]), 1])
    scale = (CHART_WIDTH - 60) / largest
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{LABEL_WIDTH + CHART_WIDTH}" '
        f'height="{height}" aria-label="{escape(caption)}">'
    ]
    for index, label in enumerate(labels):
        top = GAP + index * row
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{top + per_label * BAR / 2 + 5}" '
            f'text-anchor="end" font-size="12">{escape(label)}</text>'
        )
        left = float(LABEL_WIDTH)
        for number, one in enumerate(series):
            value = one.values[index]
            width = value * scale
            y = top if stacked else top + number * BAR
            x = left if stacked else LABEL_WIDTH
            colour = COLOURS[number % len(COLOURS)]
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{BAR - 2}" '
                f'fill="{colour}"><title>{escape(one.name)}: {_number(value)}</title></rect>'
            )
            if not stacked:
                parts.append(
                    f'<text x="{x + width + 4:.1f}" y="{y + BAR - 5}" font-size="11">'
                    f"{_number(value)}</text>"
                )
            left += width
        if stacked:
            parts.append(
                f'<text x="{left + 4:.1f}" y="{top + BAR - 5}" font-size="11">'
                f"{_number(totals[index])}</text>"
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{COLOURS[n % len(COLOURS)]}"></i>{escape(s.name)}</span>'
        for n, s in enumerate(series)
    )
    return (
        f"<figure><figcaption>{escape(caption)}</figcaption>{''.join(parts)}"
        f'<div class="legend">{legend}</div></figure>'
    )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _summed(rows: list[Any], key: Any, fields: Sequence[str]) -> dict[str, list[float]]:
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(fields))
    for row in rows:
        for index, name in enumerate(fields):
            totals[key(row)][index] += float(getattr(row, name))
    return dict(totals)


def _grouped(caption: str, totals: dict[str, list[float]], names: Sequence[str],
             stacked: bool = False) -> str:  # fmt: skip
    labels = list(totals)
    series = [Series(name, [totals[label][i] for label in labels]) for i, name in enumerate(names)]
    return bar_chart(caption, labels, series, stacked=stacked)


def charts(report: Report) -> list[str]:
    """The charts a report gets (none for an empty one)."""
    t = report.tables
    fields: tuple[str, ...]
    if report.name == "conversion" and t["conversion"]:
        fields = ("requests", "converted", "deals_won")
        totals = _summed(t["conversion"], lambda r: r.campaign or f"({r.channel})", fields)
        return [_grouped("Conversion by campaign", totals, ["requests", "converted", "won"])]
    if report.name == "demand" and t["demand"]:
        totals = _summed(t["demand"], lambda r: r.item, ("requests", "converted"))
        return [_grouped("Demand by item", totals, ["requests", "converted"])]
    if report.name == "funnel" and t["funnel"]:
        stalls = set(report.notes.values())
        totals = {
            f"{r.pipeline}: {r.stage}{' (stall)' if r.stage in stalls else ''}": [float(r.deals)]
            for r in t["funnel"]
        }
        return [_grouped("Funnel: deals per stage", totals, ["deals"])]
    if report.name == "load" and t["load"]:
        load = {r.manager or "(nobody)": [float(r.open_tasks), float(r.overdue),
                                          float(r.capacity or 0)] for r in t["load"]}  # fmt: skip
        fields = ("calls_planned", "calls_held", "meetings_planned", "meetings_held")
        activity = _summed(t["activity"], lambda r: r.manager or "(nobody)", fields)
        return [
            _grouped("Load per manager", load, ["open tasks", "overdue", "capacity"]),
            _grouped("Planned vs held", activity, [heading(f) for f in fields]),
        ]
    if report.name == "compliance" and t["compliance"]:
        fields = ("on_time", "late", "not_done", "pending")
        totals = _summed(t["compliance"], lambda r: r.rule, fields)
        return [_grouped("Compliance per rule", totals, [heading(f) for f in fields], True)]
    return []


def _table(rows: list[Any]) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    names = columns(rows)
    head = "".join(f"<th>{escape(heading(n))}</th>" for n in names)
    body = []
    for row in rows:
        cells = []
        for n in names:
            value = getattr(row, n)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            klass = ' class="n"' if numeric else ""
            cells.append(f"<td{klass}>{escape(cell_text(n, value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html(report: Report) -> str:
    """The whole page."""
    notes = "".join(f"<p>{escape(k)}: <b>{escape(v)}</b></p>" for k, v in report.notes.items())
    sections = [
        f"<h2>{escape(name)}</h2>{_table(rows)}" if len(report.tables) > 1 else _table(rows)
        for name, rows in report.tables.items()
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(report.title)}</title><style>{STYLE}</style></head><body>"
        f'<h1>{escape(report.title)}</h1><p class="span">{escape(_span_line(report))}</p>'
        + (f'<div class="notes">{notes}</div>' if notes else "")
        + "".join(charts(report))
        + "".join(sections)
        + "</body></html>\n"
    )


__all__ = ["Series", "bar_chart", "charts", "html"]
