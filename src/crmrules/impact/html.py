"""The impact report as one self-contained HTML file: summary, chart, sortable tables.

Nothing is loaded from elsewhere (no CDN, no fonts, no images): the style,
the chart (inline SVG) and the few lines of script that sort a table when
its header is clicked are all in the file, so it opens offline and can be
attached to a change request. Every value from the regulation or the base
is escaped.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from crmrules.realign import Moves

if TYPE_CHECKING:
    from crmrules.impact import Impact

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
th{background:#f2f2f2;cursor:pointer}td.n{text-align:right}
.error{color:#b00020}.warning{color:#8a6d00}.muted{color:#777}
"""

_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  var index = th.cellIndex;
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var down = th.dataset.order !== 'asc';
    th.dataset.order = down ? 'asc' : 'desc';
    function key(row) {
      var cell = row.cells[index];
      if (!('v' in cell.dataset)) { return cell.textContent; }
      return cell.dataset.v === '' ? -Infinity : parseFloat(cell.dataset.v);
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var c = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
      return down ? c : -c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _cell(value: object, *, number: bool = False) -> str:
    text = "–" if value is None else str(value)
    if number:
        sort_key = "" if value is None else escape(text)
        return f'<td class="n" data-v="{sort_key}">{escape(text)}</td>'
    return f"<td>{escape(text)}</td>"


def _table(table_id: str, headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return (
        f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def _chart(items: list[tuple[str, int, int]], labels: tuple[str, str]) -> str:
    """Paired horizontal bars (e.g. entering / leaving per territory) in inline SVG."""
    if not items:
        return ""
    widest = max(max(a, b) for _, a, b in items) or 1
    row, left, width = 34, 160, 420
    height = row * len(items) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{left + width + 80}" '
        f'height="{height}" aria-label="{escape(labels[0])} and {escape(labels[1])}">'
    ]
    for index, (name, a, b) in enumerate(items):
        y = 10 + index * row
        parts.append(f'<text x="0" y="{y + 12}" font-size="12">{escape(name)}</text>')
        for offset, value, colour in ((0, a, "#2e7d32"), (14, b, "#c62828")):
            length = round(width * value / widest)
            parts.append(
                f'<rect x="{left}" y="{y + offset}" width="{length}" height="12" '
                f'fill="{colour}"></rect>'
                f'<text x="{left + length + 4}" y="{y + offset + 10}" font-size="11">'
                f"{value}</text>"
            )
    legend_y = height - 6
    parts.append(
        f'<text x="{left}" y="{legend_y}" font-size="11" fill="#2e7d32">■ {escape(labels[0])}'
        f'</text><text x="{left + 140}" y="{legend_y}" font-size="11" fill="#c62828">■ '
        f"{escape(labels[1])}</text></svg>"
    )
    return "".join(parts)


def _moves_rows(table: dict[str, Moves]) -> list[list[str]]:
    return [
        [
            _cell(name),
            _cell(moves.entered, number=True),
            _cell(moves.left, number=True),
            _cell(", ".join(moves.entering)),
            _cell(", ".join(moves.leaving)),
        ]
        for name, moves in sorted(table.items())
    ]


def render(report: Impact) -> str:
    """The whole report as one HTML document."""
    summary = report.summary()
    moves = report.realignment
    old, new = report.old_version, report.new_version
    summary_rows = [
        [_cell(name.replace("_", " ")), f'<td class="n" id="sum-{name}">{value}</td>']
        for name, value in summary.items()
    ]
    rule_rows = [
        [
            _cell(r.rule),
            _cell(r.change),
            _cell(r.trigger),
            _cell(r.clients_old, number=True),
            _cell(r.clients_new, number=True),
            _cell(r.timers_text()),
            _cell(", ".join(r.examples)),
        ]
        for r in report.rules
    ]
    timer_rows = [
        [
            _cell(change),
            _cell(m.kind),
            _cell(m.rule),
            _cell(m.client),
            _cell(m.due_before),
            _cell(m.due_after),
            _cell(m.key),
        ]
        for change, kept in sorted(report.timers.examples.items())
        for m in kept
    ]
    lint_rows = [
        [
            f'<td class="{f.severity}">{escape(f.severity)}</td>',
            _cell(str(f.location) if f.location else ""),
            _cell(f.message),
            _cell(f.code),
        ]
        for f in report.findings
    ]
    moves_headers = ["id", "entering", "leaving", "e.g. entering", "e.g. leaving"]
    territory_chart = _chart(
        [(n, m.entered, m.left) for n, m in sorted(moves.territories.items())],
        ("entering", "leaving"),
    )
    rule_chart = _chart(
        [(r.rule, r.clients_old or 0, r.clients_new or 0) for r in report.rules],
        ("clients under OLD", "clients under NEW"),
    )
    sections = [
        f"<h1>Impact of switching the regulation from {escape(str(old['id']))} to "
        f"{escape(str(new['id']))}</h1>",
        f"<p>OLD: {escape(_label(old))}<br>NEW: {escape(_label(new))}</p>",
        "<h2>Summary</h2>",
        _table("summary", ["what", "count"], summary_rows),
        "<h2>Territories</h2>",
        territory_chart,
        _table("territories", moves_headers, _moves_rows(moves.territories)),
        "<h2>Segments</h2>",
        _table("segments", moves_headers, _moves_rows(moves.segments)),
        "<h2>Rules added, removed or changed</h2>",
        rule_chart,
        _table(
            "rules",
            ["rule", "change", "trigger", "clients OLD", "clients NEW", "timers", "e.g."],
            rule_rows,
        ),
        "<h2>Timers</h2>",
        f"<p>{escape(report.timers.summary())}</p>",
        _table(
            "timers",
            ["change", "kind", "rule", "client", "due before", "due after", "timer"],
            timer_rows,
        ),
        "<h2>Lint findings of NEW</h2>",
        _table("lint", ["severity", "where", "finding", "code"], lint_rows),
    ]
    body = "\n".join(s for s in sections if s)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>crmrules: impact of a regulation change</title>"
        f"<style>{_STYLE}</style></head><body>\n{body}\n<script>{_SCRIPT}</script>"
        "</body></html>\n"
    )


def _label(version: dict[str, object]) -> str:
    parts = [str(version[k]) for k in ("name", "revision") if version.get(k)]
    return ", ".join([*parts, f"content {version['digest']}"])


__all__ = ["render"]
